"""The Android side of the emulated phone that `--runner app` needs: pm, am, logcat, input, settings, pidof.

Test infrastructure only. `EmulatedApp(emu, classes_dir).install()` puts shell shims on the emulated phone's PATH;
each shim runs this file with the host Python (stdlib only, so it runs outside the test process):

- `pm install [-r] PATH` (what the adb client runs after pushing the APK, since the emulator advertises no
  features), `pm path PKG`, `pm list packages [FILTER]`, `pm uninstall PKG`: the APK's package name is read with
  `aapt dump badging`, the file kept as /data/app/PKG-1/base.apk (so `sha256sum` of the `pm path` answer is the
  installed APK's hash, as on a phone);
- `am start [-W] -n COMPONENT --es K V --ei K N --ef K X ...`: starts, detached, the app's own Java core on the host JVM
  (`org.effvit.bench.host.StandInMain`, built from android_app/ sources) with the same extras, writing the same
  result JSON into /sdcard/Android/data/PKG/files; `am force-stop PKG` kills it;
- `logcat -c` / `logcat -d [-t N]`, `input keyevent K` (recorded), `settings get|put|delete global K [V]`,
  `pidof PKG`.
Faults (`EmulatedApp.fault`): "crash" (the app dies without a result, FATAL EXCEPTION in logcat), "hang" (never
finishes), "permission" (am start is refused with a SecurityException).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

PACKAGE = "org.effvit.bench"
_COMMANDS = ("pm", "am", "logcat", "input", "settings", "pidof")


class EmulatedApp:
    """Android package manager + activity manager for one AdbEmulator (see the module docstring)."""

    def __init__(self, emu: Any, classes_dir: Path, *, backends: tuple[str, ...] = ("tflite", "onnx", "executorch"),
                 java: str | None = None) -> None:
        self.emu = emu
        self.state = Path(emu.workdir) / "android"
        self.classes_dir = Path(classes_dir)
        self.java = java or shutil.which("java") or "java"
        self._config: dict[str, Any] = {"java": self.java, "classes": str(self.classes_dir),
                                        "backends": list(backends), "fault": "none", "root": str(emu.root),
                                        "device_model": emu.profile.model}

    def install(self) -> EmulatedApp:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "logcat").touch()
        self._save()
        for name in _COMMANDS:
            path = Path(self.emu.bin_dir) / name
            path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "{self.state}" {name} '
                            '"$@"\n')
            path.chmod(0o755)
        return self

    def _save(self) -> None:
        tmp = self.state / "config.json.tmp"
        tmp.write_text(json.dumps(self._config))
        os.replace(tmp, self.state / "config.json")

    # --- knobs and observations for tests ------------------------------------------------------------------------
    @property
    def fault(self) -> str:
        return str(self._config["fault"])

    @fault.setter
    def fault(self, value: str) -> None:
        self._config["fault"] = value
        self._save()

    @property
    def backends(self) -> list[str]:
        return list(self._config["backends"])

    @backends.setter
    def backends(self, value: list[str]) -> None:
        self._config["backends"] = list(value)
        self._save()

    def installed(self) -> Path | None:
        """The installed base.apk on the device root, None when not installed."""
        apk = Path(self.emu.root) / "data" / "app" / f"{PACKAGE}-1" / "base.apk"
        return apk if apk.is_file() else None

    def stop(self) -> None:
        """Kill the stand-in app if it still runs (like `am force-stop`)."""
        _force_stop(self.state)

    def uninstall(self) -> None:
        shutil.rmtree(Path(self.emu.root) / "data" / "app" / f"{PACKAGE}-1", ignore_errors=True)

    def installs(self) -> int:
        """How many `pm install` calls succeeded."""
        path = self.state / "installs"
        return len(path.read_text().splitlines()) if path.is_file() else 0

    def input_events(self) -> list[str]:
        path = self.state / "input_events"
        return path.read_text().split() if path.is_file() else []

    def settings(self) -> dict[str, str]:
        path = self.state / "settings.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def put_setting(self, key: str, value: str) -> None:
        data = self.settings()
        data[key] = value
        (self.state / "settings.json").write_text(json.dumps(data))


# --- the shims (run as a script by the emulated shell) --------------------------------------------------------------


def _config(state: Path) -> dict[str, Any]:
    return json.loads((state / "config.json").read_text())


def _app_dir(cfg: dict[str, Any]) -> Path:
    return Path(cfg["root"]) / "data" / "app" / f"{PACKAGE}-1"


def _package_of(apk: Path) -> str | None:
    """The package name `aapt dump badging` reports (None: not an APK)."""
    if not zipfile.is_zipfile(apk):
        return None
    aapt = shutil.which("aapt", path="/usr/bin:/bin")
    if aapt is None:
        raise SystemExit("emulator: pm install needs the host's aapt (apt-get install aapt)")
    out = subprocess.run([aapt, "dump", "badging", str(apk)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("package: name='"):
            return line.split("'")[1]
    return None


def _pm(state: Path, args: list[str]) -> int:
    cfg = _config(state)
    app_dir = _app_dir(cfg)
    base = app_dir / "base.apk"
    sub = args[0] if args else ""
    if sub == "path":
        if args[1:2] == [PACKAGE] and base.is_file():
            print(f"package:/data/app/{PACKAGE}-1/base.apk")
            return 0
        return 1
    if sub == "list" and args[1:2] == ["packages"]:
        names = ["android", "com.android.shell"] + ([PACKAGE] if base.is_file() else [])
        for name in names:
            if len(args) < 3 or args[2] in name:
                print(f"package:{name}")
        return 0
    if sub == "install":
        paths = [a for a in args[1:] if not a.startswith("-")]
        if not paths or not Path(paths[-1]).is_file():
            print("Failure [INSTALL_FAILED_INVALID_URI]")
            return 1
        package = _package_of(Path(paths[-1]))
        if package is None:
            print("Failure [INSTALL_PARSE_FAILED_NOT_APK: not an APK]")
            return 1
        if base.is_file() and "-r" not in args:
            print(f"Failure [INSTALL_FAILED_ALREADY_EXISTS: Attempt to re-install {package} without first "
                  "uninstalling.]")
            return 1
        app_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[-1], base)
        with open(state / "installs", "a") as f:
            f.write(package + "\n")
        print("Success")
        return 0
    if sub == "uninstall":
        if base.is_file():
            shutil.rmtree(app_dir)
            print("Success")
            return 0
        print("Failure [DELETE_FAILED_INTERNAL_ERROR]")
        return 1
    print(f"emulator: pm {sub}: not supported", file=sys.stderr)
    return 1


def _alive(state: Path) -> int | None:
    try:
        pid = int((state / "app.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # not our child in general; ChildProcessError then
        if waited == pid:
            return None
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    # a zombie still answers kill(0); /proc tells the truth
    try:
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return None
    except OSError:
        return None
    return pid


def _force_stop(state: Path) -> None:
    pid = _alive(state)
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (state / "app.pid").unlink(missing_ok=True)


def _am(state: Path, args: list[str]) -> int:
    cfg = _config(state)
    if args[:1] == ["force-stop"]:
        if args[1:2] == [PACKAGE]:
            _force_stop(state)
        return 0
    if args[:1] != ["start"]:
        print(f"emulator: am {' '.join(args[:1])}: not supported", file=sys.stderr)
        return 1
    component, extras, i = None, [], 1
    while i < len(args):
        a = args[i]
        if a in ("-W", "-S"):
            i += 1
        elif a == "-n":
            component, i = args[i + 1], i + 2
        elif a in ("--es", "--ei", "--ef"):
            extras += [a, args[i + 1], args[i + 2]]
            i += 3
        else:
            print(f"Error: Unknown option: {a}")
            return 1
    print(f"Starting: Intent {{ cmp={component} }}")
    if component not in (f"{PACKAGE}/.BenchActivity", f"{PACKAGE}/{PACKAGE}.BenchActivity") \
            or not (_app_dir(cfg) / "base.apk").is_file():
        print("Error type 3")
        print(f"Error: Activity class {{{PACKAGE}/{PACKAGE}.BenchActivity}} does not exist.")
        return 1
    if cfg["fault"] == "permission":
        print("Exception occurred while executing 'start':")
        print(f"java.lang.SecurityException: Permission Denial: starting Intent {{ cmp={component} }} from null "
              "(pid=4000, uid=2000) not exported from uid 10234")
        return 255
    _force_stop(state)  # one instance, like a singleTask activity restarted by the harness
    files = Path(cfg["root"]) / "sdcard" / "Android" / "data" / PACKAGE / "files"
    files.mkdir(parents=True, exist_ok=True)
    argv = [cfg["java"], "-cp", cfg["classes"], "org.effvit.bench.host.StandInMain", "--files-dir", str(files),
            "--logcat", str(state / "logcat"), "--backends", ",".join(cfg["backends"]), "--fault", cfg["fault"],
            "--device-model", cfg["device_model"], *extras]
    with open(state / "logcat", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    (state / "app.pid").write_text(str(proc.pid))
    print("Status: ok\nLaunchState: COLD\nActivity: org.effvit.bench/.BenchActivity\nTotalTime: 120\n"
          "WaitTime: 125\nComplete")
    return 0


def _logcat(state: Path, args: list[str]) -> int:
    path = state / "logcat"
    if "-c" in args:
        path.write_text("")
        return 0
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    if "-t" in args:
        lines = lines[-int(args[args.index("-t") + 1]):]
    print("\n".join(lines))
    return 0


def _settings(state: Path, args: list[str]) -> int:
    path = state / "settings.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if len(args) >= 3 and args[1] == "global":
        op, key = args[0], args[2]
        if op == "get":
            print(data.get(key, "null"))
            return 0
        if op == "put" and len(args) == 4:
            data[key] = args[3]
        elif op == "delete":
            data.pop(key, None)
        else:
            return 1
        path.write_text(json.dumps(data))
        return 0
    print("emulator: settings: only get/put/delete global KEY", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    state, command, args = Path(argv[0]), argv[1], argv[2:]
    if command == "pm":
        return _pm(state, args)
    if command == "am":
        return _am(state, args)
    if command == "logcat":
        return _logcat(state, args)
    if command == "settings":
        return _settings(state, args)
    if command == "input":
        if args[:1] == ["keyevent"] and len(args) == 2:
            with open(state / "input_events", "a") as f:
                f.write(args[1] + "\n")
            return 0
        return 1
    if command == "pidof":
        pid = _alive(state) if args[:1] == [PACKAGE] else None
        if pid is None:
            return 1
        print(pid)
        return 0
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
