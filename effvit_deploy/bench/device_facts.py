"""What a device is (model, SoC, Android version, ABI, CPU clusters, governor) and its clocks and temperatures now.

Every reader takes any object with `shell(args, *, timeout=...) -> (exit_code, stdout, stderr)`: an `AdbDevice` for a
phone, or `LocalShell` for this machine. Each reader costs exactly one shell call, because one adb round trip costs
10-50 ms and a benchmark reads clocks and temperatures before and after every configuration; files are read in bulk
with `getprop` (all properties at once) and `grep -H . FILES` (one process, one `path:value` line per file).

`big_core_mask` turns the clusters into a taskset mask that pins a run to the fastest cores:

    >>> big_core_mask([{"cpus": [0, 1, 2, 3], "max_khz": 1785600}, {"cpus": [4, 5, 6], "max_khz": 2419200},
    ...                {"cpus": [7], "max_khz": 2841600}], 4)
    'f0'
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from effvit_deploy.bench.adb import DeviceTimeout, ShellResult
from effvit_deploy.errors import DeviceError, InvalidInputError

_CPU_DIR = "/sys/devices/system/cpu"
_FACTS_SCRIPT = f"""getprop 2>/dev/null
echo @@cpus
for c in {_CPU_DIR}/cpu[0-9]*; do [ -d "$c" ] && echo "$c"; done
echo @@cpufreq
grep -H . {_CPU_DIR}/cpu[0-9]*/cpufreq/cpuinfo_max_freq {_CPU_DIR}/cpu[0-9]*/cpufreq/scaling_governor 2>/dev/null
echo @@misc
echo "nproc=$(nproc 2>/dev/null)"
echo "machine=$(uname -m 2>/dev/null)"
grep -E '^(Hardware|model name)' /proc/cpuinfo 2>/dev/null | head -n 4
"""
_THERMAL_SCRIPT = "grep -H . /sys/class/thermal/thermal_zone*/type /sys/class/thermal/thermal_zone*/temp 2>/dev/null"
_FREQ_SCRIPT = f"grep -H . {_CPU_DIR}/cpu[0-9]*/cpufreq/scaling_cur_freq 2>/dev/null"
_PROP = re.compile(r"^\[(.+?)\]: \[(.*)\]$")
_CPUFREQ = re.compile(r"/cpu(\d+)/cpufreq/(\w+):(.*)$")
_ZONE = re.compile(r"/thermal_zone(\d+)/(type|temp):(.*)$")


class Shell(Protocol):
    """Anything that runs an argument list and returns (exit code, stdout, stderr)."""

    def shell(self, args: Sequence[str], *, timeout: float | None = None) -> tuple[int, Any, Any]: ...


class LocalShell:
    """Runs commands on this machine with the same call shape as `AdbDevice.shell` (no quoting needed: no shell)."""

    def shell(self, args: Sequence[str], *, timeout: float | None = None, check: bool = False,
              encoding: str | None = "utf-8") -> ShellResult:
        try:
            proc = subprocess.run(list(args), capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)
        except FileNotFoundError:
            return ShellResult(127, "" if encoding else b"", f"{args[0]}: not found\n" if encoding else b"")
        except subprocess.TimeoutExpired as e:
            raise DeviceTimeout(f"`{' '.join(args)}` timed out after {timeout:g}s on this machine") from e
        if check and proc.returncode != 0:
            raise DeviceError(f"`{' '.join(args)}` exited with {proc.returncode} on this machine: "
                                    f"{proc.stderr.decode(errors='replace').strip()[:200]}")
        if encoding is None:
            return ShellResult(proc.returncode, proc.stdout, proc.stderr)
        return ShellResult(proc.returncode, proc.stdout.decode(encoding, errors="replace"),
                           proc.stderr.decode(encoding, errors="replace"))


def _run_script(dev: Shell, script: str, timeout: float) -> str:
    _, out, _ = dev.shell(["sh", "-c", script], timeout=timeout)
    return out.decode(errors="replace") if isinstance(out, bytes) else str(out)


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {"props": []}
    current = "props"
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        else:
            sections[current].append(line.rstrip("\r"))
    return sections


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def read_device_facts(dev: Shell, *, timeout: float = 30.0) -> dict[str, Any]:
    """Model, manufacturer, SoC, Android release/SDK, ABI, CPU clusters and governor, in one shell call.

    Missing values (e.g. no `getprop` on a Linux host, no cpufreq in a VM) are None; without cpufreq the CPUs form a
    single cluster with `max_khz` None.

    Returns:
        {"model", "manufacturer", "soc", "soc_model", "soc_manufacturer", "board_platform", "hardware",
         "android_release", "android_sdk", "abi", "cpu_count", "clusters": [{"cpus", "max_khz", "governor"}],
         "governor", "emulated"}
    """
    sec = _sections(_run_script(dev, _FACTS_SCRIPT, timeout))
    props = {m[1]: m[2] for line in sec.get("props", []) if (m := _PROP.match(line))}
    misc = dict(line.split("=", 1) for line in sec.get("misc", []) if "=" in line and ":" not in line)
    hardware = next((line.split(":", 1)[1].strip() for line in sec.get("misc", []) if ":" in line), None) or None

    cpus = sorted({int(m[1]) for line in sec.get("cpus", []) if (m := re.search(r"/cpu(\d+)$", line))})
    if not cpus and (n := _int(misc.get("nproc"))):
        cpus = list(range(n))
    max_khz: dict[int, int | None] = dict.fromkeys(cpus)
    governor: dict[int, str | None] = dict.fromkeys(cpus)
    for line in sec.get("cpufreq", []):
        if m := _CPUFREQ.search(line):
            cpu = int(m[1])
            if m[2] == "cpuinfo_max_freq":
                max_khz[cpu] = _int(m[3])
            elif m[2] == "scaling_governor":
                governor[cpu] = m[3].strip() or None
    clusters = clusters_from_max_freq(max_khz, governor)

    def prop(name: str) -> str | None:
        return props.get(name) or None

    governors = sorted({g for g in governor.values() if g})
    return {
        "model": prop("ro.product.model") or hardware,
        "manufacturer": prop("ro.product.manufacturer"),
        "soc": prop("ro.soc.model") or prop("ro.board.platform") or hardware,
        "soc_model": prop("ro.soc.model"),
        "soc_manufacturer": prop("ro.soc.manufacturer"),
        "board_platform": prop("ro.board.platform"),
        "hardware": hardware,
        "android_release": prop("ro.build.version.release"),
        "android_sdk": _int(prop("ro.build.version.sdk")),
        "abi": prop("ro.product.cpu.abi") or misc.get("machine") or None,
        "cpu_count": len(max_khz),
        "clusters": clusters,
        "governor": ",".join(governors) if governors else None,
        # a device that is not the hardware it describes (emulation.py): Android SDK emulator or the test emulator
        "emulated": prop("ro.effvit.emulated") or ("Android emulator (ro.kernel.qemu=1)"
                                                   if prop("ro.kernel.qemu") == "1" else None),
    }


def clusters_from_max_freq(max_khz: Mapping[int, int | None],
                           governor: Mapping[int, str | None] | None = None) -> list[dict[str, Any]]:
    """Group CPUs by `cpuinfo_max_freq` into clusters [{"cpus": [...], "max_khz": k, "governor": g}], by first CPU."""
    groups: dict[int | None, list[int]] = {}
    for cpu in sorted(max_khz):
        groups.setdefault(max_khz[cpu], []).append(cpu)
    governor = governor or {}
    clusters = [{"cpus": cpus, "max_khz": khz, "governor": governor.get(cpus[0])} for khz, cpus in groups.items()]
    return sorted(clusters, key=lambda c: c["cpus"][0])


def big_core_mask(clusters: Sequence[Mapping[str, Any]], threads: int | str) -> str:
    """Hex taskset mask (no 0x) of the `threads` fastest CPUs: prime core first, then the big cluster, and so on.

    Among equally fast CPUs the highest-numbered are taken (CPU 0 does most housekeeping). CPUs of unknown speed
    count as the slowest. `threads="all"`, or more threads than CPUs, gives every CPU.

    Raises:
        InvalidInputError: threads is not a positive int or "all", or there are no CPUs.
    """
    cpus = [(c.get("max_khz") or 0, cpu) for c in clusters for cpu in c["cpus"]]
    if not cpus:
        raise InvalidInputError("no CPUs known for this device: cannot build an affinity mask")
    if threads == "all":
        count = len(cpus)
    elif isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
        count = min(threads, len(cpus))
    else:
        raise InvalidInputError(f"threads must be a positive integer or 'all', got {threads!r}")
    chosen = sorted(cpus, reverse=True)[:count]
    return format(sum(1 << cpu for _, cpu in chosen), "x")


def mask_cpus(mask: str) -> list[int]:
    """CPUs set in a hex taskset mask, e.g. "f0" -> [4, 5, 6, 7]."""
    value = int(mask, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


def _celsius(raw: int) -> float | None:
    """sysfs temperatures are usually millidegrees; some zones report deci- or whole degrees."""
    value = raw / 1000 if abs(raw) >= 1000 else raw / 10 if abs(raw) >= 200 else float(raw)
    return value if -40.0 <= value <= 150.0 else None  # disabled zones report e.g. -273000


def read_thermal(dev: Shell, *, timeout: float = 30.0) -> dict[str, float]:
    """Temperature in °C of every readable thermal zone, keyed by zone type (one shell call).

    Duplicate types get their zone number appended ("battery@zone5"); unreadable or implausible zones are left out.
    """
    types: dict[int, str] = {}
    temps: dict[int, float] = {}
    for line in _run_script(dev, _THERMAL_SCRIPT, timeout).splitlines():
        if m := _ZONE.search(line.rstrip("\r")):
            zone = int(m[1])
            if m[2] == "type":
                types[zone] = m[3].strip()
            elif (raw := _int(m[3])) is not None and (c := _celsius(raw)) is not None:
                temps[zone] = c
    names = [types.get(z) or f"thermal_zone{z}" for z in sorted(temps)]
    return {(name if names.count(name) == 1 else f"{name}@zone{z}"): temps[z]
            for z, name in zip(sorted(temps), names, strict=True)}


def read_cur_freqs(dev: Shell, *, timeout: float = 30.0) -> dict[int, int]:
    """Current clock in kHz of every CPU exposing `scaling_cur_freq` (one shell call); {} without cpufreq."""
    freqs = {}
    for line in _run_script(dev, _FREQ_SCRIPT, timeout).splitlines():
        if (m := _CPUFREQ.search(line.rstrip("\r"))) and (khz := _int(m[3])) is not None:
            freqs[int(m[1])] = khz
    return freqs
