"""A fake Android phone that the real adb client can connect to (`adb connect 127.0.0.1:PORT`).

Test infrastructure only: the library under test drives /usr/bin/adb and never learns this exists.

Protocol (device side of adb's transport, as in AOSP adb/protocol.txt and SYNC.TXT):
- every message is a 24-byte little-endian header (command, arg0, arg1, data length, data checksum = byte sum,
  magic = command ^ 0xffffffff) followed by the data;
- the host's CNXN is answered at once with CNXN(0x01000001, max payload, banner) (no AUTH); version 0x01000001
  tells the host it may skip checksums, we still send correct ones;
- a stream is opened by the host with OPEN(host_id, 0, "service\\0") and accepted with OKAY(dev_id, host_id);
  each WRTE is acknowledged with OKAY before the sender may send the next one (flow control), CLSE ends it;
- services: `shell:CMD` (stdout and stderr merged, no exit status, like adbd's raw legacy shell) and `sync:`
  (STAT, LIST, RECV, SEND, QUIT carried inside WRTE data as 4-byte id + u32 length + payload).

Shell commands run under the host's `/bin/sh -c` with PATH restricted to a folder of shims (symlinks to a
toybox-like set of host tools, plus `getprop`, `taskset`, `dumpsys` scripts and an optional `python3`). Device paths
are mapped by rewriting the command string: every `/data`, `/sys`, `/sdcard`, `/storage`, `/proc/cpuinfo` and
`/proc/meminfo` that starts a path is prefixed with the device root folder, and the root is stripped from the
output again. We chose this
over a mount namespace (`unshare -m` + bind mounts) because it needs no privileges, creates nothing outside the temp
folder (bind mounts would need `/data` on the host) and works the same for root and non-root in CI. Its limit: a
path assembled at run time inside the shell (`d=/da; cat ${d}ta/x`) or opened by a program from its own constants
is not mapped; code that sends ordinary commands with literal paths behaves as on a phone.

Fault knobs (flip at run time): `drop_now()`, `drop_after(n)`, `storage_full`, `accepting`, `auth_mode`, and
`chaos` (None by default): a seeded `chaos.Chaos` plan that drops, stalls, fills storage and kills the runner at
random moments.
"""

from __future__ import annotations

import logging
import os
import posixpath
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .arm64 import QemuUser
from .chaos import Chaos
from .profiles import CPU_DIR, SM8150, THERMAL_DIR, DeviceProfile, populate_root

log = logging.getLogger(__name__)


def _cmd(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_WRTE, A_CLSE = (_cmd(c) for c in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"WRTE",
                                                                    b"CLSE"))
A_VERSION = 0x01000001
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
SYNC_DATA_MAX = 64 * 1024
_HEADER = struct.Struct("<6I")

# Host tools that stand in for toybox; anything not listed is "not found" on the device, like on a phone.
_TOOLS = ("cat chmod chown mkdir rm rmdir df du ls sha256sum sha1sum md5sum sleep head tail cut grep sed awk wc stat "
          "mv cp touch uname id date kill sh find xargs tr sort dirname basename readlink nproc env true false ps "
          "cmp tee timeout nice uniq od base64 ln mktemp seq expr dd sync realpath which printf echo test yes "
          "hostname getconf").split()
_DEVICE_PATH = re.compile(r"(?<![\w./-])(/(?:data|sys|sdcard|storage|proc/cpuinfo|proc/meminfo))(?![\w.-])")


class _StreamClosed(Exception):
    """The host closed the stream or the connection went away."""


@dataclass(frozen=True)
class Handshake:
    """What the host sent in its CNXN (kept so tests can check version/checksum behaviour)."""

    version: int
    max_payload: int
    checksum_field: int
    byte_sum: int
    banner: bytes


class _Unmapper:
    """Replaces the device root prefix in streamed output by `/`, also across chunk boundaries."""

    def __init__(self, root: bytes) -> None:
        self.root = root
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        buf = self.pending + data
        # Hold back the longest tail that may still grow into `root/` (a bare root at the end is undecided too).
        target = self.root + b"/"
        hold = 0
        for k in range(min(len(buf), len(target)), 0, -1):
            if target.startswith(buf[-k:]):
                hold = k
                break
        self.pending = buf[len(buf) - hold:]
        return self._sub(buf[: len(buf) - hold])

    def flush(self) -> bytes:
        out, self.pending = self._sub(self.pending), b""
        return out

    def _sub(self, data: bytes) -> bytes:
        return data.replace(self.root + b"/", b"/").replace(self.root, b"/")


class _Stream:
    """One open stream; `write` honours adb flow control (one WRTE in flight until the host's OKAY)."""

    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()
        self._acked = threading.Event()

    def write(self, data: bytes) -> None:
        step = self.conn.max_payload
        for i in range(0, len(data), step):
            self._acked.clear()
            self.conn.send(A_WRTE, self.local_id, self.remote_id, data[i : i + step])
            while not self._acked.wait(0.05):
                if self.closed.is_set() or self.conn.closed.is_set():
                    raise _StreamClosed

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
        self.conn.streams.pop(self.local_id, None)

    def on_okay(self) -> None:
        self._acked.set()

    def on_data(self, data: bytes) -> None:
        self.inbox.put(data)

    def on_remote_close(self) -> None:
        self.closed.set()
        self.inbox.put(None)
        self.abort()
        self.conn.streams.pop(self.local_id, None)

    def abort(self) -> None:
        """Stop work early (connection or stream gone)."""

    def run(self) -> None:
        raise NotImplementedError


class _ShellStream(_Stream):
    def __init__(self, conn: _Connection, local_id: int, remote_id: int, command: str,
                 fault: tuple[str, float] | None = None) -> None:
        super().__init__(conn, local_id, remote_id)
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None
        self.fault = fault  # from the chaos plan: ("stall" | "kill" | "drop-mid", seconds)

    def run(self) -> None:
        emu = self.conn.emu
        try:
            if not self.command.strip():
                self.write(b"emulator: interactive shell not supported, pass a command\n")
                return
            if self.fault is not None and self.fault[0] == "stall":
                time.sleep(self.fault[1])
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", emu.map_command(self.command)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, cwd=emu.root, env=emu.shell_env(), start_new_session=True)
            if self.fault is not None and self.fault[0] in ("kill", "drop-mid"):
                threading.Timer(self.fault[1], self._strike).start()
            if self.closed.is_set():  # closed while we were starting
                self.abort()
            unmap = _Unmapper(str(emu.root).encode())
            assert self.proc.stdout is not None
            while chunk := os.read(self.proc.stdout.fileno(), self.conn.max_payload):
                if out := unmap.feed(chunk):
                    self.write(out)
            if tail := unmap.flush():
                self.write(tail)
            self.proc.wait()
        except _StreamClosed:
            self.abort()
        finally:
            if self.proc is not None:
                self.proc.stdout.close()  # type: ignore[union-attr]
                if self.proc.poll() is None:
                    self.abort()
                    self.proc.wait()
            self.close()

    def abort(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _strike(self) -> None:
        """The chaos fault of a running command: kill its runner, or cut the connection under it."""
        chaos = self.conn.emu.chaos
        if chaos is None or self.fault is None or self.proc is None or self.proc.poll() is not None:
            return  # finished already: the fault did not bite and is not counted
        if self.fault[0] == "kill":
            if chaos.kill_runner(self.proc.pid):
                chaos.count("kill")
        else:
            chaos.count("drop-mid")
            self.conn.drop()


class _SyncStream(_Stream):
    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        super().__init__(conn, local_id, remote_id)
        self._buf = bytearray()

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            data = self.inbox.get()
            if data is None:
                raise _StreamClosed
            self._buf += data
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _msg(self) -> tuple[bytes, int]:
        head = self._read(8)
        return head[:4], struct.unpack("<I", head[4:])[0]

    def _fail(self, message: str) -> None:
        data = message.encode()
        self.write(b"FAIL" + struct.pack("<I", len(data)) + data)

    def run(self) -> None:
        try:
            while True:
                ident, length = self._msg()
                if ident == b"QUIT":
                    return
                if ident not in (b"STAT", b"LIST", b"RECV", b"SEND") or length > 1024:
                    self._fail(f"unknown sync command {ident!r}")
                    return
                path = self._read(length).decode("utf-8", "surrogateescape")
                handler = {b"STAT": self._stat, b"LIST": self._list, b"RECV": self._recv, b"SEND": self._send}[ident]
                if not handler(path):
                    return
        except _StreamClosed:
            pass
        finally:
            self.close()

    def _stat(self, path: str) -> bool:
        try:
            st = os.lstat(self.conn.emu.host_path(path))
            fields = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
        except (OSError, ValueError):
            fields = (0, 0, 0)
        self.write(b"STAT" + struct.pack("<3I", *fields))
        return True

    def _list(self, path: str) -> bool:
        try:
            entries = list(os.scandir(self.conn.emu.host_path(path)))
        except (OSError, ValueError):
            entries = []
        for e in entries:
            st = e.stat(follow_symlinks=False)
            name = e.name.encode("utf-8", "surrogateescape")
            self.write(b"DENT" + struct.pack("<4I", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime),
                                             len(name)) + name)
        self.write(b"DONE" + bytes(16))
        return True

    def _recv(self, path: str) -> bool:
        try:
            with open(self.conn.emu.host_path(path), "rb") as f:
                while chunk := f.read(SYNC_DATA_MAX):
                    self.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        except (OSError, ValueError) as e:
            self._fail(f"open failed: {getattr(e, 'strerror', None) or e}")
            return True
        self.write(b"DONE" + struct.pack("<I", 0))
        return True

    def _send(self, spec: str) -> bool:
        path, _, mode_text = spec.rpartition(",")
        emu = self.conn.emu
        fault = emu.chaos.on_push(path) if emu.chaos is not None else None
        if fault == "drop-push":
            self.conn.drop()
            return False
        full = emu.storage_full or fault == "full"
        error: str | None = "write failed: No space left on device" if full else None
        tmp: Path | None = None
        f = None
        try:
            if error is None:
                try:
                    target = emu.host_path(path)
                    target.parent.mkdir(parents=True, exist_ok=True)  # adbd creates missing parents too
                    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".emu-part", dir=target.parent)
                    tmp, f = Path(name), os.fdopen(fd, "wb")
                except (OSError, ValueError) as e:
                    error = f"couldn't create file: {getattr(e, 'strerror', None) or e}"
            if error is not None:
                self._fail(error)
            while True:  # consume DATA until DONE even after a failure, like adbd
                ident, length = self._msg()
                if ident == b"DATA":
                    if length > SYNC_DATA_MAX:
                        return False
                    data = self._read(length)
                    if f is not None:
                        f.write(data)
                elif ident == b"DONE":
                    break
                else:
                    return False
            if error is not None or f is None or tmp is None:
                return False  # adbd closes the sync stream after a failed SEND
            f.close()
            f = None
            os.chmod(tmp, (int(mode_text or "420") & 0o7777) or 0o644)
            os.utime(tmp, (length, length))
            os.replace(tmp, target)
            tmp = None
            self.write(b"OKAY" + bytes(4))
            return True
        finally:
            if f is not None:
                f.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)


class _Connection:
    """One TCP connection from the adb server: reads messages, dispatches them to streams."""

    def __init__(self, emu: AdbEmulator, sock: socket.socket) -> None:
        self.emu, self.sock = emu, sock
        self.max_payload = emu.max_payload
        self.streams: dict[int, _Stream] = {}
        self.closed = threading.Event()
        self.online = False
        self._send_lock = threading.Lock()
        self._next_id = 1
        self.thread = threading.Thread(target=self._run, name="adb-emu-conn", daemon=True)

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        header = _HEADER.pack(command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, command ^ 0xFFFFFFFF)
        try:
            with self._send_lock:
                self.sock.sendall(header + data)
        except OSError:
            self.drop()

    def drop(self) -> None:
        """Cut the TCP connection (the host sees the device vanish)."""
        if not self.closed.is_set():
            self.closed.set()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            for s in list(self.streams.values()):
                s.on_remote_close()

    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _run(self) -> None:
        try:
            while (head := self._recv_exact(_HEADER.size)) is not None:
                command, arg0, arg1, length, checksum, magic = _HEADER.unpack(head)
                if magic != command ^ 0xFFFFFFFF:
                    log.warning("bad magic from host, dropping connection")
                    break
                data = self._recv_exact(length) if length else b""
                if data is None:
                    break
                self._dispatch(command, arg0, arg1, data, checksum)
        finally:
            self.drop()

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes, checksum: int) -> None:
        emu = self.emu
        if command == A_CNXN:
            emu.handshakes.append(Handshake(arg0, arg1, checksum, sum(data) & 0xFFFFFFFF, data))
            self.max_payload = min(arg1, emu.max_payload)
            if emu.auth_mode == "ok":
                self.online = True
                self.send(A_CNXN, A_VERSION, emu.max_payload, emu.profile.banner())
            elif emu.auth_mode == "unauthorized":
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            # "offline": never answer, the host keeps the device offline
        elif command == A_AUTH:
            if emu.auth_mode == "unauthorized" and arg0 == AUTH_SIGNATURE:
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))  # reject every key; RSAPUBLICKEY waits for a user
        elif command == A_OPEN:
            self._open(arg0, data.rstrip(b"\0").decode("utf-8", "surrogateescape"))
        elif command == A_OKAY:
            if (s := self.streams.get(arg1)) is not None:
                s.on_okay()
        elif command == A_WRTE:
            if (s := self.streams.get(arg1)) is not None:
                s.on_data(data)
                self.send(A_OKAY, arg1, arg0)
        elif command == A_CLSE:
            if (s := self.streams.get(arg1)) is not None:
                s.on_remote_close()

    def _open(self, remote_id: int, service: str) -> None:
        if not self.online:
            self.send(A_CLSE, 0, remote_id)
            return
        local_id, self._next_id = self._next_id, self._next_id + 1
        stream: _Stream
        if service.startswith("shell:"):
            command = service[len("shell:"):]
            fault = self.emu.chaos.on_shell(command) if self.emu.chaos is not None else None
            if self.emu.record_shell(command) or (fault is not None and fault[0] == "drop"):
                self.drop()
                return
            stream = _ShellStream(self, local_id, remote_id, command, fault)
        elif service == "sync:":
            stream = _SyncStream(self, local_id, remote_id)
        else:
            self.send(A_CLSE, 0, remote_id)
            return
        self.streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)
        threading.Thread(target=stream.run, name=f"adb-emu-{service[:5]}", daemon=True).start()


class AdbEmulator:
    """An emulated phone listening on 127.0.0.1 (the adb client reaches it via `adb connect 127.0.0.1:PORT`).

    Args:
        profile: phone model (getprop values, CPU clusters, thermal zones).
        workdir: folder for the device root and shims; a fresh temp folder when None (removed on stop).
        python3: put the host's Python (`sys.executable`) on the device PATH as `python3`.
        port: TCP port; 0 picks a free one.
        qemu: run pushed aarch64 binaries through this qemu-user (an ARM64 profile executing ARM code; the phone
            then says `ro.effvit.emulated`); None: the host kernel runs what is pushed.
    """

    def __init__(self, profile: DeviceProfile = SM8150, *, workdir: Path | None = None, python3: bool = False,
                 port: int = 0, max_payload: int = 256 * 1024, qemu: QemuUser | None = None) -> None:
        self.profile = profile
        self.qemu = qemu
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="adbemu-")) if workdir is None else Path(workdir)
        self.root = (self.workdir / "root").resolve()
        if not re.fullmatch(r"[\w/.-]+", str(self.root)):
            raise ValueError(f"device root {self.root} must contain only shell-safe characters")
        self.bin_dir = self.workdir / "bin"
        self.max_payload = max_payload
        self.handshakes: list[Handshake] = []
        self.commands: list[str] = []
        self.storage_full = False
        self.chaos: Chaos | None = None
        self.accepting = True
        self.auth_mode = "ok"  # "ok" | "unauthorized" | "offline"
        self._drop_after: int | None = None
        self._lock = threading.Lock()
        self._conns: list[_Connection] = []
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, name="adb-emu-accept", daemon=True)
        populate_root(profile, self.root)
        self._install_shims()
        # every emulated phone is a different phone: its own serial number, even when two share a profile
        self.setprop("ro.serialno", f"{profile.props().get('ro.serialno', 'EMU')}-{self.port}")
        self.set_mem_available(3 << 20)  # kB, like a phone with a few apps open
        self.python3 = python3

    # ----- lifecycle -------------------------------------------------------------------------------------------
    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> AdbEmulator:
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        if self._accept_thread.is_alive():
            self._accept_thread.join(timeout=2)
        self.drop_now()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> AdbEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.accepting:
                sock.close()
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock)
            with self._lock:
                self._conns = [c for c in self._conns if not c.closed.is_set()] + [conn]
            conn.thread.start()

    # ----- fault knobs -----------------------------------------------------------------------------------------
    def drop_now(self) -> None:
        """Cut every open connection at once (like pulling the cable)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.drop()

    def drop_after(self, n: int | None) -> None:
        """Let `n` more shell commands run, then drop the connection when the next one is opened (None: never)."""
        with self._lock:
            self._drop_after = n

    def record_shell(self, command: str) -> bool:
        """Log a shell command; True when the drop fault fires for it."""
        with self._lock:
            self.commands.append(command)
            if self._drop_after is None:
                return False
            if self._drop_after <= 0:
                self._drop_after = None
                return True
            self._drop_after -= 1
            return False

    # ----- device state ----------------------------------------------------------------------------------------
    def host_path(self, device_path: str) -> Path:
        """Where a device path lives on this machine; raises ValueError for relative paths."""
        if not device_path.startswith("/"):
            raise ValueError(f"not an absolute device path: {device_path!r}")
        return self.root / posixpath.normpath(device_path).lstrip("/")

    def map_command(self, command: str) -> str:
        """Prefix device paths in a shell command with the device root."""
        return _DEVICE_PATH.sub(lambda m: f"{self.root}{m.group(1)}", command)

    def shell_env(self) -> dict[str, str]:
        tmp = str(self.root / "data/local/tmp")
        return {"PATH": str(self.bin_dir), "HOME": str(self.root), "TMPDIR": tmp, "LC_ALL": "C",
                "EXTERNAL_STORAGE": str(self.root / "sdcard"), "ANDROID_DATA": str(self.root / "data")}

    def setprop(self, name: str, value: str) -> None:
        props = self._props()
        props[name] = value
        self._write_props(props)

    def set_cur_freq(self, cpu: int, khz: int) -> None:
        """Set scaling_cur_freq of the policy that holds `cpu` (shared by its cluster, as on the kernel)."""
        (self.root / CPU_DIR / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq").write_text(f"{khz}\n")

    def set_mem_available(self, kilobytes: int) -> None:
        """What the phone's /proc/meminfo says is available (MemTotal stays 8 GB)."""
        (self.root / "proc").mkdir(exist_ok=True)
        (self.root / "proc/meminfo").write_text(f"MemTotal:        8000000 kB\nMemFree:          200000 kB\n"
                                                 f"MemAvailable:   {kilobytes:>9} kB\n")

    def set_temp(self, zone: int, millidegrees: int) -> None:
        (self.root / THERMAL_DIR / f"thermal_zone{zone}" / "temp").write_text(f"{millidegrees}\n")

    @property
    def python3(self) -> bool:
        return (self.bin_dir / "python3").exists()

    @python3.setter
    def python3(self, on: bool) -> None:
        shim = self.bin_dir / "python3"
        if on:
            self._script("python3", f'exec "{sys.executable}" "$@"\n')
        else:
            shim.unlink(missing_ok=True)

    # ----- shims -----------------------------------------------------------------------------------------------
    def _props(self) -> dict[str, str]:
        lines = (self.workdir / "props").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def _write_props(self, props: dict[str, str]) -> None:
        tmp = self.workdir / "props.tmp"
        tmp.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        os.replace(tmp, self.workdir / "props")

    def _script(self, name: str, body: str) -> None:
        path = self.bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)

    def _install_shims(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for tool in _TOOLS:
            found = shutil.which(tool, path="/usr/bin:/bin")
            if found and not (self.bin_dir / tool).exists():
                os.symlink(found, self.bin_dir / tool)
        self._write_props(self.profile.props())
        (self.workdir / "thermal_status").write_text("0\n")
        self._script("getprop", _GETPROP.replace("@PROPS@", str(self.workdir / "props")))
        taskset = _TASKSET.replace("@NCPU@", str(self.profile.cpu_count))
        if self.qemu is not None:
            elfexec = self.bin_dir / "elfexec"
            for name, body in self.qemu.scripts(self.profile.qemu_cpu, elfexec).items():
                (self.bin_dir / name).unlink(missing_ok=True)  # `env` is a symlink to the host tool: never write it
                self._script(name, body)
            taskset = taskset.replace('exec "$@"\n', f'exec {elfexec} "$@"\n')
            self.setprop("ro.effvit.emulated", self.qemu.describe(self.profile.qemu_cpu))
        self._script("taskset", taskset)
        self._script("dumpsys", _DUMPSYS.replace("@STATUS@", str(self.workdir / "thermal_status")))


_GETPROP = r"""# getprop [NAME [DEFAULT]] over the emulator's property file
props='@PROPS@'
if [ $# -eq 0 ]; then
  while IFS='=' read -r k v; do printf '[%s]: [%s]\n' "$k" "$v"; done < "$props"
  exit 0
fi
while IFS='=' read -r k v; do
  if [ "$k" = "$1" ]; then printf '%s\n' "$v"; exit 0; fi
done < "$props"
printf '%s\n' "${2:-}"
"""

_TASKSET = r"""# taskset [-ap] MASK (PID | CMD [ARGS...]): validates the mask like sched_setaffinity, then runs CMD
ncpu=@NCPU@
pid_mode=0
while :; do
  case "$1" in
    -p|-ap|-pa) pid_mode=1; shift ;;
    -a) shift ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ]; then echo "usage: taskset [-ap] [mask] [PID | cmd [args...]]" >&2; exit 1; fi
if [ $pid_mode -eq 1 ] && [ $# -eq 1 ]; then
  printf "pid %s's affinity mask: %x\n" "$1" $(( (1 << ncpu) - 1 )); exit 0
fi
mask=${1#0x}
case "$mask" in
  ''|*[!0-9a-fA-F]*) echo "taskset: bad mask '$1'" >&2; exit 1 ;;
esac
if [ ${#mask} -gt 15 ] || [ $(( 0x$mask & ((1 << ncpu) - 1) )) -eq 0 ]; then
  echo "taskset: sched_setaffinity: Invalid argument" >&2; exit 1
fi
shift
if [ $pid_mode -eq 1 ]; then exit 0; fi
if [ $# -eq 0 ]; then echo "usage: taskset [-ap] [mask] [PID | cmd [args...]]" >&2; exit 1; fi
exec "$@"
"""

_DUMPSYS = r"""# dumpsys thermalservice only
if [ "$1" != thermalservice ]; then echo "Can't find service: $1" >&2; exit 1; fi
echo "IsStatusOverride: false"
echo "ThermalEventListeners:"
echo "Thermal Status: $(cat '@STATUS@')"
"""


__all__ = ["AdbEmulator", "Handshake"]
