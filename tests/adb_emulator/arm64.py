"""ARM code on the emulated phone: the shell runs pushed aarch64 ELF binaries through qemu-user.

There is no binfmt_misc registration in a container, so the emulator's own `taskset` and `env` shims (the commands
the harness puts in front of every native run, as on a phone) hand their command to `elfexec`, which looks at the
ELF header and runs an aarch64 binary as `qemu-aarch64 -cpu CPU -L SYSROOT BINARY ARGS` and anything else directly.
Limit: a binary started with neither `taskset` nor `env` in front of it is run by the host kernel (Exec format error).

The phone says it is emulated (`ro.effvit.emulated`), so its records are flagged: a real phone has no such property.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

# ELF magic, then e_machine of an ELF64 little-endian aarch64 file (EM_AARCH64 = 183 = 0xb7), as `od -tx1` prints.
_ELF = "7f454c46"
_EM_AARCH64 = "b700"

ELFEXEC = r"""# elfexec CMD [ARGS...]: aarch64 ELF binaries run under qemu-user (an emulated CPU), others directly
head=$(@OD@ -An -tx1 -N20 "$1" 2>/dev/null | tr -d ' \n')
case "$head" in
  @ELF@*@EM@) exec @QEMU@ -cpu @CPU@ -L @SYSROOT@ "$@" ;;
esac
exec "$@"
"""

ENV = r"""# env [NAME=VALUE...] [CMD [ARGS...]] (the subset the harness uses): exported, then CMD through elfexec
while [ $# -gt 0 ]; do
  case "$1" in
    *=*) export "$1"; shift ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then exec @ENV@; fi
exec @ELFEXEC@ "$@"
"""


@dataclass(frozen=True)
class QemuUser:
    """qemu-user and the glibc sysroot that run aarch64 binaries on this machine."""

    binary: Path
    sysroot: Path
    package: str = "qemu-user"

    @classmethod
    def from_runner_folder(cls, folder: Path) -> QemuUser:
        """The qemu and sysroot an aarch64 runner folder records (runners.json `emulation`)."""
        emu = json.loads((Path(folder) / "runners.json").read_text())["emulation"]
        return cls(Path(emu["qemu"]), Path(emu["sysroot"]), str(emu.get("qemu_package", "qemu-user")))

    def describe(self, cpu: str) -> str:
        """The phone's `ro.effvit.emulated` value."""
        return f"{self.package} user-mode, -cpu {cpu}: arm64-v8a binaries emulated on this machine's CPU"

    def scripts(self, cpu: str, elfexec: Path) -> dict[str, str]:
        """Bodies of the `elfexec` and `env` shims."""
        q = shlex.quote
        fill = {"@OD@": "/usr/bin/od", "@ELF@": _ELF, "@EM@": _EM_AARCH64, "@QEMU@": q(str(self.binary)),
                "@CPU@": q(cpu), "@SYSROOT@": q(str(self.sysroot)), "@ENV@": "/usr/bin/env",
                "@ELFEXEC@": q(str(elfexec))}
        out = {"elfexec": ELFEXEC, "env": ENV}
        for key, value in fill.items():
            out = {name: body.replace(key, value) for name, body in out.items()}
        return out
