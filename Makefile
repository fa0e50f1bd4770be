# effvit-deploy: `make demo` and `make test` are all a user types; both set up .venv on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ANDROID_TOOLS := .cache/android-tools
ANDROID_TOOLS_STAMP := $(ANDROID_TOOLS)/.installed
ANDROID_AARS ?=

.PHONY: setup demo test lint runners bench-export bench-profile bench-quant bench-harness bench-runners \
	bench-highres bench-peers clean android-tools android-app android-cmake bench-arm-numerics

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@command -v adb >/dev/null 2>&1 || { echo "installing the adb client (Debian package adb)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y adb; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -c constraints.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

# Native runners (effvit-bench runners build): bookworm build prerequisites, pinned; apt-get update only when one is
# missing. The downloads (sid/trixie through a private APT config, wheels through pip) and the builds are cached in
# ~/.cache/effvit-deploy/runners ($$EFFVIT_RUNNER_CACHE), so a second `make runners` only copies files.
RUNNER_APT := g++=4:12.2.0-3 binutils=2.40-2 xz-utils=5.4.1-1 libabsl-dev=20220623.1-1+deb12u2 \
	libeigen3-dev=3.4.0-4 libgemmlowp-dev=0.0~git20211220.e844ffd-1 libpthreadpool-dev=0.0~git20210507.1787867-1
# aarch64 runners: bookworm's cross compiler; the arm64 libraries, glibc sysroot and qemu-user 10 (trixie; bookworm's
# 7.2 crashes ONNX Runtime) come through the private APT config into the runner cache, pinned in runners/pins.py.
RUNNER_APT += g++-12-aarch64-linux-gnu=12.2.0-14cross1 libc6-dev-arm64-cross=2.36-8cross1
RUNNER_DIR := build/runners/x86_64
RUNNER_DIR_AARCH64 := build/runners/aarch64

runners: $(STAMP)
	@missing=$$(for p in $(RUNNER_APT); do dpkg -s "$${p%%=*}" >/dev/null 2>&1 || echo "$$p"; done); \
	if [ -n "$$missing" ]; then echo "installing runner build prerequisites: $$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi
	$(PY) -m effvit_deploy.cli.bench runners build --arch x86_64 --out $(RUNNER_DIR)
	$(PY) -m effvit_deploy.cli.bench runners build --arch aarch64 --out $(RUNNER_DIR_AARCH64)

demo: $(STAMP)
	$(PY) -m effvit_deploy.demo

# cmake (bookworm, pinned) for the Android NDK runner project: the tests run its configure step with a stub toolchain.
ANDROID_CMAKE_APT := cmake=3.25.1-1

android-cmake:
	@dpkg -s cmake >/dev/null 2>&1 || { echo "installing $(ANDROID_CMAKE_APT)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(ANDROID_CMAKE_APT); }

test: $(STAMP) runners android-app android-cmake
	EFFVIT_RUNNER_DIR=$(RUNNER_DIR) EFFVIT_RUNNER_DIR_AARCH64=$(RUNNER_DIR_AARCH64) $(PY) -m pytest -q --durations=15

lint: $(STAMP)
	$(VENV)/bin/ruff check effvit_deploy tests bench

bench-export: $(STAMP)
	$(PY) bench/bench_export.py

# per-op time of B1 at 512, plain vs deploy (run bench-export first: it writes the artifacts)
bench-profile: $(STAMP)
	$(PY) bench/profile_tflite_ops.py export/efficientvit-b1/512x512/tflite-fp32-noopt.tflite \
		export/efficientvit-b1/512x512/tflite-fp32.tflite

bench-quant: $(STAMP)
	$(PY) bench/bench_quant.py

# segmentation at Cityscapes resolutions: latency, peak memory, attention MAC share (exports 1024x2048: GBs of RAM)
bench-highres: $(STAMP)
	$(PY) bench/bench_highres.py
	$(PY) bench/bench_highres.py --test-sizes --results bench/results/bench_highres_test_sizes.md
	$(PY) bench/bench_highres_exports.py

# ours vs onnx2tf / torch.onnx / litert-torch defaults (+ timm, nobuco where they import), same weights, one process.
# The peers (TensorFlow, onnx2tf, ...) go into their own venv, $(PEERS_VENV), so .venv stays lean for `make test`.
PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.peers-installed

$(PEERS_STAMP): requirements.txt constraints.txt pyproject.toml requirements-peers-nodeps.txt
	test -x $(PEERS_VENV)/bin/python || python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -r requirements.txt -c constraints.txt
	$(PEERS_VENV)/bin/python -m pip install -e '.[peers]' -c constraints.txt
	$(PEERS_VENV)/bin/python -m pip install --no-deps -r requirements-peers-nodeps.txt
	touch $@

bench-peers: $(PEERS_STAMP)
	$(PEERS_VENV)/bin/python bench/bench_peers.py

bench-harness: $(STAMP)
	$(PY) bench/bench_harness.py
	$(PY) bench/bench_overlap.py

# --- android_app: the on-device benchmark app, built offline (no Gradle): javac -> dx -> aapt -> zipalign -> apksigner
# ANDROID_AARS=DIR: a folder of the official runtime .aar files to build a full APK (see android_app/README.md).

android-tools: $(ANDROID_TOOLS_STAMP)

$(ANDROID_TOOLS_STAMP): android_app/offline/install_tools.sh
	bash android_app/offline/install_tools.sh $(ANDROID_TOOLS)
	touch $@

android-app: $(ANDROID_TOOLS_STAMP)
	bash android_app/offline/build_apk.sh $(ANDROID_TOOLS) android_app/build/offline $(ANDROID_AARS)

# fp16 linear attention in emulated fp16 arithmetic (numpy), and fp32/fp16/int8 artifacts on ARM kernels (the aarch64
# runners under qemu-user -cpu max) against PyTorch: the README's two numerics tables
bench-arm-numerics: runners
	$(PY) bench/fp16_attention.py
	$(PY) bench/arm_numerics.py --runner-dir $(RUNNER_DIR_AARCH64)

# native runners vs the Python runner of the same runtime, b0/b1 at 224 and 512 (the README's table)
bench-runners: runners
	$(PY) bench/bench_runners.py --runner-dir $(RUNNER_DIR)

clean:
	rm -rf $(VENV) .pytest_cache android_app/build
