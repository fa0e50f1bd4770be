"""Exact versions of everything a runner build downloads (one place to move them; part of every build's cache key).

Why these versions (facts: shared/reference/native_runners_facts.md):
- TensorFlow 2.14.1 source (Debian sid) holds `tensorflow/lite/tools/benchmark`; tflite-runtime 2.14.0's
  `_pywrap_tensorflow_interpreter_wrapper.so` exports the TFLite C++ API that benchmark_model calls (ai-edge-litert
  exports only the LiteRt C API); its schema needs flatbuffers 23.5.26 (trixie).
- executorch 1.5.1 is the first wheel with a standalone C++ runtime (`executorch/lib`, `executorch/include`); it
  runs the .pte files of the pinned exporter (executorch 1.4.1), checked by the tests.
- onnxruntime 1.32.0 is the project's pinned runtime; its wheel has the library but no headers, which come from
  Debian sid's libonnxruntime-dev 1.23.2 (the C API is versioned and backward compatible: newer libraries serve
  older headers).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deb:
    """A binary package of another Debian suite, fetched with `apt-get download NAME=VERSION`."""

    name: str
    version: str


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
EXECUTORCH = Wheel("executorch", "1.5.1")
ONNXRUNTIME = Wheel("onnxruntime", "1.32.0")

# Bookworm packages the Makefile installs with apt-get (headers and static libraries used in place).
SYSTEM_PACKAGES = ("g++", "binutils", "xz-utils", "libabsl-dev", "libeigen3-dev", "libgemmlowp-dev")
SYSTEM_HEADERS = {"libabsl-dev": "/usr/include/absl/base/config.h",
                  "libeigen3-dev": "/usr/include/eigen3/Eigen/Core",
                  "libgemmlowp-dev": "/usr/include/gemmlowp/public/gemmlowp.h"}

# Architectures `runners build --arch` accepts -> (Android/Linux ABI name as ro.product.cpu.abi, wheel platform tag).
ARCHES = {"x86_64": ("x86_64", "manylinux_2_28_x86_64")}
TFLITE_PLATFORM = {"x86_64": "manylinux2014_x86_64"}
