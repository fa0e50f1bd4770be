"""The native runner folder a test runs: the one `make test` built (named by an environment variable), else built here.

`make test` passes $EFFVIT_RUNNER_DIR (x86_64) and $EFFVIT_RUNNER_DIR_AARCH64; a bare `pytest` builds into the
session's temp folder (downloads and compiles are cached in the runner cache, so only the first build is slow).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from effvit_deploy.runners.build import build_runners
from effvit_deploy.runners.folder import FILE_NAME


def runner_folder(env: str, arch: str, tmp_path_factory: pytest.TempPathFactory,
                  targets: Sequence[str] | None = None) -> Path:
    given = os.environ.get(env)
    if given and (Path(given) / FILE_NAME).is_file():
        return Path(given)
    out = tmp_path_factory.mktemp("runners") / arch
    return (build_runners(arch, out) if targets is None else build_runners(arch, out, targets=tuple(targets))).folder
