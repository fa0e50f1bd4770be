"""`--runner app`: measure through the on-device benchmark app (android_app/, package org.effvit.bench).

Per measurement, on one phone (all device commands are argument lists, quoted by `AdbDevice.shell`):
1. install the APK once per device and APK hash: `pm path` + `sha256sum` of the installed base.apk against the
   local file, `adb install -r` when they differ (or the app is missing);
2. keep the screen awake (`settings put global stay_on_while_plugged_in 7`, `input keyevent KEYCODE_WAKEUP`) and
   restore the previous setting afterwards, whatever happened;
3. `logcat -c`, then `am start -W -n org.effvit.bench/.BenchActivity --es model PATH --es runtime T --ei threads N
   --ei warmup N --ei runs N --es out NAME [--es delegate D] [--ef min_seconds S] [--ef max_seconds S]
   [--es timed_flag NAME.timed]` (the app's loop holds the stop rule: at least `runs` AND `min_seconds`, never past
   `max_seconds`); `-W` returns once the activity is up, not when the benchmark is done, so
4. poll (one shell call each) until the result file exists in the app's files folder, the app's process is gone
   without one (a crash), or the timeout passes (then `am force-stop`);
5. pull the result and remove it from the device.
Failures (app not installed, permission denial, crash, timeout) come back as a non-zero RunOutput whose stderr is
one line of what happened followed by the logcat tail; the engine turns that into an error record and goes on.
The app is not pinned with taskset (Android's scheduler places a foreground app), so app records carry no mask.
Power: with `power_cpu`, a battery sampler (power.py) is started in the background before `am start`, pinned to that
CPU (the lowest: a little core on phones) at the lowest priority, reading only while the app's `timed_flag` file
exists; it is stopped once the result is in. The app is not pinned, so the scheduler may still put app threads on
that CPU: the record's energy method says so.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DeviceError, MissingFileError
from ..fileio import sha256_file
from .adb import AdbDevice, DeviceDisconnected, _run
from .app_result import app_output
from .devices import DEVICE_ROOT, RunOutput
from .parsers import RunnerOutputError
from .power import sampler_script

log = logging.getLogger(__name__)

PACKAGE = "org.effvit.bench"
COMPONENT = f"{PACKAGE}/.BenchActivity"
RESULT_DIR = f"/sdcard/Android/data/{PACKAGE}/files"
RUNNER_NAMES = {"tflite": "app-litert", "executorch": "app-executorch", "onnx": "app-onnxruntime"}
STAY_ON = "stay_on_while_plugged_in"
POLL_S = 0.5
LOGCAT_LINES = 200
INSTALL_TIMEOUT_S = 300.0
# A process that has not shown up yet right after `am start -W` is given this long before it counts as gone.
_START_GRACE_S = 3.0
_NOT_INSTALLED = re.compile(r"does not exist|Activity not started, unable to resolve|Unknown package", re.I)
_DENIED = re.compile(r"Permission Denial|SecurityException|not exported", re.I)


def default_apk() -> Path:
    """Where `make android-app` puts the APK (android_app/build/offline/effvit-bench.apk of this checkout)."""
    return Path(__file__).resolve().parents[2] / "android_app" / "build" / "offline" / "effvit-bench.apk"


@dataclass(frozen=True)
class AppPackage:
    """The local APK: path, sha256 and the backends its build included (from apk-info.json beside it, if any)."""

    path: Path
    sha256: str
    backends: tuple[str, ...] | None  # None: unknown (no apk-info.json, e.g. a Gradle build)

    @classmethod
    def load(cls, apk: Path | None) -> AppPackage:
        """Raises MissingFileError naming how to build the APK when it does not exist."""
        path = Path(apk) if apk is not None else default_apk()
        if not path.is_file():
            raise MissingFileError(f"APK {path} does not exist: build it with `make android-app` (or Gradle, see "
                                   "android_app/README.md) or pass --apk PATH")
        info = path.with_name("apk-info.json")
        backends: tuple[str, ...] | None = None
        if info.is_file():
            try:
                data = json.loads(info.read_text(encoding="utf-8"))
                if data.get("sha256") == sha256_file(path):
                    backends = tuple(data.get("backends") or ())
            except (OSError, ValueError):
                backends = None
        return cls(path, sha256_file(path), backends)

    def may_have(self, target: str) -> bool:
        """False only when the build info says the APK was built without this runtime."""
        return self.backends is None or target in self.backends


@dataclass
class AppSession:
    """The app on one phone: installs it when needed and runs one measurement per `run` call."""

    adb: AdbDevice
    package: AppPackage
    installed_sha: str | None = None  # what this session knows is installed (None: check the device)
    events: list[str] = field(default_factory=list)  # "install" per (re)install, for the CLI and tests

    # --- install ------------------------------------------------------------------------------------------------
    def installed_apk_sha(self) -> str | None:
        """sha256 of the installed base.apk, None when the package is not installed."""
        rc, out, _ = self.adb.shell(["pm", "path", PACKAGE])
        paths = [ln.split(":", 1)[1].strip() for ln in str(out).splitlines() if ln.startswith("package:")]
        if rc != 0 or not paths:
            return None
        base = next((p for p in paths if p.endswith("/base.apk")), paths[0])
        return self.adb.sha256(base) or "unknown"

    def ensure_installed(self) -> bool:
        """Install (adb install -r) unless the device already has this APK; True when it installed.

        Raises:
            DeviceError: the install failed (the message carries adb's Failure line and a fix).
        """
        if self.installed_sha == self.package.sha256:
            return False
        if self.installed_apk_sha() == self.package.sha256:
            self.installed_sha = self.package.sha256
            return False
        what = f"adb install -r {self.package.path.name}"
        proc = _run(self.adb.adb, ["-s", self.adb.serial, "install", "-r", str(self.package.path)],
                    timeout=INSTALL_TIMEOUT_S, env=self.adb.env, what=what)
        text = (proc.stdout + proc.stderr).decode(errors="replace")
        if "Success" not in text:
            if proc.returncode != 0 and not text.strip():
                raise self.adb._failure(what, text)
            failure = next((ln.strip() for ln in text.splitlines() if "Failure" in ln or "rror" in ln),
                           text.strip()[-300:] or "no output")
            hint = (f"; an app with another signature is installed: `adb -s {self.adb.serial} uninstall {PACKAGE}`"
                    if "UPDATE_INCOMPATIBLE" in failure or "SIGNATURE" in failure else "")
            raise DeviceError(f"{what} on {self.adb.serial} failed: {failure}{hint}")
        if self.installed_apk_sha() is None:
            raise DeviceError(f"{what} on {self.adb.serial} said Success but `pm path {PACKAGE}` finds no package")
        self.installed_sha = self.package.sha256
        self.events.append("install")
        log.info("%s: installed %s (sha256 %s)", self.adb.serial, self.package.path, self.package.sha256[:12])
        return True

    # --- one measurement ----------------------------------------------------------------------------------------
    def run(self, artifact_path: str, target: str, *, threads: int, runs: int, warmup: int, timeout: float,
            delegate: str | None = None, input_path: str | None = None, min_seconds: float = 0.0,
            max_seconds: float | None = None, power_cpu: int | None = None) -> RunOutput:
        """One measurement; a pulled result file is in `RunOutput.result` (returncode 0), else returncode 1.

        `input_path`: a device file (raw float32 or .npy) to feed instead of the fixed-seed input. `power_cpu`: run
        the battery sampler there during the timed runs (None: no sampler; the output's power_note says so).
        """
        start = time.perf_counter()
        self.ensure_installed()
        token = secrets.token_hex(8)
        name = f"{token}.json"
        remote = f"{RESULT_DIR}/{name}"
        previous = self._keep_awake()
        sampler = None
        try:
            self.adb.shell(["logcat", "-c"])
            argv = ["am", "start", "-W", "-n", COMPONENT, "--es", "model", artifact_path, "--es", "runtime", target,
                    "--ei", "threads", str(threads), "--ei", "warmup", str(warmup), "--ei", "runs", str(runs),
                    "--es", "out", name]
            if delegate is not None:
                argv += ["--es", "delegate", delegate]
            if input_path is not None:
                argv += ["--es", "input", input_path]
            if min_seconds > 0:
                argv += ["--ef", "min_seconds", f"{min_seconds:g}"]
            if max_seconds is not None:
                argv += ["--ef", "max_seconds", f"{max_seconds:g}"]
            if power_cpu is not None:
                argv += ["--es", "timed_flag", f"{token}.timed"]
                sampler = self._start_sampler(f"{RESULT_DIR}/{token}.timed", token, power_cpu)
            rc, out, err = self.adb.shell(argv, timeout=60)
            started = f"{out}\n{err}"
            if _NOT_INSTALLED.search(started):
                self.installed_sha = None  # reinstall before the next measurement
                return self._failed(start, f"app {PACKAGE} is not installed on {self.adb.serial} (am start: "
                                           f"{_line(started)}); it is reinstalled for the next measurement")
            if _DENIED.search(started):
                return self._failed(start, f"am start was refused (missing permission): {_line(started)}")
            if rc != 0 or "Error" in started:
                return self._failed(start, f"am start failed with {rc}: {_line(started)}")
            outcome = self._wait(remote, timeout)
            if outcome != "done":
                if outcome == "timeout":
                    self.adb.shell(["am", "force-stop", PACKAGE])
                    return self._failed(start, f"app did not write its result within {timeout:g}s (stopped it)")
                return self._failed(start, "app process ended without writing its result (crash?)")
            with tempfile.TemporaryDirectory(prefix="effvit-app-") as tmp:
                try:
                    local = self.adb.pull(remote, Path(tmp) / name)
                except DeviceDisconnected:
                    raise
                except DeviceError as exc:
                    return self._failed(start, f"cannot pull the app's result {remote}: {exc}")
                text = local.read_text(encoding="utf-8", errors="replace")
            self.adb.shell(["rm", "-f", remote])
            power = self._stop_sampler(sampler, token) if sampler is not None else None
            sampler = None
            note = None if power_cpu is not None else "no power sampler: no CPU given for it"
            return RunOutput(0, str(out), "", time.perf_counter() - start, text, power=power, power_note=note)
        finally:
            if sampler is not None:
                self._stop_sampler(sampler, token)  # the run failed: stop it and clean up
            self._restore_awake(previous)

    # --- power ----------------------------------------------------------------------------------------------------
    def _start_sampler(self, flag: str, token: str, cpu: int) -> str:
        """Start the battery sampler in the background (ignoring SIGHUP, as nohup would: it outlives this shell
        call); returns its pid."""
        samples = f"{DEVICE_ROOT}/results/{token}.power"
        loop = "trap '' HUP; " + sampler_script(samples, only_while=flag)
        script = (f"mkdir -p {DEVICE_ROOT}/results; rm -f {shlex.quote(samples)}; "
                  f"taskset {format(1 << cpu, 'x')} nice -n 19 sh -c {shlex.quote(loop)} "
                  "> /dev/null 2>&1 < /dev/null & echo $!")
        _, out, _ = self.adb.shell(["sh", "-c", script])
        return str(out).strip().splitlines()[-1] if str(out).strip() else ""

    def _stop_sampler(self, pid: str, token: str) -> str:
        """Stop the sampler, return what it read and remove its file (and a flag file a crashed app left)."""
        samples = f"{DEVICE_ROOT}/results/{token}.power"
        kill = f"kill {pid} 2>/dev/null; " if pid.isdigit() else ""
        _, text, _ = self.adb.shell(["sh", "-c", f"{kill}cat {shlex.quote(samples)} 2>/dev/null; rm -f "
                                     f"{shlex.quote(samples)} {shlex.quote(f'{RESULT_DIR}/{token}.timed')}"])
        return str(text)

    def output_for_input(self, artifact_path: str, target: str, input_file: Path, *, threads: int,
                         timeout: float) -> tuple[list[float], list[int]]:
        """Run the artifact once in the app on a local input file (.npy float32, e.g. an export's verification
        input) and return (all output values, output shape), for a device-parity check.

        Raises:
            RunnerOutputError: the app failed (its message, or the failure line and logcat tail).
            DeviceError: adb failures (push, install).
        """
        remote = f"{DEVICE_ROOT}/models/{sha256_file(input_file)[:16]}-{Path(input_file).name}"
        self.adb.makedirs(f"{DEVICE_ROOT}/models")
        self.adb.push_if_changed(input_file, remote)
        out = self.run(artifact_path, target, threads=threads, runs=1, warmup=0, timeout=timeout, input_path=remote)
        if out.returncode != 0:
            raise RunnerOutputError(out.stderr.split("\n--- logcat", 1)[0])
        return app_output(out.result or "")

    def _wait(self, remote: str, timeout: float) -> str:
        """Poll until "done" (result present), "gone" (process ended without it) or "timeout"."""
        q = shlex.quote(remote)
        script = (f"if [ -s {q} ]; then echo done; elif pidof {PACKAGE} >/dev/null 2>&1; then echo running; "
                  "else echo gone; fi")
        began = time.monotonic()
        deadline = began + timeout
        gone = 0
        while True:
            _, out, _ = self.adb.shell(["sh", "-c", script], timeout=60)
            state = str(out).strip().splitlines()[-1] if str(out).strip() else "gone"
            if state == "done":
                return "done"
            # Twice gone in a row, and past the start-up grace: one poll may fall between exit and rename.
            gone = gone + 1 if state == "gone" and time.monotonic() - began > _START_GRACE_S else 0
            if gone >= 2:
                return "gone"
            if time.monotonic() >= deadline:
                return "timeout"
            time.sleep(POLL_S)

    def _failed(self, start: float, message: str) -> RunOutput:
        tail = self.logcat_tail()
        return RunOutput(1, "", f"{message}\n--- logcat (last {LOGCAT_LINES} lines) ---\n{tail}",
                         time.perf_counter() - start)

    def logcat_tail(self) -> str:
        """The last lines of the device log (this run's: it is cleared before each start)."""
        try:
            _, out, _ = self.adb.shell(["logcat", "-d", "-t", str(LOGCAT_LINES)], timeout=60)
        except DeviceDisconnected:
            raise
        except DeviceError as exc:
            return f"(logcat failed: {exc})"
        return str(out).strip()

    # --- screen -------------------------------------------------------------------------------------------------
    def _keep_awake(self) -> str | None:
        """Keep the screen on while plugged in and wake it; returns the previous setting (None: unknown)."""
        rc, out, _ = self.adb.shell(["settings", "get", "global", STAY_ON])
        previous = str(out).strip() if rc == 0 else None
        self.adb.shell(["settings", "put", "global", STAY_ON, "7"])
        self.adb.shell(["input", "keyevent", "KEYCODE_WAKEUP"])
        return previous

    def _restore_awake(self, previous: str | None) -> None:
        if previous is None:
            return
        try:
            if previous in ("", "null"):
                self.adb.shell(["settings", "delete", "global", STAY_ON])
            else:
                self.adb.shell(["settings", "put", "global", STAY_ON, previous])
        except DeviceError as exc:  # the device may be gone; the measurement's own error matters more
            log.warning("%s: could not restore %s=%s: %s", self.adb.serial, STAY_ON, previous, exc)


def _line(text: str) -> str:
    """The most telling line of am's output: the denial, else the error, else the exception, else the first."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for pattern in (r"Permission Denial", r"^Error:", r"Exception:", r"error"):
        found = [ln for ln in lines if re.search(pattern, ln, re.I)]
        if found:
            return found[0][:300]
    return (lines or ["no output"])[0][:300]
