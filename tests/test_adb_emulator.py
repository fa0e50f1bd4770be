"""The adb device emulator against the real adb client (protocol, services, fault knobs), without the library."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tests.adb_emulator import AdbEmulator
from tests.adb_emulator.server import A_VERSION, _Unmapper

if TYPE_CHECKING:
    from tests.adb_fixtures import AdbServer

pytest_plugins = ["tests.adb_fixtures"]


def _connect(adb_server: AdbServer, phone: AdbEmulator) -> None:
    out = adb_server.run("connect", phone.serial).stdout
    assert f"connected to {phone.serial}" in out


def _sh(adb_server: AdbServer, phone: AdbEmulator, command: str) -> str:
    proc = adb_server.run("-s", phone.serial, "shell", command)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_handshake_and_shell(adb_server: AdbServer, adb_phone: AdbEmulator) -> None:
    _connect(adb_server, adb_phone)
    assert f"{adb_phone.serial}\tdevice" in adb_server.run("devices").stdout
    hs = adb_phone.handshakes[0]
    assert hs.version == A_VERSION and hs.banner.startswith(b"host::")
    assert hs.checksum_field in (0, hs.byte_sum)  # adb 29 still sends the byte-sum checksum in its CNXN
    out = _sh(adb_server, adb_phone, "echo hi; getprop ro.soc.model; getprop no.such.prop fallback; "
                                     "cat /sys/devices/system/cpu/cpu7/cpufreq/cpuinfo_max_freq; pwd")
    assert out == "hi\nSM8150\nfallback\n2841600\n/\n"
    assert adb_phone.commands[-1].startswith("echo hi;")


def test_device_paths_are_mapped_and_root_never_leaks(adb_server: AdbServer, adb_phone: AdbEmulator) -> None:
    _connect(adb_server, adb_phone)
    out = _sh(adb_server, adb_phone, "mkdir -p /data/local/tmp/x && cd /data/local/tmp/x && pwd && touch f && "
                                     "ls /data/local/tmp/x/f && readlink /sys/devices/system/cpu/cpu5/cpufreq")
    assert out == "/data/local/tmp/x\n/data/local/tmp/x/f\n../cpufreq/policy4\n"
    assert (adb_phone.root / "data/local/tmp/x/f").is_file()
    assert str(adb_phone.root) not in _sh(adb_server, adb_phone, "ls -d /data/local/tmp/x/*; cat /nope/x")


def test_large_output_honours_flow_control(adb_server: AdbServer,
                                           adb_phone_factory: Callable[..., AdbEmulator]) -> None:
    phone = adb_phone_factory(max_payload=4096)  # forces ~750 WRTE/OKAY round trips
    _connect(adb_server, phone)
    data = os.urandom(3 * 1024 * 1024)
    (phone.root / "data/local/tmp/blob").write_bytes(data)
    proc = adb_server.run("-s", phone.serial, "shell", "sha256sum /data/local/tmp/blob; wc -c < /data/local/tmp/blob")
    assert proc.stdout.split() == [hashlib.sha256(data).hexdigest(), "/data/local/tmp/blob", str(len(data))]
    raw = subprocess.run([adb_server.adb, "-s", phone.serial, "shell", "cat /data/local/tmp/blob"],
                         capture_output=True, timeout=30).stdout
    assert raw == data


def test_sync_push_pull_stat_list(adb_server: AdbServer, adb_phone: AdbEmulator, tmp_path: Path) -> None:
    _connect(adb_server, adb_phone)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(200_000))
    src.chmod(0o755)
    assert adb_server.run("-s", adb_phone.serial, "push", str(src), "/data/local/tmp/new/dir/f.bin").returncode == 0
    dst = adb_phone.root / "data/local/tmp/new/dir/f.bin"
    assert dst.read_bytes() == src.read_bytes() and dst.stat().st_mode & 0o777 == 0o755
    assert not [p for p in dst.parent.iterdir() if p.name != "f.bin"]  # no temp file left
    assert adb_server.run("-s", adb_phone.serial, "pull", "/data/local/tmp/new/dir/f.bin",
                          str(tmp_path / "back.bin")).returncode == 0
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    missing = adb_server.run("-s", adb_phone.serial, "pull", "/data/local/tmp/nope", str(tmp_path / "n"))
    assert missing.returncode != 0 and "does not exist" in missing.stdout + missing.stderr
    listing = adb_server.run("-s", adb_phone.serial, "ls", "/data/local/tmp/new/dir").stdout
    assert "f.bin" in listing


def test_storage_full_fails_push_and_leaves_nothing(adb_server: AdbServer, adb_phone: AdbEmulator,
                                                    tmp_path: Path) -> None:
    _connect(adb_server, adb_phone)
    src = tmp_path / "f"
    src.write_bytes(b"x" * 100_000)
    adb_phone.storage_full = True
    proc = adb_server.run("-s", adb_phone.serial, "push", str(src), "/data/local/tmp/f")
    assert proc.returncode != 0 and "No space left on device" in proc.stdout + proc.stderr
    assert list((adb_phone.root / "data/local/tmp").iterdir()) == []
    adb_phone.storage_full = False
    assert adb_server.run("-s", adb_phone.serial, "push", str(src), "/data/local/tmp/f").returncode == 0


def test_taskset_shim_validates_mask(adb_server: AdbServer, adb_phone: AdbEmulator) -> None:
    _connect(adb_server, adb_phone)
    out = _sh(adb_server, adb_phone, "taskset f0 echo ok; echo rc=$?; taskset zz echo x; echo rc=$?; "
                                     "taskset 100 echo x; echo rc=$?; taskset 0x80 sh -c 'echo \"$0-$1\"' a b")
    assert out.splitlines() == ["ok", "rc=0", "taskset: bad mask 'zz'", "rc=1",
                                "taskset: sched_setaffinity: Invalid argument", "rc=1", "a-b"]


def test_python3_switch_and_missing_tools(adb_server: AdbServer, adb_phone: AdbEmulator) -> None:
    _connect(adb_server, adb_phone)
    assert "not found" in _sh(adb_server, adb_phone, "python3 -c 'print(1)'")
    adb_phone.python3 = True
    assert _sh(adb_server, adb_phone, "python3 -c 'import sys; print(sys.version_info[0])'") == "3\n"
    assert "not found" in _sh(adb_server, adb_phone, "apt-get --version")


def test_unknown_service_is_refused(adb_server: AdbServer, adb_phone: AdbEmulator) -> None:
    _connect(adb_server, adb_phone)
    assert adb_server.run("-s", adb_phone.serial, "reboot").returncode != 0
    assert f"{adb_phone.serial}\tdevice" in adb_server.run("devices").stdout  # connection survives


def test_drop_after_and_unauthorized(adb_server: AdbServer,
                                     adb_phone_factory: Callable[..., AdbEmulator]) -> None:
    phone = adb_phone_factory()
    _connect(adb_server, phone)
    phone.drop_after(1)
    assert _sh(adb_server, phone, "echo one") == "one\n"
    dropped = adb_server.run("-s", phone.serial, "shell", "echo two")
    assert dropped.returncode != 0 and "closed" in dropped.stderr
    locked = adb_phone_factory()
    locked.auth_mode = "unauthorized"
    adb_server.run("connect", locked.serial)
    assert f"{locked.serial}\tunauthorized" in adb_server.run("devices").stdout


def test_unmapper_handles_chunk_boundaries() -> None:
    root = b"/tmp/adbemu-x/root"
    text = b"a " + root + b"/data/x " + root + b"\n" + root[:5] + b"b"
    for cut in range(len(text) + 1):
        u = _Unmapper(root)
        assert u.feed(text[:cut]) + u.feed(text[cut:]) + u.flush() == b"a /data/x /\n/tmp/b"
