"""Native benchmark runners the project builds: the real TFLite benchmark_model, and our own ExecuTorch and ONNX
Runtime runners (C++ sources in `sources/`, shipped as package data so an installed package can build them).

    from effvit_deploy.runners import build_runners
    result = build_runners("x86_64", Path("build/runners/x86_64"))   # result.folder holds runners.json

Modules: `pins` (exact versions), `fetch` (apt-get / pip download), `compile` (g++), `recipes` (one per runner),
`aarch64` (the cross build: sid arm64 libraries, glibc sysroot, qemu-user), `build` (cache and folder assembly),
`folder` (runners.json and the ABI check the harness uses).
"""

from .build import build_runners, cache_root

__all__ = ["build_runners", "cache_root"]
