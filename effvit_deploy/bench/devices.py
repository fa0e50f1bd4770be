"""Devices the bench runs on, behind one interface: this machine (`local`) and phones over adb (`adb:SERIAL`).

    dev = open_device("adb:192.168.1.20:5555")     # or "local", "adb:R58M123"
    facts = dev.facts()                            # model, SoC, Android, ABI, CPU clusters, governor
    path = dev.prepare(Path("export/.../tflite-fp32.tflite"), sha256, "efficientvit-b0-224x224-tflite-fp32.tflite")
    out = dev.run_python_runner(path, "tflite", threads=4, runs=50, warmup=10, mask="f0")

Every measurement is a separate process: `python3 python_runner.py ...` (the runner file is pushed to phones once, by
hash) or a native binary from `--runner-dir` (pushed once to /data/local/tmp/effvit/bin). Artifacts go to
/data/local/tmp/effvit/models/<sha256 prefix>-<name>, pushed only when the device copy's sha256 differs. Device
commands are argument lists; `AdbDevice.shell` quotes every argument, so file names with spaces, quotes or `;` reach
the device as data. Runs are pinned with `taskset MASK` (on this machine: `taskset` when installed, else
`os.sched_setaffinity` in the child before exec).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DeviceError, InvalidInputError
from ..fileio import owned_temp_dir, remove_stale_temps
from . import emulation, python_runner
from .adb import DEVICE_TMP, AdbDevice, DeviceDisconnected, DeviceTimeout
from .device_facts import LocalShell, big_core_mask, mask_cpus, read_cur_freqs, read_device_facts, read_thermal
from .device_lock import DeviceLock, identity
from .native import NativeRunner, wrap
from .power import POWER_SUPPLY, has_battery, outside_core, sampler_script

log = logging.getLogger(__name__)

DEVICE_ROOT = "/data/local/tmp/effvit"
PYTHON_RUNNER_FILE = Path(python_runner.__file__)
# serial number property (empty on a Linux host: hostname instead), then the kernel's boot id
_IDENTITY_SCRIPT = ("(getprop ro.serialno 2>/dev/null | grep . || hostname 2>/dev/null || echo); "
                    "cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo")
# One python3 call answers which runtimes are installed (find_spec: no heavy import such as torch for ExecuTorch).
_RUNTIME_CHECK = (
    "import importlib.util as u, json, platform\n"
    "def has(names):\n"
    "    for n in names:\n"
    "        try:\n"
    "            if u.find_spec(n) is not None: return True\n"
    "        except Exception: pass\n"
    "    return False\n"
    "mods = {mods!r}\n"
    "print(json.dumps({{'python': platform.python_version(), 'runtimes': {{t: has(m) for t, m in mods.items()}}}}))\n"
)


@dataclass(frozen=True)
class RunOutput:
    """What one runner process did."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float  # wall time of the process as seen by the harness
    result: str | None = None  # the runner's result file, when it wrote one and it was fetched (adb pull)
    power: str | None = None  # what the power sampler wrote during the timed runs (power.parse_samples reads it)
    power_note: str | None = None  # why no sampler ran, when none did


@dataclass(frozen=True)
class PythonInfo:
    """The device's Python: its version and which runtimes it can import (target -> bool); None: no python."""

    version: str | None
    runtimes: dict[str, bool]


class Device(ABC):
    """A place to run measurements. One worker thread uses one Device; it is not shared between threads."""

    kind: str
    spec: str  # as the user wrote it
    serial: str  # identifies the device in records ("local" or the adb serial)

    def __init__(self) -> None:
        self._facts: dict[str, Any] | None = None
        self._python: PythonInfo | None = None
        self._identity: str | None = None
        self._lock: DeviceLock | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    # --- lifecycle and facts ------------------------------------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Check the device is reachable and usable (raises DeviceError / MissingDependencyError with one line)."""

    def reconnect(self) -> None:
        """Try to get the device back after a disconnect (raises DeviceError when it stays away)."""
        return None  # nothing to reconnect for this machine

    # --- one harness per device (see device_lock.py) ------------------------------------------------------------
    def identity(self) -> str:
        """What the device is, the same however it is addressed (here: kind and serial; phones and this machine
        ask the device itself, see `_read_identity`)."""
        if self._identity is None:
            self._identity = self._read_identity()
        return self._identity

    def _read_identity(self) -> str:
        return identity(None, None, f"{self.kind}:{self.serial}")

    def _identity_from_shell(self) -> str:
        """Serial number property (hostname on Linux) and kernel boot id, in one shell call."""
        rc, out, _ = self._shell().shell(["sh", "-c", _IDENTITY_SCRIPT], timeout=30)
        lines = (str(out).splitlines() + ["", ""])[:2] if rc == 0 else ["", ""]
        return identity(lines[0], lines[1], f"{self.kind}:{self.serial}")

    def lock(self) -> bool:
        """Hold this device for this process (released by `unlock` or when the process ends, even by kill -9).

        Returns:
            True when this call took the lock, False when this object already held it.
        Raises:
            DeviceError: another harness holds it.
        """
        if self._lock is not None and self._lock.held:
            return False
        lock = DeviceLock(self.identity(), self.spec)
        lock.acquire()
        self._lock = lock
        self.clean_stale()
        return True

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def clean_stale(self) -> None:
        """Remove what a dead run left on the device (called with the lock held: nobody else is using it)."""
        return None

    def mem_available(self) -> int | None:
        """MemAvailable of /proc/meminfo in bytes (None when the device does not say)."""
        rc, out, _ = self._shell().shell(["cat", "/proc/meminfo"], timeout=30)
        for line in str(out).splitlines() if rc == 0 else []:
            if line.startswith("MemAvailable:") and (parts := line.split())[1:2] and parts[1].isdigit():
                return int(parts[1]) * 1024
        return None

    @abstractmethod
    def _shell(self) -> Any:
        """Object with `shell(args, timeout=...)` for the device_facts readers."""

    def facts(self) -> dict[str, Any]:
        """Model, SoC, Android version, ABI, CPU clusters, governor (read once, then cached)."""
        if self._facts is None:
            facts = read_device_facts(self._shell())
            # identity: what the device is (serial number property + boot id), recorded with every measurement
            facts.update(kind=self.kind, spec=self.spec, serial=self.serial, identity=self.identity())
            self._facts = self._adjust_facts(facts)
        return self._facts

    def _adjust_facts(self, facts: dict[str, Any]) -> dict[str, Any]:
        return facts

    def cpus(self) -> list[int]:
        """CPUs a measurement may use."""
        facts = self.facts()
        return list(facts.get("allowed_cpus") or [c for cl in facts["clusters"] for c in cl["cpus"]])

    def thermal(self) -> dict[str, float]:
        """Thermal zone temperatures in °C now ({} when the device exposes none)."""
        return read_thermal(self._shell())

    def freqs(self) -> dict[str, int]:
        """Current CPU clocks in kHz now, keyed by CPU number as a string ({} without cpufreq)."""
        return {str(cpu): khz for cpu, khz in read_cur_freqs(self._shell()).items()}

    # --- runners ------------------------------------------------------------------------------------------------
    @abstractmethod
    def python_command(self) -> list[str]:
        """How to start the device's Python (e.g. ["python3"])."""

    def python_info(self) -> PythonInfo:
        """Python version and which runtimes are importable there (checked once)."""
        if self._python is None:
            code = _RUNTIME_CHECK.format(mods={t: list(m) for t, m in python_runner._IMPORTS.items()})
            try:
                out = self.run([*self.python_command(), "-c", code], timeout=120)
            except DeviceTimeout:
                out = RunOutput(124, "", "timed out", 0.0)
            info = _parse_python_info(out)
            self._python = info
        return self._python

    @abstractmethod
    def prepare(self, artifact: Path, sha256: str, name: str) -> str:
        """Make the artifact available on the device; returns its path there."""

    def artifact_path(self, sha256: str, name: str) -> str:
        """Where `prepare` puts an artifact on the device."""
        return f"{DEVICE_ROOT}/models/{sha256[:16]}-{name}"

    def free_space(self, keep: list[str]) -> None:
        """Storage full: remove what the harness may remove, except `keep` (nothing to remove on this machine)."""
        return None

    @abstractmethod
    def prepare_python_runner(self) -> str:
        """Path of the runner script on the device."""

    @abstractmethod
    def prepare_native(self, binary: Path, libraries: list[Path]) -> tuple[str, str | None]:
        """Make a native binary (and its shared libraries) runnable; returns (binary path, library dir or None)."""

    @abstractmethod
    def run(self, argv: list[str], *, timeout: float, mask: str | None = None) -> RunOutput:
        """Run one process pinned to `mask` (hex, None: not pinned) and wait for it."""

    def run_python_runner(self, artifact_path: str, target: str, *, threads: int, runs: int, warmup: int,
                          mask: str | None, timeout: float, input_path: str | None = None, min_seconds: float = 0.0,
                          max_seconds: float | None = None) -> RunOutput:
        """One measurement with the Python runner (a fresh process); with `input_path` it runs on that input and
        returns output 0 in its result (the device parity check)."""
        argv = [*self.python_command(), self.prepare_python_runner(), "--artifact", artifact_path,
                "--runtime", target, "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup),
                *_input_args(input_path), *stop_args(min_seconds, max_seconds)]
        return self.run(argv, timeout=timeout, mask=mask)

    def run_native(self, runner: NativeRunner, binary_path: str, artifact_path: str, *, threads: int, runs: int,
                   warmup: int, mask: str | None, library_dir: str | None, timeout: float) -> RunOutput:
        """One measurement with a native binary."""
        argv = runner.command(binary_path, artifact_path, threads=threads, runs=runs, warmup=warmup)
        if library_dir is not None:
            argv = wrap(argv, mask=None, library_dir=library_dir)
        return self.run(argv, timeout=timeout, mask=mask)

    # --- output files (device parity) -----------------------------------------------------------------------------
    def output_path(self, name: str) -> str:
        """A fresh path on the device where a runner may write an output file (here: this machine's temp folder,
        named after this process so a run killed before reading it leaves nothing the next run does not remove)."""
        folder = tempfile.gettempdir()
        remove_stale_temps(folder)
        safe = "".join(c if c.isalnum() else "_" for c in name)  # `fileio.remove_stale_temps` naming
        return str(Path(folder) / f"effvit-output-{os.getpid()}-{secrets.token_hex(8)}_{safe}")

    def read_output(self, path: str) -> bytes | None:
        """The file a runner wrote at `path` (then removed), or None when there is none."""
        try:
            data = Path(path).read_bytes()
        except OSError:
            return None
        Path(path).unlink(missing_ok=True)
        return data

    # --- affinity -----------------------------------------------------------------------------------------------
    def mask_for(self, cores: str, threads: int) -> tuple[str | None, str]:
        """(hex mask, how it was chosen) for `--cores` big|all|MASK and a thread count; see `choose_mask`."""
        return choose_mask(self.facts(), self.cpus(), cores, threads, device=self.spec)


def choose_mask(facts: dict[str, Any], cpus: list[int], cores: str, threads: int, *,
                device: str = "device") -> tuple[str, str]:
    """The affinity mask for one measurement and a note on how it was chosen (recorded with the result).

    big: the `threads` fastest CPUs by cpuinfo_max_freq (prime core first); without cpufreq every allowed CPU.
    all: every allowed CPU. A hex mask: used as given, but it must select at least one allowed CPU.

    Raises:
        InvalidInputError: a user mask that selects none of the device's CPUs.
    """
    if not cpus:
        raise InvalidInputError(f"{device}: no CPUs found, cannot pin the runner")
    all_mask = format(sum(1 << c for c in cpus), "x")
    if cores == "all":
        return all_mask, "all CPUs"
    if cores == "big":
        clusters = [{"cpus": [c for c in cl["cpus"] if c in cpus], "max_khz": cl.get("max_khz")}
                    for cl in facts.get("clusters", [])]
        clusters = [cl for cl in clusters if cl["cpus"]]
        if clusters and any(cl["max_khz"] for cl in clusters):
            return big_core_mask(clusters, threads), "big cores (by cpuinfo_max_freq)"
        return all_mask, "all allowed CPUs (no cpufreq: core speeds unknown)"
    chosen = mask_cpus(cores)
    if not set(chosen) & set(cpus):
        raise InvalidInputError(f"--cores {cores} selects CPUs {chosen} but {device} has CPUs {cpus}; "
                                "give a mask of existing CPUs, or use big / all")
    return format(int(cores, 16), "x"), "user mask"


def stop_args(min_seconds: float, max_seconds: float | None) -> list[str]:
    """The python runner's stop-rule flags (none for the defaults: a count-only rule)."""
    args = ["--min-seconds", f"{min_seconds:g}"] if min_seconds > 0 else []
    return args + (["--max-seconds", f"{max_seconds:g}"] if max_seconds is not None else [])


def _parse_python_info(out: RunOutput) -> PythonInfo:
    import json

    if out.returncode == 0:
        for line in reversed(out.stdout.splitlines()):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "runtimes" in data:
                return PythonInfo(str(data.get("python")), {k: bool(v) for k, v in data["runtimes"].items()})
    return PythonInfo(None, dict.fromkeys(python_runner.RUNTIMES, False))


# --- this machine --------------------------------------------------------------------------------------------------


class LocalDevice(Device):
    """This machine: the Python running the harness, artifacts used in place, runs pinned with taskset/affinity."""

    kind = "local"
    power_root = POWER_SUPPLY  # where the battery is read (tests point it at a fake tree)

    def __init__(self, spec: str = "local") -> None:
        super().__init__()
        self.spec = spec
        self.serial = "local"
        self._shell_obj = LocalShell()
        self._taskset = shutil.which("taskset")

    def open(self) -> None:
        pass

    def _shell(self) -> LocalShell:
        return self._shell_obj

    def _read_identity(self) -> str:
        return self._identity_from_shell()

    def _adjust_facts(self, facts: dict[str, Any]) -> dict[str, Any]:
        # A container or cgroup may allow only some of the CPUs the kernel lists: never pin outside them.
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        if allowed:
            facts["allowed_cpus"] = allowed
        facts["cpufreq"] = any(cl.get("max_khz") for cl in facts.get("clusters", []))
        facts.setdefault("python", sys.version.split()[0])
        return facts

    def python_command(self) -> list[str]:
        return [sys.executable]

    def prepare(self, artifact: Path, sha256: str, name: str) -> str:
        return str(Path(artifact).resolve())

    def prepare_python_runner(self) -> str:
        return str(PYTHON_RUNNER_FILE)

    def prepare_native(self, binary: Path, libraries: list[Path]) -> tuple[str, str | None]:
        folder = str(Path(binary).resolve().parent) if libraries else None
        emu = emulation.local_emulation(Path(binary).resolve().parent)
        if emu is not None:  # a foreign-arch folder (aarch64 on this x86-64 host): run it under qemu-user
            return str(emulation.launcher(Path(binary), emu)), folder
        return str(Path(binary).resolve()), folder

    def run_python_runner(self, artifact_path: str, target: str, *, threads: int, runs: int, warmup: int,
                          mask: str | None, timeout: float, input_path: str | None = None, min_seconds: float = 0.0,
                          max_seconds: float | None = None) -> RunOutput:
        """The runner, with a battery sampler on a CPU outside `mask` when this machine has a battery."""
        core = outside_core(self.cpus(), mask)
        if not has_battery(self.power_root):
            note = "no battery-type supply under /sys/class/power_supply on this machine"
        elif core is None:
            note = "no CPU outside the measured mask to run the power sampler on"
        else:
            return self._sampled_run(artifact_path, target, core, threads=threads, runs=runs, warmup=warmup,
                                     mask=mask, timeout=timeout, min_seconds=min_seconds, max_seconds=max_seconds,
                                     input_path=input_path)
        out = super().run_python_runner(artifact_path, target, threads=threads, runs=runs, warmup=warmup, mask=mask,
                                        timeout=timeout, input_path=input_path, min_seconds=min_seconds,
                                        max_seconds=max_seconds)
        return dataclasses.replace(out, power_note=note)

    def _sampled_run(self, artifact_path: str, target: str, core: int, *, mask: str | None, timeout: float,
                     **kw: Any) -> RunOutput:
        with owned_temp_dir("power") as tmp:
            samples, flag = Path(tmp) / "power.txt", Path(tmp) / "timed"
            script = sampler_script(str(samples), root=self.power_root, only_while=str(flag))
            sampler = subprocess.Popen(["sh", "-c", script],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       preexec_fn=lambda: os.sched_setaffinity(0, {core}))
            try:
                argv = [*self.python_command(), self.prepare_python_runner(), "--artifact", artifact_path,
                        "--runtime", target, "--threads", str(kw["threads"]), "--runs", str(kw["runs"]),
                        "--warmup", str(kw["warmup"]), *_input_args(kw["input_path"]),
                        *stop_args(kw["min_seconds"], kw["max_seconds"]), "--timed-flag", str(flag)]
                out = self.run(argv, timeout=timeout, mask=mask)
            finally:
                sampler.kill()
                sampler.wait()
            text = samples.read_text(errors="replace") if samples.exists() else ""
        return dataclasses.replace(out, power=text)

    def run(self, argv: list[str], *, timeout: float, mask: str | None = None) -> RunOutput:
        preexec = None
        if mask is not None:
            if self._taskset is not None:
                argv = [self._taskset, mask, *argv]
            elif hasattr(os, "sched_setaffinity"):
                cpus = set(mask_cpus(mask))
                preexec = lambda: os.sched_setaffinity(0, cpus)  # noqa: E731 - runs in the child before exec
        start = time.perf_counter()
        try:
            proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout,
                                  preexec_fn=preexec)
        except subprocess.TimeoutExpired as exc:
            raise DeviceTimeout(f"`{_short(argv)}` timed out after {timeout:g}s on this machine") from exc
        except FileNotFoundError:
            return RunOutput(127, "", f"{argv[0]}: not found", time.perf_counter() - start)
        return RunOutput(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                         time.perf_counter() - start)


# --- phones over adb -----------------------------------------------------------------------------------------------


class AdbPhone(Device):
    """A phone reached through the real adb client (USB serial, or HOST:PORT connected on demand)."""

    kind = "adb"

    def __init__(self, serial: str, spec: str | None = None) -> None:
        super().__init__()
        self.serial = serial
        self.spec = spec or f"adb:{serial}"
        self._adb: AdbDevice | None = None
        self._ready: set[str] = set()  # device paths known to hold the right file in this session
        self._made_dirs = False

    @property
    def adb(self) -> AdbDevice:
        if self._adb is None:
            self.open()
        assert self._adb is not None
        return self._adb

    def open(self) -> None:
        if self._adb is None:
            self._adb = AdbDevice.connect(self.serial)

    def _read_identity(self) -> str:
        return self._identity_from_shell()

    def reconnect(self) -> None:
        self._ready.clear()  # the device may have been wiped or replaced while away
        self._made_dirs = False
        self.adb.reconnect()

    def clean_stale(self) -> None:
        # result files and shell stderr files of a run that died before removing them; older versions also left
        # their stderr files directly in /data/local/tmp (this command's own stderr file goes too: the wrapper
        # tolerates that, and nothing is lost but this command's stderr)
        self.adb.shell(["sh", "-c", f"rm -rf {DEVICE_ROOT}/results/* {DEVICE_ROOT}/tmp/.stderr_* "
                        f"{DEVICE_TMP}/.effvit_stderr_* 2>/dev/null; true"])

    def free_space(self, keep: list[str]) -> None:
        """Storage full: remove every model file except `keep` (device paths), so the next push may fit."""
        keep_names = {posixpath.basename(k) for k in keep}
        rc, out, _ = self.adb.shell(["ls", "-1", f"{DEVICE_ROOT}/models"])  # one name per line: names may hold spaces
        stale = [f"{DEVICE_ROOT}/models/{n}" for n in str(out).splitlines() if rc == 0 and n and n not in keep_names]
        if stale:
            self.adb.shell(["rm", "-f", *stale])
        self._ready = {r for r in self._ready if r not in stale}
        log.info("%s: storage full, removed %d old model file(s)", self.spec, len(stale))

    def _shell(self) -> AdbDevice:
        return self.adb

    def python_command(self) -> list[str]:
        return ["python3"]

    def _mkdirs(self) -> None:
        if not self._made_dirs:
            self.adb.shell(["mkdir", "-p", f"{DEVICE_ROOT}/models", f"{DEVICE_ROOT}/bin", f"{DEVICE_ROOT}/results"],
                           check=True)
            self._made_dirs = True

    def _push(self, local: Path, remote: str, *, mode: str | None = None) -> str:
        if remote not in self._ready:
            self._mkdirs()
            pushed = self.adb.push_if_changed(local, remote)
            if mode is not None and pushed:
                self.adb.shell(["chmod", mode, remote], check=True)
            log.info("%s: %s %s", self.spec, "pushed" if pushed else "already has", remote)
            self._ready.add(remote)
        return remote

    def prepare(self, artifact: Path, sha256: str, name: str) -> str:
        return self._push(Path(artifact), self.artifact_path(sha256, name))

    def prepare_python_runner(self) -> str:
        return self._push(PYTHON_RUNNER_FILE, f"{DEVICE_ROOT}/python_runner.py")

    def prepare_native(self, binary: Path, libraries: list[Path]) -> tuple[str, str | None]:
        for lib in libraries:
            self._push(lib, f"{DEVICE_ROOT}/bin/{lib.name}")
        path = self._push(Path(binary), f"{DEVICE_ROOT}/bin/{Path(binary).name}", mode="755")
        return path, (f"{DEVICE_ROOT}/bin" if libraries else None)

    def run(self, argv: list[str], *, timeout: float, mask: str | None = None) -> RunOutput:
        if mask is not None:
            argv = ["taskset", mask, *argv]
        start = time.perf_counter()
        rc, out, err = self.adb.shell(argv, timeout=timeout)
        return RunOutput(rc, str(out), str(err), time.perf_counter() - start)

    def run_python_runner(self, artifact_path: str, target: str, *, threads: int, runs: int, warmup: int,
                          mask: str | None, timeout: float, input_path: str | None = None, min_seconds: float = 0.0,
                          max_seconds: float | None = None) -> RunOutput:
        """Run the runner with `--out FILE` on the device, then `adb pull` FILE: the result travels byte-exact.

        A battery sampler runs beside it on a CPU outside `mask` (one shell script starts it, runs the runner and
        stops it), reading only while the runner's timed-runs flag file exists."""
        remote = f"{DEVICE_ROOT}/results/{secrets.token_hex(8)}.json"
        self._mkdirs()
        argv = [*self.python_command(), self.prepare_python_runner(), "--artifact", artifact_path,
                "--runtime", target, "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup),
                *_input_args(input_path), *stop_args(min_seconds, max_seconds), "--out", remote]
        core = outside_core(self.cpus(), mask)
        if core is None:
            out = dataclasses.replace(self.run(argv, timeout=timeout, mask=mask),
                                      power_note="no CPU outside the measured mask to run the power sampler on")
        else:
            out = self._sampled_run(argv, remote, core, mask=mask, timeout=timeout)
        if out.returncode != 0:
            return out
        with owned_temp_dir("pull") as tmp:  # named by our pid: a killed run's folder is removed by the next one
            try:
                local = self.adb.pull(remote, Path(tmp) / "result.json")
            except DeviceDisconnected:
                raise
            except DeviceError as exc:
                return RunOutput(out.returncode, out.stdout, f"{out.stderr}\nno result file: {exc}", out.seconds, "")
            result = local.read_text(encoding="utf-8", errors="replace")
        self.adb.shell(["rm", "-f", remote])
        return dataclasses.replace(out, result=result)

    def _sampled_run(self, argv: list[str], remote: str, core: int, *, mask: str | None,
                     timeout: float) -> RunOutput:
        samples, flag = remote.removesuffix(".json") + ".power", remote.removesuffix(".json") + ".timed"
        runner = ["taskset", mask, *argv] if mask is not None else argv
        script = (f"rm -f {shlex.quote(samples)}; taskset {format(1 << core, 'x')} sh -c "
                  f"{shlex.quote(sampler_script(samples, only_while=flag))} & sp=$!; "
                  f"{shlex.join([*runner, '--timed-flag', flag])}; rc=$?; kill $sp 2>/dev/null; exit $rc")
        start = time.perf_counter()
        rc, stdout, stderr = self.adb.shell(["sh", "-c", script], timeout=timeout)
        seconds = time.perf_counter() - start
        _, text, _ = self.adb.shell(["sh", "-c", f"cat {shlex.quote(samples)} 2>/dev/null; "
                                     f"rm -f {shlex.quote(samples)} {shlex.quote(flag)}"])
        return RunOutput(rc, str(stdout), str(stderr), seconds, power=str(text))

    def output_path(self, name: str) -> str:
        self._mkdirs()
        return f"{DEVICE_ROOT}/results/{secrets.token_hex(8)}-{name}"

    def read_output(self, path: str) -> bytes | None:
        with owned_temp_dir("pull") as tmp:
            try:
                local = self.adb.pull(path, Path(tmp) / "output.bin")
            except DeviceDisconnected:
                raise
            except DeviceError:
                return None
            data = local.read_bytes()
        self.adb.shell(["rm", "-f", path])
        return data

    def native_installed(self, binaries: list[str]) -> dict[str, bool]:
        """Which native runners already sit in /data/local/tmp/effvit/bin (one shell call)."""
        script = "; ".join(f"test -x {DEVICE_ROOT}/bin/{b} && echo {b}" for b in binaries) + "; true"
        rc, out, _ = self.adb.shell(["sh", "-c", script])
        present = set(str(out).split())
        return {b: b in present for b in binaries}


# --- specs ---------------------------------------------------------------------------------------------------------


def parse_device_spec(spec: str) -> Device:
    """`local`, `adb:SERIAL` or `adb:HOST:PORT` -> a Device (not yet opened).

    Raises:
        InvalidInputError: anything else.
    """
    if spec == "local":
        return LocalDevice()
    if spec.startswith("adb:") and spec[4:].strip():
        return AdbPhone(spec[4:], spec)
    raise InvalidInputError(f"unknown device {spec!r}: use local, adb:SERIAL or adb:HOST:PORT "
                            "(`effvit-bench devices` lists the adb serials)")


def open_devices(specs: list[str], *, lock: bool = False) -> list[Device]:
    """Parse and open every device; fails on the first one that is unknown, offline or unauthorized.

    With `lock`, each device is also held for this process (one harness per device, see device_lock.py) and what
    a dead run left on it is removed; without, `engine.run_sweep` takes the locks for the time it measures.

    Raises:
        InvalidInputError: a bad or repeated spec, or one device named twice by different addresses.
        DeviceError / MissingDependencyError: a device is not usable, or another harness is using it.
    """
    if not specs:
        raise InvalidInputError("no device given: pass --device local or --device adb:SERIAL")
    devices = [parse_device_spec(s) for s in specs]
    seen: set[tuple[str, str]] = set()
    for dev in devices:
        if (dev.kind, dev.serial) in seen:
            raise InvalidInputError(f"device {dev.spec} given twice; each device runs one worker")
        seen.add((dev.kind, dev.serial))
    for dev in devices:
        dev.open()
    by_identity: dict[str, Device] = {}
    for dev in devices:
        if (first := by_identity.setdefault(dev.identity(), dev)) is not dev:
            raise InvalidInputError(f"{first.spec} and {dev.spec} are the same device ({dev.identity()}); "
                                    "give it once")
    if lock:
        try:
            for dev in devices:
                dev.lock()
        except BaseException:
            for dev in devices:
                dev.unlock()
            raise
    return devices


def _input_args(input_path: str | None) -> list[str]:
    """Python runner flags that feed the verification input and return output 0 in the result line."""
    return ["--input", input_path, "--output-in-result"] if input_path is not None else []


def _short(argv: list[str], limit: int = 80) -> str:
    text = " ".join(argv)
    return text if len(text) <= limit else text[: limit - 1] + "…"
