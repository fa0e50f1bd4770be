"""The effvit-bench command line run in this process, as the tests drive it: argv in, exit code out."""

from __future__ import annotations

from typing import Any

from effvit_deploy.cli import bench


def exit_code(*argv: Any) -> int:
    """`effvit-bench ARGV...` (each argument str()-ed: paths may be passed as they are); its exit code."""
    try:
        bench.main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
