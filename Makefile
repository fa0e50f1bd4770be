# effvit-deploy: `make demo` and `make test` are all a user types; both set up .venv on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ANDROID_TOOLS := .cache/android-tools
ANDROID_TOOLS_STAMP := $(ANDROID_TOOLS)/.installed
ANDROID_AARS ?=

.PHONY: setup demo test lint bench-export bench-profile bench-quant bench-harness clean android-tools android-app

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@command -v adb >/dev/null 2>&1 || { echo "installing the adb client (Debian package adb)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y adb; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -c constraints.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m effvit_deploy.demo

test: $(STAMP) android-app
	$(PY) -m pytest -q

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

clean:
	rm -rf $(VENV) .pytest_cache android_app/build
