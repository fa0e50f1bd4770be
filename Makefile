# effvit-deploy: `make demo` and `make test` are all a user types; both set up .venv on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench-export bench-profile bench-quant bench-harness bench-highres clean

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

test: $(STAMP)
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

# segmentation at Cityscapes resolutions: latency, peak memory, attention MAC share (exports 1024x2048: GBs of RAM)
bench-highres: $(STAMP)
	$(PY) bench/bench_highres.py

bench-harness: $(STAMP)
	$(PY) bench/bench_harness.py

clean:
	rm -rf $(VENV) .pytest_cache
