"""Energy per inference from the battery's fuel gauge, sampled beside the measured process.

Android (and Linux laptops) expose the battery under `/sys/class/power_supply/<name>/`: `current_now` (µA),
`voltage_now` (µV), sometimes `power_now` (µW), and `status` (Charging / Discharging / Full / Not charging). A sampler
shell loop reads them every `interval` while the timed runs go on; it runs on a core outside the measured mask
(`taskset`) at the lowest priority, sleeps between reads and does nothing else, so it costs the CPU under test
nothing measurable. Mean power times the measured time gives energy per inference.

No figure is made, and the record says why, when: no battery readings exist; the phone is charging (the gauge then
measures the charger's current, not the SoC's draw); fewer than `MIN_SAMPLES` readings arrived.

Fuel gauges differ in sign (discharge is negative on some devices) and in how often they update (often every
0.25-1 s): the magnitude is used, and the record keeps the sample count and the method so a reader can judge.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

POWER_SUPPLY = "/sys/class/power_supply"
MIN_SAMPLES = 3
DEFAULT_INTERVAL_S = 0.2
_MARK = "@sample"
_END = "@end"  # a block without it was cut off when the sampler was killed: not used


def sampler_script(out_path: str, interval_s: float = DEFAULT_INTERVAL_S, root: str = POWER_SUPPLY,
                   only_while: str | None = None, only_if: str | None = None) -> str:
    """A POSIX/mksh loop that appends one block of readings per interval to `out_path` until killed.

    Each block: a `@sample` line, then `name key value` for every battery-type supply's status, current_now,
    voltage_now and power_now that exists, then `@end`. Only toybox/busybox applets (cat, sleep) are used.
    With `only_while`, a block is written only while that file exists (the python runner creates it for exactly
    its timed runs), so load and warm-up do not count; `only_if` is any shell condition instead (see `log_gate`).
    """
    root_q = shlex.quote(root)
    gate = f"[ -e {shlex.quote(only_while)} ] && " if only_while else ""
    gate = f"{only_if} && " if only_if else gate
    return (
        f"while :; do {gate}{{ echo {_MARK}; for d in {root_q}/*; do "
        '[ "$(cat "$d/type" 2>/dev/null)" = Battery ] || continue; n=${d##*/}; '
        'for k in status current_now voltage_now power_now; do '
        '[ -r "$d/$k" ] && echo "$n $k $(cat "$d/$k" 2>/dev/null)"; done; done; '
        f"echo {_END}; }}; sleep {interval_s:g}; done >> {shlex.quote(out_path)} 2>/dev/null"
    )


def log_gate(paths: Sequence[str], pattern: str, count: int) -> str:
    """A shell condition true while exactly `count` lines of the files match the fixed string `pattern`: a native
    runner's output file says when its timed runs go on (`NativeRunner.timed_gate`; the runners flush each line)."""
    files = " ".join(shlex.quote(p) for p in paths)
    return f'[ "$(cat {files} 2>/dev/null | grep -c -F {shlex.quote(pattern)})" = {int(count)} ]'


def logged(argv: Sequence[str], out: str, err: str) -> str:
    """A shell command running `argv` with its output in files (for `log_gate`), then replaying them on stdout
    and stderr and exiting with the runner's code."""
    o, e = shlex.quote(out), shlex.quote(err)
    return (f"{shlex.join(argv)} > {o} 2> {e} < /dev/null; rc=$?; cat {o}; cat {e} >&2; rm -f {o} {e}; "
            "exit $rc")


@dataclass(frozen=True)
class PowerSample:
    watts: float | None  # None: this block had no usable reading
    status: str | None


def parse_samples(text: str) -> list[PowerSample]:
    """Blocks written by `sampler_script` -> one sample each (the first battery supply with numbers wins)."""
    samples = []
    for block in text.split(_MARK)[1:]:
        lines = block.strip().splitlines()
        if not lines or lines[-1] != _END:
            continue
        values: dict[str, dict[str, str]] = {}
        for line in lines[:-1]:
            parts = line.split(None, 2)
            if len(parts) == 3:
                values.setdefault(parts[0], {})[parts[1]] = parts[2].strip()
        samples.append(_sample(values))
    return samples


def _sample(values: dict[str, dict[str, str]]) -> PowerSample:
    status = None
    for readings in values.values():
        status = status or readings.get("status")
        watts = _watts(readings)
        if watts is not None:
            return PowerSample(watts, readings.get("status"))
    return PowerSample(None, status)


def _watts(readings: dict[str, str]) -> float | None:
    try:
        if "power_now" in readings:
            return abs(float(readings["power_now"])) / 1e6
        if "current_now" in readings and "voltage_now" in readings:
            return abs(float(readings["current_now"]) * float(readings["voltage_now"])) / 1e12
    except ValueError:
        return None
    return None


def energy(samples: Sequence[PowerSample], *, inferences: int, seconds: float,
           interval_s: float = DEFAULT_INTERVAL_S, where: str = "on a core outside the mask") -> dict[str, Any]:
    """Mean power and energy per inference, or the reason there is no figure.

    Args:
        samples: what the sampler read during the timed runs.
        inferences: timed runs in that window. seconds: their total time. where: the sampler's CPU, for the method.
    Returns:
        {"mean_power_w", "energy_per_inference_mj", "samples", "method"} or {"energy": None, "reason": ...}.
    """
    method = f"battery fuel gauge ({POWER_SUPPLY}) sampled every {interval_s:g} s {where}"
    if not samples:
        return {"energy": None, "reason": f"no battery readings under {POWER_SUPPLY}"}
    if any((s.status or "").lower() == "charging" for s in samples):
        return {"energy": None, "reason": "the device is charging: the gauge measures the charger, not the SoC"}
    watts = [s.watts for s in samples if s.watts is not None]
    if len(watts) < MIN_SAMPLES:
        return {"energy": None, "reason": f"{len(watts)} power readings (need {MIN_SAMPLES}); run longer"}
    mean_w = sum(watts) / len(watts)
    per_inference_s = seconds / max(inferences, 1)
    return {
        "mean_power_w": round(mean_w, 4),
        "energy_per_inference_mj": round(mean_w * per_inference_s * 1000.0, 4),
        "samples": len(watts),
        "method": method,
    }


def outside_core(cpus: Sequence[int], mask: str | None) -> int | None:
    """A CPU for the sampler outside the measured `mask` (the lowest such CPU: little cores come first on phones);
    None when the mask covers every CPU (then the sampler would share a measured core, so it does not run)."""
    if mask is None:
        return None
    measured = {i for i in range(int(mask, 16).bit_length()) if int(mask, 16) >> i & 1}
    free = sorted(set(cpus) - measured)
    return free[0] if free else None


def has_battery(root: str = POWER_SUPPLY) -> bool:
    """Does this machine expose a battery-type power supply (checked before starting a local sampler)?"""
    import glob

    for type_file in glob.glob(f"{glob.escape(root)}/*/type"):
        try:
            with open(type_file, encoding="ascii", errors="replace") as fh:
                if fh.read().strip() == "Battery":
                    return True
        except OSError:
            continue
    return False
