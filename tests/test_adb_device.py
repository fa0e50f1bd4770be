"""effvit_deploy.bench.adb and device_facts driving the real adb client against emulated phones."""

from __future__ import annotations

import hashlib
import os
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from effvit_deploy.bench.adb import AdbDevice, DeviceDisconnected, DeviceTimeout, list_devices
from effvit_deploy.bench.device_facts import (
    LocalShell,
    big_core_mask,
    mask_cpus,
    read_cur_freqs,
    read_device_facts,
    read_thermal,
)
from effvit_deploy.errors import DeviceError, InvalidInputError, MissingDependencyError
from tests.adb_emulator import AdbEmulator

if TYPE_CHECKING:
    from tests.adb_fixtures import AdbServer

pytest_plugins = ["tests.adb_fixtures"]

NASTY = "a b'c;touch PWNED"
SM8150_CLUSTERS = [{"cpus": [0, 1, 2, 3], "max_khz": 1785600}, {"cpus": [4, 5, 6], "max_khz": 2419200},
                   {"cpus": [7], "max_khz": 2841600}]


@pytest.fixture
def dev(adb_phone: AdbEmulator) -> AdbDevice:
    return AdbDevice.connect(adb_phone.serial)


def test_connect_auto_connects_host_port(adb_phone: AdbEmulator) -> None:
    assert (adb_phone.serial, "device") not in list_devices()
    AdbDevice.connect(adb_phone.serial)
    assert (adb_phone.serial, "device") in list_devices()


def test_shell_exit_codes_and_streams(dev: AdbDevice) -> None:
    assert dev.shell(["true"]) == (0, "", "")
    assert dev.shell(["sh", "-c", "echo out; echo err >&2; exit 3"]) == (3, "out\n", "err\n")
    assert dev.shell(["printf", "no newline"]).stdout == "no newline"
    assert dev.shell(["exit", "4"]) == (4, "", "")  # runs in a subshell: the exit-status wrapper survives it
    assert dev.shell(["echo", "$HOME", "*", "`id`"]).stdout == "$HOME * `id`\n"  # no expansion of user data
    rc, _, err = dev.shell(["no-such-tool"])
    assert rc == 127 and "not found" in err
    with pytest.raises(DeviceError, match="exited with 1"):
        dev.shell(["false"], check=True)
    with pytest.raises(TypeError):
        dev.shell("echo hi")  # type: ignore[arg-type]


def test_shell_is_binary_safe(dev: AdbDevice, adb_phone: AdbEmulator) -> None:
    data = bytes(range(256)) * 40 + b"\r\n\x00__EFFVIT_RC_=5\n"
    (adb_phone.root / "data/local/tmp/bin.dat").write_bytes(data)
    rc, out, err = dev.shell(["cat", "/data/local/tmp/bin.dat"], encoding=None)
    assert (rc, out, err) == (0, data, b"")


def test_push_pull_roundtrip_3mb(dev: AdbDevice, adb_phone: AdbEmulator, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024))
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    dev.push(src, "/data/local/tmp/effvit/model.bin")
    assert dev.exists("/data/local/tmp/effvit/model.bin") and not dev.exists("/data/local/tmp/effvit/other")
    assert dev.sha256("/data/local/tmp/effvit/model.bin") == want
    assert dev.sha256("/data/local/tmp/effvit/missing") is None
    back = dev.pull("/data/local/tmp/effvit/model.bin", tmp_path / "out" / "model.bin")
    assert hashlib.sha256(back.read_bytes()).hexdigest() == want
    assert sorted(p.name for p in back.parent.iterdir()) == ["model.bin"]  # no .part left behind
    with pytest.raises(DeviceError, match="does not exist"):
        dev.pull("/data/local/tmp/effvit/missing", tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


def test_push_if_changed_pushes_once_per_content(dev: AdbDevice, adb_phone: AdbEmulator, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"one")
    assert dev.push_if_changed(src, "/data/local/tmp/effvit/a.bin") is True
    assert dev.push_if_changed(src, "/data/local/tmp/effvit/a.bin") is False
    src.write_bytes(b"two")
    assert dev.push_if_changed(src, "/data/local/tmp/effvit/a.bin") is True
    assert (adb_phone.root / "data/local/tmp/effvit/a.bin").read_bytes() == b"two"


def test_nasty_names_reach_the_device_literally(dev: AdbDevice, adb_phone: AdbEmulator, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = tmp_path / NASTY
    src.write_bytes(b"payload")
    remote = f"/data/local/tmp/effvit/{NASTY}"
    dev.push(src, remote)
    assert dev.exists(remote)
    assert dev.shell(["cat", remote]).stdout == "payload"
    assert dev.shell(["ls", "/data/local/tmp/effvit"]).stdout == f"{NASTY}\ntmp\n"  # tmp: the shell's stderr files
    dev.remove(remote)
    assert not dev.exists(remote)
    assert any(shlex.quote(remote) in c for c in adb_phone.commands)
    assert not any(p.name == "PWNED" for p in adb_phone.workdir.rglob("*"))
    assert not any(p.name == "PWNED" for p in tmp_path.rglob("*"))


def test_nasty_serial_is_not_run_and_unknown_serial_lists_devices(adb_phone: AdbEmulator, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    AdbDevice.connect(adb_phone.serial)
    for serial in (NASTY, "R58M00000X"):
        with pytest.raises(DeviceError, match="not found") as info:
            AdbDevice.connect(serial)
        assert f"{adb_phone.serial} (device)" in str(info.value) and "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_storage_full_push_raises_device_error(dev: AdbDevice, adb_phone: AdbEmulator, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(100_000))
    adb_phone.storage_full = True
    with pytest.raises(DeviceError, match="No space left on device") as info:
        dev.push(src, "/data/local/tmp/effvit/big.bin")
    assert not isinstance(info.value, DeviceDisconnected) and "\n" not in str(info.value)
    assert not dev.exists("/data/local/tmp/effvit/big.bin")


def test_dropped_connection_raises_device_disconnected(dev: AdbDevice, adb_phone: AdbEmulator) -> None:
    adb_phone.drop_after(1)
    assert dev.shell(["echo", "ok"]).stdout == "ok\n"
    with pytest.raises(DeviceDisconnected):
        dev.shell(["echo", "lost"])


def test_drop_mid_command_raises_device_disconnected(dev: AdbDevice, adb_phone: AdbEmulator) -> None:
    adb_phone.accepting = False  # no automatic reconnection by the adb server
    timer = threading.Timer(0.5, adb_phone.drop_now)
    timer.start()
    start = time.monotonic()
    with pytest.raises(DeviceDisconnected):
        dev.shell(["sleep", "10"])
    assert time.monotonic() - start < 8
    timer.join()
    with pytest.raises(DeviceError, match="offline"):
        dev.ensure_ready(settle=0.3)
    with pytest.raises(DeviceDisconnected, match="offline"):
        dev.push(Path(__file__), "/data/local/tmp/x.py")


def test_unauthorized_and_missing_adb(adb_phone: AdbEmulator) -> None:
    adb_phone.auth_mode = "unauthorized"
    with pytest.raises(DeviceError, match="accept the USB debugging prompt"):
        AdbDevice.connect(adb_phone.serial, settle=0.3)
    with pytest.raises(MissingDependencyError, match="apt-get install adb"):
        AdbDevice("x", adb="/nonexistent/adb")


def test_timeout_raises_device_timeout(dev: AdbDevice) -> None:
    with pytest.raises(DeviceTimeout, match="timed out"):
        dev.shell(["sleep", "5"], timeout=0.5)
    assert dev.shell(["echo", "still here"]).stdout == "still here\n"


def test_adb_server_socket_is_passed_through(adb_server: AdbServer, adb_phone: AdbEmulator) -> None:
    AdbDevice.connect(adb_phone.serial)
    env = {k: v for k, v in os.environ.items() if k != "ANDROID_ADB_SERVER_PORT"}
    env["ADB_SERVER_SOCKET"] = f"tcp:127.0.0.1:{adb_server.port}"
    assert (adb_phone.serial, "device") in list_devices(env=env)
    assert AdbDevice.connect(adb_phone.serial, env=env).shell(["echo", "via socket"]).stdout == "via socket\n"


def test_python_on_device(adb_phone_factory: Callable[..., AdbEmulator]) -> None:
    phone = adb_phone_factory(python3=True)
    dev = AdbDevice.connect(phone.serial)
    rc, out, _ = dev.shell(["python3", "-c", "import sys; print(sys.argv[1])", NASTY])
    assert (rc, out) == (0, NASTY + "\n")


def test_device_facts_sm8150(dev: AdbDevice, adb_phone: AdbEmulator) -> None:
    before = len(adb_phone.commands)
    facts = read_device_facts(dev)
    assert len(adb_phone.commands) == before + 1  # one adb round trip
    assert facts["model"] == "Pixel 4" and facts["manufacturer"] == "Google"
    assert (facts["soc"], facts["soc_model"], facts["board_platform"]) == ("SM8150", "SM8150", "msmnile")
    assert (facts["android_release"], facts["android_sdk"], facts["abi"]) == ("13", 33, "arm64-v8a")
    assert facts["hardware"] == "Qualcomm Technologies, Inc SM8150"  # from the phone's /proc/cpuinfo
    assert facts["cpu_count"] == 8 and facts["governor"] == "schedutil"
    assert [{"cpus": c["cpus"], "max_khz": c["max_khz"]} for c in facts["clusters"]] == SM8150_CLUSTERS
    assert big_core_mask(facts["clusters"], 1) == "80"
    assert big_core_mask(facts["clusters"], 4) == "f0"
    assert big_core_mask(facts["clusters"], "all") == "ff"


def test_thermal_and_frequencies_one_call_each(dev: AdbDevice, adb_phone: AdbEmulator) -> None:
    adb_phone.set_temp(2, 55500)
    adb_phone.set_cur_freq(5, 1209600)  # cpu4-6 share policy4, like the kernel
    before = len(adb_phone.commands)
    temps = read_thermal(dev)
    freqs = read_cur_freqs(dev)
    assert len(adb_phone.commands) == before + 2
    assert temps["cpu-1-7-usr"] == 55.5 and temps["battery"] == 30.2 and len(temps) == 6
    assert freqs == {0: 1785600, 1: 1785600, 2: 1785600, 3: 1785600, 4: 1209600, 5: 1209600, 6: 1209600,
                     7: 2841600}


def test_two_phones_report_their_own_facts(adb_phone_factory: Callable[..., AdbEmulator]) -> None:
    a, b = adb_phone_factory("sm8150"), adb_phone_factory("sm8450")
    fa, fb = read_device_facts(AdbDevice.connect(a.serial)), read_device_facts(AdbDevice.connect(b.serial))
    assert (fa["model"], fb["model"]) == ("Pixel 4", "SM-S901U")
    assert (fb["soc"], fb["board_platform"], fb["android_sdk"], fb["governor"]) == ("SM8450", "taro", 34, "walt")
    assert [c["max_khz"] for c in fb["clusters"]] == [1785600, 2496000, 2995200]
    assert big_core_mask(fb["clusters"], 1) == "80" and big_core_mask(fb["clusters"], 2) == "c0"


def test_big_core_mask_rules() -> None:
    assert big_core_mask(SM8150_CLUSTERS, 2) == "c0"
    assert big_core_mask(SM8150_CLUSTERS, 5) == "f8"
    assert big_core_mask(SM8150_CLUSTERS, 64) == "ff"
    assert big_core_mask([{"cpus": [0, 1], "max_khz": None}], 1) == "2"
    assert mask_cpus("f0") == [4, 5, 6, 7]
    for bad in (0, -1, "4", True):
        with pytest.raises(InvalidInputError):
            big_core_mask(SM8150_CLUSTERS, bad)


def test_local_shell_facts_degrade_gracefully() -> None:
    facts = read_device_facts(LocalShell())
    assert facts["cpu_count"] >= 1 and facts["android_sdk"] is None
    assert sorted(c for cl in facts["clusters"] for c in cl["cpus"]) == list(range(facts["cpu_count"]))
    assert mask_cpus(big_core_mask(facts["clusters"], "all")) == list(range(facts["cpu_count"]))
    assert isinstance(read_thermal(LocalShell()), dict) and isinstance(read_cur_freqs(LocalShell()), dict)
    assert LocalShell().shell(["no-such-tool-xyz"]).returncode == 127
