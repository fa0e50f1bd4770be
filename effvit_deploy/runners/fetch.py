"""Downloads for the runner builds, through the ordinary clients only, into the runner cache.

- Debian packages of other suites (sid, trixie): `apt-get download NAME=VERSION` and `apt-get source --download-only
  NAME=VERSION` under a private APT configuration kept in the cache (`APT_CONFIG` pointing at our own sources.list,
  lists and archive folders), so the system's apt setup is never touched.
- Wheels: `pip download NAME==VERSION --no-deps --only-binary :all: --platform TAG`.
A file already in the cache is not downloaded again. A failure is one `MissingDependencyError` line.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from ..errors import MissingDependencyError

log = logging.getLogger(__name__)

MIRROR = "http://deb.debian.org/debian"
SUITES = ("sid", "trixie")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=1800)
    except FileNotFoundError:
        raise MissingDependencyError(f"{what}: {argv[0]} not found; run `make runners` on Debian/Ubuntu "
                                     "(it needs apt-get and pip)") from None
    return proc


def _last_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "ERROR", "error"))]
    return (errors or lines or ["no output"])[-1][:300]


class PrivateApt:
    """An APT configuration of our own (sid + trixie sources, lists and archives under `root`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.config = self.root / "apt.conf"

    def env(self) -> dict[str, str]:
        return {**os.environ, "APT_CONFIG": str(self.config), "DEBIAN_FRONTEND": "noninteractive"}

    def setup(self) -> None:
        """Write the configuration (idempotent)."""
        for sub in ("etc", "lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # arm64 lists too: the aarch64 runner build downloads sid arm64 libraries (NAME:arm64=VERSION)
        sources = "".join(f"{kind} [{'arch=amd64,arm64 ' if kind == 'deb' else ''}signed-by={KEYRING}] {MIRROR} "
                          f"{suite} main\n" for suite in SUITES for kind in ("deb", "deb-src"))
        (self.root / "etc" / "sources.list").write_text(sources)
        self.config.write_text(
            f'Dir::Etc::sourcelist "{self.root / "etc" / "sources.list"}";\n'
            'Dir::Etc::sourceparts "-";\n'
            f'Dir::State::Lists "{self.root / "lists"}";\n'
            f'Dir::Cache "{self.root / "cache"}";\n'
            'APT::Architectures { "amd64"; "arm64"; };\n'
            'APT::Sandbox::User "root";\n')

    def update(self, *, force: bool = False) -> None:
        """`apt-get update` for the private sources (skipped when the lists are there, unless `force`)."""
        self.setup()
        if not force and any((self.root / "lists").glob("*_sid_*binary-arm64_Packages*")):
            return
        log.info("apt-get update (private sid/trixie lists in %s)", self.root)
        proc = _run(["apt-get", "update", "-q"], cwd=self.root, env=self.env(), what="apt-get update")
        if proc.returncode != 0:
            raise MissingDependencyError(f"apt-get update for the sid/trixie lists failed: {_last_error(proc)}; "
                                         "check the network access to deb.debian.org")

    def download(self, name: str, version: str, dest: Path, arch: str = "") -> Path:
        """`apt-get download NAME[:ARCH]=VERSION` into `dest` (a cached .deb is reused)."""
        return self.download_all([(name, version, arch)], dest)[0]

    def download_all(self, debs: list[tuple[str, str, str]], dest: Path) -> list[Path]:
        """Several (NAME, VERSION, ARCH) packages with ONE `apt-get download` for those not cached yet (each call
        parses every package list, which takes tens of seconds with the arm64 lists on a busy machine)."""
        def cached(name: str, version: str, arch: str) -> list[Path]:
            # apt-get names files NAME_VERSION_ARCH.deb with ':' in the version written as '%3a'
            return sorted(dest.glob(f"{name}_{version.replace(':', '%3a')}_{arch or '*'}.deb"))

        missing = [f"{n}:{a}={v}" if a else f"{n}={v}" for n, v, a in debs if not cached(n, v, a)]
        if missing:
            self._get(["apt-get", "download", "-q", *missing], dest, " ".join(missing))
        found = []
        for name, version, arch in debs:
            hits = cached(name, version, arch)
            if not hits:
                raise MissingDependencyError(f"apt-get download {name}={version} produced no .deb in {dest}")
            found.append(hits[0])
        return found

    def source(self, name: str, version: str, orig: str, dest: Path) -> Path:
        """The upstream tarball `orig` of source package NAME=VERSION (`apt-get source --download-only`)."""
        found = dest / orig
        if found.is_file():
            return found
        self._get(["apt-get", "source", "--download-only", "-q", f"{name}={version}"], dest, f"{name} {version}")
        if not found.is_file():  # the .dsc may 404 while the tarball arrives: only the tarball matters
            raise MissingDependencyError(f"apt-get source {name}={version} did not fetch {orig}; is the version "
                                         "still in Debian sid? (see effvit_deploy/runners/pins.py)")
        return found

    def _get(self, argv: list[str], dest: Path, what: str) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        self.update()
        proc = _run(argv, cwd=dest, env=self.env(), what=what)
        if proc.returncode != 0 and "Unable to locate" in proc.stderr + proc.stdout:
            self.update(force=True)  # stale lists: refresh once and retry
            proc = _run(argv, cwd=dest, env=self.env(), what=what)
        if proc.returncode != 0 and not any(dest.iterdir()):
            raise MissingDependencyError(f"download of {what} failed: {_last_error(proc)}")


def pip_wheel(name: str, version: str, platform: str, python: str, dest: Path) -> Path:
    """`pip download NAME==VERSION` (binary wheel for `platform` and CPython `python`, no dependencies); cached.

    Only the wheel's C/C++ libraries are used, so the CPython version just picks one of its builds.
    """
    dest.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_")
    pattern = f"{stem}-{version}-*{platform.split('_', 1)[-1]}*.whl"
    hits = sorted(p for p in dest.glob(f"{stem}-{version}-*.whl") if _platform_arch(platform) in p.name)
    if hits:
        return hits[0]
    if not _has_pip():
        raise MissingDependencyError("pip is not available to download runtime wheels: install python3-pip")
    argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "--platform",
            platform, "--python-version", python, "-d", str(dest),
            f"{name}=={version}"]
    proc = _run(argv, cwd=dest, what=f"pip download {name}=={version}")
    hits = sorted(p for p in dest.glob(f"{stem}-{version}-*.whl") if _platform_arch(platform) in p.name)
    if proc.returncode != 0 or not hits:
        raise MissingDependencyError(f"pip download {name}=={version} ({platform}) failed: {_last_error(proc)} "
                                     f"(looked for {pattern})")
    return hits[0]


def _platform_arch(platform: str) -> str:
    return "aarch64" if "aarch64" in platform else "x86_64"


def _has_pip() -> bool:
    import importlib.util

    return importlib.util.find_spec("pip") is not None
