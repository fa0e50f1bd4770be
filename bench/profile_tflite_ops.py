"""Per-op latency of a .tflite under XNNPACK, by isolation: where the time goes, and what the deploy form can win.

    .venv/bin/python bench/profile_tflite_ops.py export/efficientvit-b1/512x512/tflite-fp32-noopt.tflite \
        export/efficientvit-b1/512x512/tflite-fp32.tflite [--runs 20] [--threads 2] [--top 10]

A thin front end: `effvit_deploy.export.targets.tflite.op_profile` cuts each operator out into a one-op model, times
it alone with XNNPACK at --threads (median of --runs) and reports per file the time per op type, the slowest ops and
the share of "attention-only" op types, which bounds what any attention rewrite can buy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effvit_deploy.export.targets.tflite.op_profile import profile, report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tflite", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    for path in args.tflite:
        if not path.is_file():
            print(f"error: {path} is not a file; export it first (effvit-export --target tflite ...)", file=sys.stderr)
            return 2
    for path in args.tflite:
        print(report(path, profile(path, args.runs, args.threads), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
