"""Phone profiles for the adb emulator: system properties, CPU clusters, thermal zones.

A profile is data (frozen dataclass); `populate_root` lays it out as the files a phone exposes (`/sys` CPU frequency
tree with per-policy symlinks like the real kernel, `/sys/class/thermal`, `/proc/cpuinfo`, `/data/local/tmp`,
`/sdcard`) under the emulator's device root folder. Numbers are those of real SoCs (cpuinfo_max_freq in kHz).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Cluster:
    """CPUs sharing one cpufreq policy (same max clock)."""

    cpus: int
    max_khz: int
    min_khz: int = 300000


@dataclass(frozen=True)
class DeviceProfile:
    """What one phone model looks like to `getprop`, `/sys` and the adb banner."""

    key: str
    product_name: str
    model: str
    device: str
    manufacturer: str
    soc_model: str
    soc_manufacturer: str
    board_platform: str
    android_release: str
    sdk: int
    abi: str
    clusters: tuple[Cluster, ...]
    governor: str = "schedutil"
    # (zone type, temperature in millidegrees Celsius), as /sys/class/thermal/thermal_zoneN/{type,temp}.
    thermal_zones: tuple[tuple[str, int], ...] = ()
    extra_props: dict[str, str] = field(default_factory=dict)
    # qemu's model of the phone's cores, used when the emulator runs pushed aarch64 binaries (arm64.QemuUser)
    qemu_cpu: str = "max"

    @property
    def cpu_count(self) -> int:
        return sum(c.cpus for c in self.clusters)

    def props(self) -> dict[str, str]:
        """System properties as `getprop` reports them."""
        props = {
            "ro.product.name": self.product_name,
            "ro.product.model": self.model,
            "ro.product.device": self.device,
            "ro.product.manufacturer": self.manufacturer,
            "ro.product.brand": self.manufacturer.lower(),
            "ro.soc.model": self.soc_model,
            "ro.soc.manufacturer": self.soc_manufacturer,
            "ro.board.platform": self.board_platform,
            "ro.build.version.release": self.android_release,
            "ro.build.version.sdk": str(self.sdk),
            "ro.product.cpu.abi": self.abi,
            "ro.product.cpu.abilist": f"{self.abi},armeabi-v7a,armeabi",
            "ro.serialno": f"EMU{self.key.upper()}",
            "ro.hardware": self.board_platform,
        }
        props.update(self.extra_props)
        return props

    def banner(self) -> bytes:
        """CNXN banner; an empty feature list makes the adb client use plain `shell:` and `sync:`."""
        return (
            f"device::ro.product.name={self.product_name};ro.product.model={self.model};"
            f"ro.product.device={self.device};features="
        ).encode()


SM8150 = DeviceProfile(
    key="sm8150",
    product_name="flame",
    model="Pixel 4",
    device="flame",
    manufacturer="Google",
    soc_model="SM8150",
    soc_manufacturer="QTI",
    board_platform="msmnile",
    android_release="13",
    sdk=33,
    abi="arm64-v8a",
    # Snapdragon 855: 4x Cortex-A55 1.78 GHz, 3x Cortex-A76 2.42 GHz, 1x Cortex-A76 prime 2.84 GHz.
    clusters=(Cluster(4, 1785600), Cluster(3, 2419200, 710400), Cluster(1, 2841600, 825600)),
    thermal_zones=(("cpu-0-0-usr", 38200), ("cpu-1-4-usr", 40100), ("cpu-1-7-usr", 41300), ("gpu-usr", 36900),
                   ("skin-therm", 31500), ("battery", 30200)),
    qemu_cpu="cortex-a76",
)

SM8450 = DeviceProfile(
    key="sm8450",
    product_name="r0quew",
    model="SM-S901U",
    device="r0q",
    manufacturer="samsung",
    soc_model="SM8450",
    soc_manufacturer="QTI",
    board_platform="taro",
    android_release="14",
    sdk=34,
    abi="arm64-v8a",
    # Snapdragon 8 Gen 1: 4x Cortex-A510 1.79 GHz, 3x Cortex-A710 2.50 GHz, 1x Cortex-X2 3.00 GHz.
    clusters=(Cluster(4, 1785600), Cluster(3, 2496000, 633600), Cluster(1, 2995200, 787200)),
    governor="walt",
    thermal_zones=(("cpuss-0", 42000), ("cpu-1-0", 44500), ("cpu-1-2", 45000), ("gpuss-0", 39000),
                   ("sdm-therm", 33000), ("battery", 31000)),
    # the A710 (ARMv9: fp16 arithmetic, dot product, i8mm, bf16, SVE2) is the closest core qemu models
    qemu_cpu="cortex-a710",
)

# An x86-64 Android device (the SDK emulator's system image): its shell runs x86-64 binaries, so runners built here
# for x86_64 really execute when pushed to it. Two CPUs at one clock, like the machines the tests run on.
X86_64 = DeviceProfile(
    key="x86_64",
    product_name="sdk_gphone64_x86_64",
    model="sdk_gphone64_x86_64",
    device="emu64x",
    manufacturer="Google",
    soc_model="x86_64",
    soc_manufacturer="Intel",
    board_platform="ranchu",
    android_release="14",
    sdk=34,
    abi="x86_64",
    clusters=(Cluster(2, 2400000),),
    thermal_zones=(("cpu-therm", 35000),),
    extra_props={"ro.product.cpu.abilist": "x86_64,arm64-v8a"},
)

PROFILES: dict[str, DeviceProfile] = {p.key: p for p in (SM8150, SM8450, X86_64)}

CPU_DIR = "sys/devices/system/cpu"
THERMAL_DIR = "sys/class/thermal"
POWER_SUPPLY_DIR = "sys/class/power_supply"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _cpulist(cpus: list[int]) -> str:
    return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])


def populate_root(profile: DeviceProfile, root: Path) -> None:
    """Create the phone's file tree under `root` (device path `/x` lives at `root/x`)."""
    for d in ("data/local/tmp", "sdcard", "storage/emulated/0"):
        (root / d).mkdir(parents=True, exist_ok=True)
    n = profile.cpu_count
    cpu_root = root / CPU_DIR
    for name in ("possible", "present", "online"):
        _write(cpu_root / name, f"0-{n - 1}\n")
    first = 0
    for cluster in profile.clusters:
        cpus = list(range(first, first + cluster.cpus))
        first += cluster.cpus
        policy = cpu_root / "cpufreq" / f"policy{cpus[0]}"
        steps = [cluster.min_khz, (cluster.min_khz + cluster.max_khz) // 2, cluster.max_khz]
        files = {
            "cpuinfo_max_freq": cluster.max_khz,
            "cpuinfo_min_freq": cluster.min_khz,
            "scaling_max_freq": cluster.max_khz,
            "scaling_min_freq": cluster.min_khz,
            "scaling_cur_freq": cluster.max_khz,
            "cpuinfo_cur_freq": cluster.max_khz,
            "scaling_governor": profile.governor,
            "scaling_available_governors": f"{profile.governor} performance powersave userspace",
            "scaling_available_frequencies": " ".join(map(str, steps)),
            "related_cpus": " ".join(map(str, cpus)),
            "affected_cpus": " ".join(map(str, cpus)),
        }
        for fname, value in files.items():
            _write(policy / fname, f"{value}\n")
        for cpu in cpus:
            cpu_dir = cpu_root / f"cpu{cpu}"
            cpu_dir.mkdir(parents=True, exist_ok=True)
            _write(cpu_dir / "online", "1\n")
            _write(cpu_dir / "cpu_capacity", f"{round(1024 * cluster.max_khz / profile.clusters[-1].max_khz)}\n")
            link = cpu_dir / "cpufreq"
            if not link.exists():
                # Like the kernel: cpuN/cpufreq -> ../cpufreq/policyK (relative, so it stays inside root).
                os.symlink(f"../cpufreq/policy{cpus[0]}", link)
            _write(cpu_dir / "topology" / "core_siblings_list", f"{_cpulist(cpus)}\n")
    for i, (zone_type, milli) in enumerate(profile.thermal_zones):
        zone = root / THERMAL_DIR / f"thermal_zone{i}"
        _write(zone / "type", f"{zone_type}\n")
        _write(zone / "temp", f"{milli}\n")
        _write(zone / "mode", "enabled\n")
    # A discharging battery (0.42 A at 3.87 V: 1.6254 W) and a USB supply the sampler must skip (not a Battery).
    for name, files in (("battery", {"type": "Battery", "status": "Discharging", "current_now": "-420000",
                                     "voltage_now": "3870000"}), ("usb", {"type": "USB", "online": "0"})):
        for fname, value in files.items():
            _write(root / POWER_SUPPLY_DIR / name / fname, f"{value}\n")
    lines = []
    for cpu in range(n):
        lines += [f"processor\t: {cpu}", "BogoMIPS\t: 38.40",
                  "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                  "lrcpc dcpop asimddp", "CPU implementer\t: 0x51", ""]
    lines.append(f"Hardware\t: Qualcomm Technologies, Inc {profile.soc_model}")
    _write(root / "proc" / "cpuinfo", "\n".join(lines) + "\n")
