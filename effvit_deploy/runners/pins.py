"""Exact versions of everything a runner build downloads (one place to move them; part of every build's cache key).

Why these versions (facts: shared/reference/native_runners_facts.md):
- TensorFlow 2.14.1 source (Debian sid) holds `tensorflow/lite/tools/benchmark`; tflite-runtime 2.14.0's
  `_pywrap_tensorflow_interpreter_wrapper.so` exports the TFLite C++ API that benchmark_model calls (ai-edge-litert's
  x86-64 library exports only the LiteRt C API; its aarch64 one has the TFLite C API too, see below); its schema
  needs flatbuffers 23.5.26 (trixie).
- executorch 1.5.1 is the first wheel with a standalone C++ runtime (`executorch/lib`, `executorch/include`); it
  runs the .pte files of the pinned exporter (executorch 1.4.1), checked by the tests.
- onnxruntime 1.32.0 is the project's pinned runtime; its wheel has the library but no headers, which come from
  Debian sid's libonnxruntime-dev 1.23.2 (the C API is versioned and backward compatible: newer libraries serve
  older headers).
- aarch64 (issue 11): the same three runners cross-compiled with bookworm's g++-12-aarch64-linux-gnu. No
  tflite-runtime aarch64 wheel exists; ai-edge-litert 1.4.0 (the newest aarch64 wheel the registry has) ships
  libLiteRtRuntimeCApi.so, TFLite's stable C API with the XNNPACK delegate built in (TFLite 2.20.0-dev), so the
  aarch64 benchmark_model is the project's own on that C API (upstream's flags and lines, --use_xnnpack,
  --xnnpack_force_fp16). (Debian's arm64 libtensorflow-lite 2.14.1, the runtime before, has no XNNPACK.) The sysroot
  is sid's arm64 libc6, and sid's libstdc++6 / libgcc-s1 are shipped beside the binaries. Emulation here: trixie's
  qemu-user 10.0 (static; bookworm's 7.2 segfaults in ONNX Runtime's start-up).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deb:
    """A binary package of another Debian suite, fetched with `apt-get download NAME[:ARCH]=VERSION`."""

    name: str
    version: str
    arch: str = ""  # "" = the host's (amd64); "arm64" for the aarch64 sysroot and libraries


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel, fetched with `pip download NAME==VERSION --no-deps`."""

    name: str
    version: str
    python: str = "3.11"


TF_SOURCE_PACKAGE = "tensorflow"
TF_SOURCE_VERSION = "2.14.1+dfsg-3.1"
TF_ORIG_TARBALL = "tensorflow_2.14.1+dfsg.orig.tar.xz"
TF_ORIG_SHA256 = "9dfff0627def4e999f66a80d0fb57fd0651d12d525dcd67d6c24f1e9bca72b93"
TF_VERSION = "2.14.1"

FLATBUFFERS_DEV = Deb("libflatbuffers-dev", "23.5.26+dfsg-4")
RUY_DEV = Deb("libruy-dev", "0.0.0~git20230215.21a85fe-2")
ONNXRUNTIME_DEV = Deb("libonnxruntime-dev", "1.23.2+dfsg-6.1")

TFLITE_RUNTIME = Wheel("tflite-runtime", "2.14.0")
# aarch64 TFLite: the C API library of this wheel (its options-struct offsets are checked in tflite_benchmark_model.cpp)
LITERT_ARM64 = Wheel("ai-edge-litert", "1.4.0")
LITERT_PLATFORM = "manylinux_2_17_aarch64"
LITERT_LIBRARY = "libLiteRtRuntimeCApi.so"
EXECUTORCH = Wheel("executorch", "1.5.1")
ONNXRUNTIME = Wheel("onnxruntime", "1.32.0")

# Bookworm packages the Makefile installs with apt-get (headers and static libraries used in place).
SYSTEM_PACKAGES = ("g++", "binutils", "xz-utils", "libabsl-dev", "libeigen3-dev", "libgemmlowp-dev",
                   "libpthreadpool-dev")
SYSTEM_HEADERS = {"libabsl-dev": "/usr/include/absl/base/config.h",
                  "libeigen3-dev": "/usr/include/eigen3/Eigen/Core",
                  "libgemmlowp-dev": "/usr/include/gemmlowp/public/gemmlowp.h",
                  # TFLite's cpu_backend_context.h includes it; nothing else pulls the package in on a bare machine
                  "libpthreadpool-dev": "/usr/include/pthreadpool.h"}

# Architectures `runners build --arch` accepts -> (Android/Linux ABI name as ro.product.cpu.abi, wheel platform tag).
ARCHES = {"x86_64": ("x86_64", "manylinux_2_28_x86_64"), "aarch64": ("arm64-v8a", "manylinux_2_28_aarch64")}
TFLITE_PLATFORM = {"x86_64": "manylinux2014_x86_64"}
# The C++ compiler per arch, first found wins (bookworm: g++-12-aarch64-linux-gnu; g++-aarch64-linux-gnu adds the
# unversioned name).
COMPILERS = {"x86_64": ("g++",), "aarch64": ("aarch64-linux-gnu-g++-12", "aarch64-linux-gnu-g++")}
CROSS_PACKAGES = {"aarch64": ("g++-12-aarch64-linux-gnu", "libc6-dev-arm64-cross")}

# --- aarch64 (Debian sid arm64 packages, unpacked with dpkg-deb -x, never installed) -------------------------------
ARM64 = "arm64"
# C++ runtime shipped with every aarch64 runner (one libstdc++ for the folder, newer than any runner needs).
CXX_RUNTIME_ARM64 = (Deb("libstdc++6", "16.2.0-4", ARM64), Deb("libgcc-s1", "16.2.0-4", ARM64))
# The glibc the aarch64 folder needs (the shipped libstdc++: GLIBC_2.38); the sysroot qemu's -L points at.
GLIBC_ARM64 = Deb("libc6", "2.43-7", ARM64)
GLIBC_NEEDED = "2.38"
LOADER = {"aarch64": "/lib/ld-linux-aarch64.so.1"}
# User-mode emulator for running aarch64 folders on this x86-64 host (static binaries in trixie's qemu-user).
QEMU_USER = Deb("qemu-user", "1:10.0.13+ds-0+deb13u1")
QEMU_BINARY = {"aarch64": "qemu-aarch64"}
# CPU model qemu emulates: every ARMv8/v9 feature it implements (fp16 arithmetic, dot product, i8mm, bf16, SVE2).
QEMU_CPU = "max"
