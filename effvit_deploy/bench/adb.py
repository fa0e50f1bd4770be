"""Drive Android phones through the real adb client (`adb` on PATH), one subprocess per operation.

Why the client and not a Python adb implementation: it is what users already have, it talks to their running adb
server (USB, `adb connect`, or a remote server through `ADB_SERVER_SOCKET`, which we pass through untouched), and it
handles authentication. The price is ~10-50 ms per call, so callers batch reads into one shell command.

Shell commands are built only from argument lists: every argument is `shlex.quote`d here, because the device runs
the string with `sh -c`. The plain `shell:` service returns no exit status and merges stderr into stdout, so the
command is wrapped: its stderr goes to a temp file on the device, then a marker with a random nonce and `$?` is
printed, then the stderr file. Parsing the marker gives back (exit code, stdout, stderr) on old and new devices alike.

    dev = AdbDevice.connect("192.168.1.20:5555")     # or a USB serial
    rc, out, err = dev.shell(["cat", "/proc/cpuinfo"])
    dev.push_if_changed(Path("model.tflite"), "/data/local/tmp/effvit/model.tflite")
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from effvit_deploy.errors import DeviceError, MissingDependencyError, MissingFileError

log = logging.getLogger(__name__)

ADB_MISSING = "adb client not found: install Debian package adb (apt-get install adb) or put adb on PATH"
DEVICE_TMP = "/data/local/tmp"
# The only folder the harness writes on a device: even the shell wrapper's stderr file lives in it.
SCRATCH = f"{DEVICE_TMP}/effvit/tmp"
# adb client messages that mean the transport went away under us (adb 29 `error: closed`, newer `protocol fault`,
# a push cut mid-file: `couldn't read from device`, `failed to read copy response`).
_GONE = re.compile(r"device offline|device '.*' not found|device not found|no devices|closed|connection reset|"
                   r"broken pipe|protocol fault|device still connecting|transport|couldn't read from device|"
                   r"failed to read copy response|connection refused", re.IGNORECASE)
RECONNECT_TIMEOUT_S = 30.0
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):\d{1,5}")
_TRANSIENT = {"offline", "connecting", "authorizing"}


class DeviceDisconnected(DeviceError):
    """The device vanished while a command was running (cable pulled, Wi-Fi dropped, adb server restarted)."""


class DeviceTimeout(DeviceError):
    """A device command did not finish within its time limit."""


class ShellResult(NamedTuple):
    """Exit code, stdout and stderr of one device command (str, or bytes when `encoding=None`)."""

    returncode: int
    stdout: str | bytes
    stderr: str | bytes


def find_adb(adb: str | None = None) -> str:
    """Path of the adb client: `adb` if given (a path or a name on PATH), else `adb` on PATH.

    Raises:
        MissingDependencyError: no adb client can be found.
    """
    found = shutil.which(adb or "adb")
    if found is None:
        raise MissingDependencyError(ADB_MISSING)
    return found


def _one_line(text: str) -> str:
    """The most telling line of adb's output (the error line if any), trimmed of adb's prefixes."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("* ")]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    line = (errors or lines or ["no output"])[0]
    return re.sub(r"^(adb: )?(error: )?", "", line)


def _run(adb: str, args: Sequence[str], *, timeout: float, env: Mapping[str, str] | None,
         what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run([adb, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              env=None if env is None else dict(env))
    except subprocess.TimeoutExpired as e:
        raise DeviceTimeout(f"{what} timed out after {timeout:g}s: raise the timeout or check the device") from e
    except FileNotFoundError as e:
        raise MissingDependencyError(ADB_MISSING) from e


def list_devices(*, adb: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float = 30.0) -> list[tuple[str, str]]:
    """Devices the adb server knows, as (serial, state) pairs, e.g. ("R58M123", "device"), ("1.2.3.4:5555", "offline").

    Raises:
        MissingDependencyError: no adb client.
        DeviceError: the adb server cannot be reached.
    """
    proc = _run(find_adb(adb), ["devices"], timeout=timeout, env=env, what="`adb devices`")
    if proc.returncode != 0:
        msg = _one_line(proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace"))
        raise DeviceError(f"`adb devices` failed: {msg} (check ADB_SERVER_SOCKET / ANDROID_ADB_SERVER_PORT)")
    devices = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        if "\t" in line and not line.startswith(("List of devices", "* ")):
            serial, state = line.split("\t", 1)
            devices.append((serial.strip(), state.strip()))
    return devices


def _state_problem(serial: str, state: str) -> str | None:
    if state == "device":
        return None
    if state == "unauthorized":
        return (f"adb device {serial} is unauthorized: unlock the phone and accept the USB debugging prompt "
                "(tick 'Always allow'), then re-run")
    if state == "offline":
        return f"adb device {serial} is offline: replug the cable or run `adb reconnect`, then re-run"
    return f"adb device {serial} is in state {state!r}, expected 'device': boot it to Android with USB debugging on"


class AdbDevice:
    """One phone reached through the adb client.

    Args:
        serial: `adb devices` serial, or HOST:PORT for a network device (connected on demand by `connect`).
        adb: adb client path or name (default: `adb` on PATH).
        env: environment for adb (default: this process's, so ADB_SERVER_SOCKET etc. apply).
        timeout: default time limit in seconds for one operation.
    """

    def __init__(self, serial: str, *, adb: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float = 120.0, scratch: str = SCRATCH) -> None:
        self.serial = serial
        self.adb = find_adb(adb)
        self.env = env
        self.timeout = timeout
        self.scratch = scratch  # device folder for the shell wrapper's stderr files

    def __repr__(self) -> str:
        return f"AdbDevice({self.serial!r})"

    @classmethod
    def connect(cls, serial: str, *, adb: str | None = None, env: Mapping[str, str] | None = None,
                timeout: float = 120.0, settle: float = 3.0) -> AdbDevice:
        """An AdbDevice that is ready for commands (`adb connect` first when `serial` is HOST:PORT and not listed).

        Raises:
            MissingDependencyError: no adb client.
            DeviceError: unknown serial (the message lists the connected ones), device offline or unauthorized.
        """
        dev = cls(serial, adb=adb, env=env, timeout=timeout)
        dev.ensure_ready(settle=settle)
        return dev

    # ----- state -----------------------------------------------------------------------------------------------
    def state(self) -> str | None:
        """This device's state in `adb devices` ("device", "offline", "unauthorized", …), None if not listed."""
        return dict(list_devices(adb=self.adb, env=self.env)).get(self.serial)

    def ensure_ready(self, *, settle: float = 3.0) -> None:
        """Check the device is listed and in state "device"; waits up to `settle` s while it is still connecting.

        Raises:
            DeviceError: unknown serial, offline, unauthorized or in another state.
        """
        devices = dict(list_devices(adb=self.adb, env=self.env))
        connect_msg = ""
        if self.serial not in devices and _HOST_PORT.fullmatch(self.serial):
            connect_msg = self._adb_connect()
            devices = dict(list_devices(adb=self.adb, env=self.env))
        deadline = time.monotonic() + settle
        while devices.get(self.serial) in _TRANSIENT and time.monotonic() < deadline:
            time.sleep(0.2)
            devices = dict(list_devices(adb=self.adb, env=self.env))
        state = devices.get(self.serial)
        if state is None:
            known = ", ".join(f"{s} ({st})" for s, st in devices.items()) or "none"
            hint = f" (adb connect said: {connect_msg})" if connect_msg else ""
            raise DeviceError(f"adb device {self.serial!r} not found{hint}; connected: {known}. "
                              "Check `adb devices`; use HOST:PORT for network devices")
        if (problem := _state_problem(self.serial, state)) is not None:
            raise DeviceError(problem)

    @property
    def is_tcp(self) -> bool:
        """A network device (HOST:PORT, reached by `adb connect`) rather than USB."""
        return _HOST_PORT.fullmatch(self.serial) is not None

    def reconnect(self, *, timeout: float | None = None) -> None:
        """Get a dropped device back actively, within `timeout` seconds.

        Waiting is not enough: the adb server re-establishes a dropped TCP device on its own only after ~10 s,
        while `adb disconnect` + `adb connect` takes milliseconds once the phone answers again. USB devices get
        `adb reconnect` (the host side re-enumerates the transport) and then `wait-for-device`.

        Args:
            timeout: seconds (default RECONNECT_TIMEOUT_S: long enough for a phone's Wi-Fi to come back).
        Raises:
            DeviceError: still not in state "device" when the time is up (the message says the last state).
        """
        timeout = RECONNECT_TIMEOUT_S if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pause, state = 0.2, None
        while True:
            left = max(deadline - time.monotonic(), 0.5)
            try:
                if self.is_tcp:
                    _run(self.adb, ["disconnect", self.serial], timeout=min(left, 10.0), env=self.env,
                         what="adb disconnect")
                    self._adb_connect(timeout=min(left, 10.0))
                else:
                    _run(self.adb, ["-s", self.serial, "reconnect"], timeout=min(left, 10.0), env=self.env,
                         what="adb reconnect")
                    _run(self.adb, ["-s", self.serial, "wait-for-device"], timeout=min(left, 10.0), env=self.env,
                         what="adb wait-for-device")
            except DeviceTimeout:
                pass  # the loop's own deadline decides
            settle = time.monotonic() + min(2.0, left)
            while (state := self.state()) in _TRANSIENT and time.monotonic() < settle:
                time.sleep(0.1)
            if state == "device":
                log.info("%s: reconnected", self.serial)
                return
            if time.monotonic() + pause >= deadline:
                raise DeviceError(f"adb device {self.serial} did not come back within {timeout:g}s (now "
                                  f"{state or 'not listed'}); reconnect it (cable / `adb connect`) and re-run")
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _adb_connect(self, timeout: float = 30.0) -> str:
        proc = _run(self.adb, ["connect", self.serial], timeout=timeout, env=self.env,
                    what=f"adb connect {self.serial}")
        msg = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        log.info("adb connect %s: %s", self.serial, msg)
        return msg.splitlines()[0] if msg else ""

    def _failure(self, what: str, output: str) -> DeviceError:
        """DeviceDisconnected when adb says the transport is gone, else DeviceError, with adb's message."""
        msg = _one_line(output)
        if _GONE.search(msg):
            return DeviceDisconnected(f"device {self.serial} disconnected during {what}: {msg}. "
                                      "Reconnect it (cable / `adb connect`) and re-run")
        hint = ": free space on the device (e.g. old files in /data/local/tmp)" if "No space" in msg else ""
        return DeviceError(f"{what} on {self.serial} failed: {msg}{hint}")

    # ----- shell -----------------------------------------------------------------------------------------------
    def shell(self, args: Sequence[str], *, timeout: float | None = None, check: bool = False,
              encoding: str | None = "utf-8") -> ShellResult:
        """Run one command on the device; each argument reaches it literally (quoted here, run by `sh -c`).

        Args:
            args: program and arguments, e.g. ["taskset", "f0", "/data/local/tmp/effvit/bin/x", "--n", "4"].
                For a script, pass ["sh", "-c", SCRIPT] (the script is then yours to get right).
            timeout: seconds (default: the device's).
            check: raise DeviceError when the exit code is not 0.
            encoding: decode stdout/stderr with it (errors replaced); None returns bytes.

        Raises:
            DeviceDisconnected: the device went away. DeviceTimeout: too slow. DeviceError: other adb failures.
        """
        if isinstance(args, str) or not args:
            raise TypeError("shell() takes a non-empty list of arguments, not a string")
        timeout = self.timeout if timeout is None else timeout
        command = " ".join(shlex.quote(str(a)) for a in args)
        nonce = secrets.token_hex(8)
        marker = f"__EFFVIT_RC_{nonce}=".encode()
        err = f"{self.scratch}/.stderr_{nonce}"
        # The marker is printed in two pieces so it never appears verbatim in the command line (e.g. in `ps` output).
        # The stderr file goes to our own folder (created on the way), never loose in /data/local/tmp.
        script = (f"e={shlex.quote(err)}; mkdir -p {shlex.quote(self.scratch)} 2>/dev/null; "
                  f"if (: >\"$e\") 2>/dev/null; then ({command}) 2>\"$e\"; r=$?; "
                  f"else e=; ({command}) 2>&1; r=$?; fi; "
                  f"printf '%s%s%d\\n' __EFFVIT_RC_ {nonce}= \"$r\"; "
                  "if [ -n \"$e\" ]; then cat \"$e\" 2>/dev/null; rm -f \"$e\"; fi")
        what = f"`{_short(command)}`"
        proc = _run(self.adb, ["-s", self.serial, "shell", script], timeout=timeout, env=self.env, what=what)
        out = proc.stdout
        at = out.find(marker)
        if at < 0:  # no marker: the command's outcome is unknown
            text = (proc.stderr + out[-2000:]).decode(errors="replace")
            if proc.returncode == 0:
                # Legacy shell: adb exits 0 when the stream is cut, so a missing marker means the connection broke
                # (even if the adb server has already reconnected by now: the command's result is lost).
                state = self.state()
                raise DeviceDisconnected(f"device {self.serial} disconnected during {what}: the output ended without "
                                         f"an exit status (device now {state or 'not listed'}). Reconnect and re-run")
            raise self._failure(what, text)
        rc_text, newline, stderr = out[at + len(marker):].partition(b"\n")
        if not newline or not rc_text.isdigit():
            raise DeviceDisconnected(f"device {self.serial} disconnected during {what}: output cut inside the exit "
                                     "status. Reconnect and re-run")
        result = ShellResult(int(rc_text), out[:at], stderr)
        if encoding is not None:
            result = ShellResult(result.returncode, out[:at].decode(encoding, errors="replace"),
                                 stderr.decode(encoding, errors="replace"))
        if check and result.returncode != 0:
            detail = _one_line(stderr.decode(errors="replace") or out[:at].decode(errors="replace"))
            raise DeviceError(f"{what} on {self.serial} exited with {result.returncode}: {detail}")
        return result

    # ----- files -----------------------------------------------------------------------------------------------
    def push(self, local: Path | str, remote: str, *, timeout: float | None = None) -> None:
        """Copy a local file to the device (parent folders are created by adb).

        Raises:
            MissingFileError: `local` does not exist. DeviceError: adb failed (e.g. storage full), one line.
        """
        local = Path(local)
        if not local.is_file():
            raise MissingFileError(f"cannot push {local}: no such file")
        what = f"push {local} -> {remote}"
        proc = _run(self.adb, ["-s", self.serial, "push", str(local), remote],
                    timeout=self.timeout if timeout is None else timeout, env=self.env, what=what)
        if proc.returncode != 0:
            raise self._transfer_failure(what, (proc.stderr + proc.stdout).decode(errors="replace"))

    def _transfer_failure(self, what: str, output: str) -> DeviceError:
        """A failed push/pull is a disconnect when the device is no longer online, whatever adb printed."""
        failure = self._failure(what, output)
        if isinstance(failure, DeviceDisconnected):
            return failure
        try:
            state = self.state()
        except DeviceError:
            state = None
        if state != "device":
            return DeviceDisconnected(f"device {self.serial} disconnected during {what}: {_one_line(output)} "
                                      f"(device now {state or 'not listed'})")
        return failure

    def pull(self, remote: str, local: Path | str, *, timeout: float | None = None) -> Path:
        """Copy a device file to `local` atomically (pulled to a temp file next to it, then renamed).

        Raises:
            DeviceError: the remote file does not exist or adb failed.
        """
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{secrets.token_hex(4)}.part")
        what = f"pull {remote} -> {local}"
        try:
            proc = _run(self.adb, ["-s", self.serial, "pull", remote, str(tmp)],
                        timeout=self.timeout if timeout is None else timeout, env=self.env, what=what)
            if proc.returncode != 0 or not tmp.is_file():
                raise self._transfer_failure(what, (proc.stderr + proc.stdout).decode(errors="replace"))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return local

    def exists(self, remote: str) -> bool:
        """Whether a path exists on the device."""
        return self.shell(["test", "-e", remote]).returncode == 0

    def sha256(self, remote: str) -> str | None:
        """sha256 hex digest of a device file (toybox `sha256sum`), None if missing or the tool is absent."""
        rc, out, _ = self.shell(["sha256sum", remote])
        digest = str(out).split(maxsplit=1)[0] if rc == 0 and str(out).strip() else ""
        return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None

    def push_if_changed(self, local: Path | str, remote: str, *, timeout: float | None = None) -> bool:
        """Push only when the device copy differs (by sha256); verify the copy afterwards. True when pushed.

        Raises:
            DeviceError: the push failed or the device copy does not match after pushing.
        """
        local = Path(local)
        if not local.is_file():
            raise MissingFileError(f"cannot push {local}: no such file")
        want = _sha256_file(local)
        if self.sha256(remote) == want:
            return False
        self.push(local, remote, timeout=timeout)
        got = self.sha256(remote)
        if got is not None and got != want:
            raise DeviceError(f"push {local} -> {self.serial}:{remote} corrupted the file (sha256 {got[:12]} != "
                              f"{want[:12]}): check the device storage and re-run")
        return True

    def makedirs(self, remote: str) -> None:
        """`mkdir -p` on the device."""
        self.shell(["mkdir", "-p", remote], check=True)

    def remove(self, remote: str) -> None:
        """`rm -f` on the device."""
        self.shell(["rm", "-f", remote], check=True)


def _short(command: str, limit: int = 80) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
