"""Sweep throughput on an emulated phone (`make bench-harness`): export-then-measure vs exporting while measuring.

    python bench/bench_overlap.py [--sweep bench/sweeps/quick.toml]

Runs the sweep twice on the adb emulator (tests/adb_emulator, Snapdragon 855 profile, this venv's Python as the
phone's python3, reached through the real adb client on a private adb server), each time with a fresh export folder
so every artifact is converted:
- sequential: every export first, then every measurement (what `local` does);
- overlapped: `pipeline.export_while_measuring`, the host converting the next artifacts while the phone measures.
Each mode runs in a fresh Python process (so neither pays the other's imports and first-conversion warm-up), the
sequential one first. Prints both walls and the gain. Caveat: the emulated phone runs on this machine's CPUs, so
here its measurements and the exports compete for the same cores; on a real phone they do not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from effvit_deploy.bench import engine, pipeline  # noqa: E402
from effvit_deploy.bench.devices import open_devices  # noqa: E402
from effvit_deploy.bench.store import ResultStore  # noqa: E402
from effvit_deploy.bench.sweep import load_sweep  # noqa: E402
from tests.adb_emulator import PROFILES, AdbEmulator  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(serial: str, sweep: Path, tmp: Path, overlapped: bool) -> tuple[float, float, int]:
    """(wall s, export s, records) of one cold sweep on the phone."""
    export_dir = tmp / ("export-overlap" if overlapped else "export-seq")
    store = ResultStore(tmp / ("overlap.jsonl" if overlapped else "seq.jsonl"))
    start = time.perf_counter()
    spec = load_sweep(sweep)
    options = engine.RunOptions.from_sweep(spec, runner="python")
    devices = open_devices([f"adb:{serial}"])
    plans = engine.plan_sweep(devices, spec, options)
    if overlapped:
        summary, export_s = pipeline.export_while_measuring(plans, export_dir, store, options)
    else:
        artifacts, export_s = engine.export_artifacts(spec.configurations, export_dir)
        summary = engine.run_sweep(plans, artifacts, store, options)
    wall = time.perf_counter() - start
    if summary.failed or summary.device_errors:
        raise SystemExit(f"{summary.failed} failed: {[r.error for r in summary.records if r.error][:3]} "
                         f"{summary.device_errors}")
    return wall, export_s, len(summary.records)


def _child(mode: str, serial: str, sweep: Path, tmp: Path) -> tuple[float, float, int]:
    proc = subprocess.run([sys.executable, __file__, "--sweep", str(sweep), "--child", mode, serial, str(tmp)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    wall, export_s, n = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(wall), float(export_s), int(n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "bench/sweeps/quick.toml")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SERIAL", "TMP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one mode in this fresh process; the parent owns the adb server and the phone
        mode, serial, tmp_dir = args.child
        print(json.dumps(run_once(serial, args.sweep, Path(tmp_dir), overlapped=mode == "overlap")))
        return 0
    adb = shutil.which("adb")
    if adb is None:
        raise SystemExit("error: the adb client is not installed; run `make setup` (installs Debian's adb)")
    with tempfile.TemporaryDirectory(prefix="effvit-overlap-") as tmp_text:
        tmp = Path(tmp_text)
        os.environ["ANDROID_ADB_SERVER_PORT"] = str(_free_port())  # a private server: never the user's on 5037
        env = dict(os.environ, HOME=str(tmp), ADB_MDNS="0", ADB_EMU="0")
        subprocess.run([adb, "start-server"], env=env, capture_output=True, timeout=30, check=True,
                       stdin=subprocess.DEVNULL)
        phone = AdbEmulator(PROFILES["sm8150"], python3=True).start()
        try:
            seq, over = (_child(mode, phone.serial, args.sweep, tmp) for mode in ("seq", "overlap"))
        finally:
            phone.stop()
            subprocess.run([adb, "kill-server"], env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    for label, (wall, export_s, n) in (("sequential (export, then measure)", seq),
                                       ("overlapped (export while measuring)", over)):
        print(f"{label}: {n} measurements, wall {wall:.1f} s, export {export_s:.1f} s", flush=True)
    gain = seq[0] - over[0]
    print(f"gain on the emulated phone: {gain:.1f} s ({gain / seq[0] * 100:.0f}% of the sequential wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
