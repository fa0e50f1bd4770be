"""Where fp16 ReLU linear attention breaks, and whether the fp16-safe deploy form fixes it (README table).

    python bench/fp16_attention.py [--models efficientvit-b0 efficientvit-b1] [--resolutions 224 512 1024]

For each model and resolution: one forward pass of the deploy form (seeded weights, a bundled held-out photo)
records q, k, v of every attention core; each is then evaluated in emulated fp16 arithmetic
(`effvit_deploy.export.deploy.fp16_emulation`: fp16 storage, fp16-accumulating GEMMs, fp32-accumulating mean) in
the original form (Σk = mean·N, den + 1e-15) and in the fp16-safe form (k, v × 1/√N, max(den, 2⁻²⁴)), against the
float64 result. The seeded weights' activations are small (max |k| ≈ 0.1–0.6), trained ones are larger, so the
activations are also multiplied by a gain g (q, k, v × g: the quotient is g·out, the intermediates grow like g²/g³):
the table gives, per form, the smallest gain of 1, 2, 4, … 256 at which an output entry is inf/NaN.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from effvit_deploy.export.deploy import fp16_emulation as fe  # noqa: E402
from effvit_deploy.export.deploy import to_deploy_form  # noqa: E402
from effvit_deploy.export.deploy.lite_mla_deploy import FP16_SAFE_FLOOR  # noqa: E402
from effvit_deploy.export.quantize.calibration import heldout_images  # noqa: E402
from effvit_deploy.export.weights import seeded_model  # noqa: E402

GAINS = tuple(2**i for i in range(9))
OFFICIAL_EPS = 1e-15


def capture(name: str, res: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Unscaled q, k, v (G, d, N) of every ReLU attention core of `name` at res x res on one photo."""
    deploy, _ = to_deploy_form(seeded_model(name), (res, res))  # the default: original scale

    return fe.attention_inputs(deploy, torch.from_numpy(heldout_images((res, res))[0]))


def forms(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> dict[str, fe.Emulated]:
    """Both forms of one attention core in emulated fp16."""
    tokens = q.shape[-1]
    s = tokens**-0.5
    return {"original": fe.attention(q, k, v, OFFICIAL_EPS, float(tokens)),
            "fp16-safe": fe.attention(q, k * s, v * s, 0.0, tokens * s, floor=FP16_SAFE_FLOOR)}


def analyse(name: str, res: int) -> dict:
    cores = capture(name, res)
    row: dict = {"model": name, "res": res, "tokens": sorted({q.shape[-1] for q, _, _ in cores}, reverse=True),
                 "max_k": max(float(np.abs(k).max()) for _, k, _ in cores)}
    for form in ("original", "fp16-safe"):
        at1 = [forms(q, k, v)[form] for q, k, v in cores]
        ref = [fe.reference(q, k, v, OFFICIAL_EPS) for q, k, v in cores]
        row[form] = {"max_kv": max(e.max_kv for e in at1), "max_key_sum": max(e.max_key_sum for e in at1),
                     "zero_den": sum(e.zero_den for e in at1), "nonfinite": sum(e.nonfinite for e in at1),
                     "min_cos": _worst([fe.cosine(e.out, r) for e, r in zip(at1, ref, strict=True)]),
                     "breaks_at": next((g for g in GAINS if any(forms(q * g, k * g, v * g)[form].nonfinite
                                                                 for q, k, v in cores)), None)}
    return row


def _worst(cosines: list[float]) -> float:
    """The lowest cosine, NaN if any core's output had inf/NaN (min() would skip a NaN)."""
    return float("nan") if any(np.isnan(c) for c in cosines) else min(cosines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientvit-b0", "efficientvit-b1"])
    parser.add_argument("--resolutions", nargs="+", type=int, default=[224, 512, 1024])
    args = parser.parse_args(argv)
    print("| model | res | tokens | max |k| | form | max |Σk| | max |v·kᵀ| | den = 0 | inf/NaN out | min cosine "
          "| inf/NaN from gain |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        for res in args.resolutions:
            row = analyse(name, res)
            for form in ("original", "fp16-safe"):
                r = row[form]
                cos = "NaN" if np.isnan(r["min_cos"]) else f"{r['min_cos']:.5f}"
                print(f"| {name} | {res} | {'/'.join(map(str, row['tokens']))} | {row['max_k']:.2f} | {form} | "
                      f"{r['max_key_sum']:.3g} | {r['max_kv']:.3g} | {r['zero_den']} | {r['nonfinite']} | {cos} | "
                      f"{r['breaks_at'] or '> 256'} |", flush=True)


if __name__ == "__main__":
    main()
