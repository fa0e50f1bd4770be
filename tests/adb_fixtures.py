"""pytest fixtures for everything that talks to phones through the real adb client.

- `adb_server` (session): an adb server of our own on a free port, so tests never touch a user's server on 5037.
  It sets ANDROID_ADB_SERVER_PORT in os.environ for the session (and hides ADB_SERVER_SOCKET, ANDROID_SERIAL), gives
  the server a private HOME for its keys and logs, disables its mDNS and emulator scans, and kills it at the end.
- `adb_phone_factory`: start emulated phones (`tests.adb_emulator.AdbEmulator`); they are disconnected and stopped
  after the test. Phones are NOT pre-connected: `AdbDevice.connect(phone.serial)` does `adb connect` itself.
- `adb_phone`: one Snapdragon 855 phone (profile "sm8150").

Enable with `pytest_plugins = ["tests.adb_fixtures"]` in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.adb_emulator import PROFILES, AdbEmulator

_HIDDEN = ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_ADDRESS", "ANDROID_SERIAL")


@dataclass(frozen=True)
class AdbServer:
    """The session's private adb server."""

    adb: str
    port: int
    home: Path

    def run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run the adb client against this server (test helper; the library under test runs adb itself)."""
        return subprocess.run([self.adb, *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def adb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbServer]:
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("adb client not installed (apt-get install adb): adb tests need the real client")
    saved = {k: os.environ.get(k) for k in (*_HIDDEN, "ANDROID_ADB_SERVER_PORT")}
    for k in _HIDDEN:
        os.environ.pop(k, None)
    port = _free_port()
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(port)
    home = tmp_path_factory.mktemp("adb-home")
    server_env = dict(os.environ, HOME=str(home), ADB_MDNS="0", ADB_EMU="0")
    try:
        subprocess.run([adb, "start-server"], env=server_env, capture_output=True, timeout=30, check=True,
                       stdin=subprocess.DEVNULL)
        yield AdbServer(adb, port, home)
    finally:
        subprocess.run([adb, "kill-server"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def adb_phone_factory(adb_server: AdbServer) -> Iterator[Callable[..., AdbEmulator]]:
    phones: list[AdbEmulator] = []

    def start(profile: str = "sm8150", *, python3: bool = False, **kwargs: object) -> AdbEmulator:
        phone = AdbEmulator(PROFILES[profile], python3=python3, **kwargs).start()  # type: ignore[arg-type]
        phones.append(phone)
        return phone

    yield start
    for phone in phones:
        adb_server.run("disconnect", phone.serial)
        phone.stop()


@pytest.fixture
def adb_phone(adb_phone_factory: Callable[..., AdbEmulator]) -> AdbEmulator:
    return adb_phone_factory("sm8150")
