"""fp32 / fp16 / int8 artifacts on ARM kernels (the aarch64 runners under qemu-user) against PyTorch: the README table.

    python bench/arm_numerics.py --runner-dir build/runners/aarch64 [--models ...] [--resolutions 224 512]
        [--targets tflite onnx executorch] [--precisions fp32 fp16 int8] [--cpus max] [--attention-forms ...]

Each artifact is exported (cached under --export-dir), then run once by the aarch64 runner of its target on the
verification input stored at export, under `qemu-aarch64 -cpu CPU` (`max`: FEAT_FP16 and dot-product, so XNNPACK
picks its fp16-arithmetic and int8-dotprod kernels), and output 0 is compared with PyTorch's reference output
(fp32 PyTorch of the original model). One row per artifact x kernel path: cosine, max |Δ|, pass/fail against the
export tolerance (effvit_deploy.parity).

Attention forms (fp16 rows, --attention-forms): `export` is what export makes (fp16: the original form with q, k, v
cast to fp32 around the core; fp32: the original form too); `fp16-safe-core` is the 1/√N-scaled form with
max(den, 2⁻¹⁴) and its core in fp16; `original-fp16-core` the original form (Σk = mean·N, den + 1e-15) with its core
in fp16, i.e. what a runtime running the whole graph in fp16 executes; TFLite only: `fp16-guard` the export with
`ExportOptions(fp16_guard=True)` / `effvit-export --fp16-guard` (the division as where(den > 0, num / den, 0); the
TFLite fp16 default, so the same file as `export`), `no-fp16-guard` the one-partition form (`--no-fp16-guard`).
TFLite runs through our aarch64 benchmark_model on ai-edge-litert's C API: XNNPACK fp32, XNNPACK with
`--xnnpack_force_fp16=true` (the whole delegated graph in fp16 arithmetic; on `-cpu cortex-a57`, which has no
FEAT_FP16, XNNPACK refuses to build that runtime) and `--use_xnnpack=false` (TFLite's builtin kernels); that C API
library ignores weights stored after the flatbuffer, which the export therefore moves inside
(`effvit_deploy.export.targets.tflite.inline`). A force-fp16 run is judged by the fp16 criterion whatever the artifact.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from effvit_deploy.bench.arm_run import run_on_arm  # noqa: E402
from effvit_deploy.errors import EffvitError  # noqa: E402
from effvit_deploy.export import api  # noqa: E402
from effvit_deploy.export.deploy import lite_mla_deploy  # noqa: E402
from effvit_deploy.parity import compare  # noqa: E402
from effvit_deploy.runners import folder as runner_folder  # noqa: E402

FORMS = ("export", "fp16-safe-core", "original-fp16-core", "fp16-guard", "no-fp16-guard")
GUARD_FORMS = {"fp16-guard": True, "no-fp16-guard": False}  # ExportOptions.fp16_guard (TFLite fp16 only)


@contextlib.contextmanager
def attention_form(form: str) -> Iterator[None]:
    """Export with the given attention form (`export`: what the deploy pass makes; the others patch it)."""
    if form == "export" or form in GUARD_FORMS:  # the guard is an export option (ExportOptions.fp16_guard)
        yield
        return
    original = lite_mla_deploy.DeployLiteMLA.from_lite_mla.__func__  # type: ignore[attr-defined]
    safe = form == "fp16-safe-core"

    def patched(cls, m, tokens, join_qkv=False, split_style="chunk", **_ignored):  # noqa: ANN001, ANN003, ANN202
        new = original(cls, m, tokens, join_qkv=join_qkv, split_style=split_style, fp16_safe=safe,
                       floor=lite_mla_deploy.FP16_SAFE_FLOOR_NORMAL)
        if new is not None:
            new.fp32_core = False  # the core in the module's dtype: what a runtime running all in fp16 does
        return new

    lite_mla_deploy.DeployLiteMLA.from_lite_mla = classmethod(patched)  # type: ignore[method-assign]
    try:
        yield
    finally:
        lite_mla_deploy.DeployLiteMLA.from_lite_mla = classmethod(original)  # type: ignore[method-assign]


def export_one(model: str, res: int, target: str, precision: str, form: str, export_dir: Path) -> tuple[Path, dict]:
    """The artifact and its manifest entry (exported once per form into its own folder)."""
    with attention_form(form):
        entry = api.export(model, api.ExportOptions(target=target, resolution=res, precision=precision,
                                                    out_dir=export_dir / form, random_weights=True,
                                                    fp16_guard=GUARD_FORMS.get(form)))
    folder = export_dir / form / model / f"{res}x{res}"
    return folder / entry["artifact"], entry


# Kernel paths per target: (name, qemu -cpu, runner flags, the precision whose criterion judges it). `max` has
# FEAT_FP16 and dot-product; `cortex-a57` (ARMv8.0) has neither: the no-fp16 control.
PATHS = {
    "tflite": [("TFLite XNNPACK fp32", "max", (), None),
               ("TFLite XNNPACK force-fp16", "max", ("--xnnpack_force_fp16=true",), "fp16"),
               ("TFLite XNNPACK force-fp16", "cortex-a57", ("--xnnpack_force_fp16=true",), "fp16"),
               ("TFLite builtin (no XNNPACK)", "max", ("--use_xnnpack=false",), None)],
    "executorch": [("ExecuTorch XNNPACK", "max", (), None), ("ExecuTorch XNNPACK", "cortex-a57", (), None)],
    "onnx": [("ORT MLAS", "max", (), None), ("ORT MLAS", "cortex-a57", (), None)],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner-dir", type=Path, default=Path("build/runners/aarch64"))
    parser.add_argument("--export-dir", type=Path, default=Path("export/arm-numerics"))
    parser.add_argument("--models", nargs="+", default=["efficientvit-b0", "efficientvit-b1"])
    parser.add_argument("--resolutions", nargs="+", type=int, default=[224, 512])
    parser.add_argument("--targets", nargs="+", default=["tflite", "onnx", "executorch"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"])
    parser.add_argument("--cpus", nargs="+", default=["max", "cortex-a57"], help="qemu -cpu models to include")
    parser.add_argument("--attention-forms", nargs="+", default=list(FORMS), choices=FORMS,
                        help="fp16 rows: which attention forms to export (fp32/int8 rows: export)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    manifest = runner_folder.read(args.runner_dir)
    if manifest is None or manifest.get("arch") != "aarch64" or "emulation" not in manifest:
        parser.error(f"--runner-dir {args.runner_dir} is not an aarch64 runner folder; build it with "
                     "effvit-bench runners build --arch aarch64")
    rows = []
    print("| model | res | artifact | attention form | kernel path | qemu -cpu | cosine | max abs diff | top-1 "
          "| parity |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        for res in args.resolutions:
            for target in args.targets:
                for precision in args.precisions:
                    forms = args.attention_forms if precision == "fp16" else ["export"]
                    # the guard is TFLite's (ExecuTorch and ONNX fp16 keep q, k, v in an fp32 core already)
                    forms = [f for f in forms if f not in GUARD_FORMS or target == "tflite"]
                    for form in forms:
                        rows += measure(args, manifest, model, res, target, precision, form)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def measure(args: argparse.Namespace, manifest: dict, model: str, res: int, target: str, precision: str,
            form: str) -> list[dict]:
    """The rows of one artifact: every kernel path of its target."""
    try:
        artifact, entry = export_one(model, res, target, precision, form, args.export_dir)
    except EffvitError as exc:  # e.g. the export's own parity check refused it on this CPU
        print(f"| {model} | {res} | {target}-{precision} | {form} | (export, x86-64) | - | - | - | - | "
              f"export refused: {str(exc)[-90:]} |", flush=True)
        return []
    reference = np.load(artifact.parent / entry["verification"]["reference"])
    rows = []
    for path, cpu, flags, judged_as in PATHS[target]:
        if cpu not in args.cpus:
            continue
        top1: bool | None = None
        try:
            out = run_on_arm(args.runner_dir, manifest, target, artifact, entry, cpu, runner_flags=flags)
            result = compare(reference, out.reshape(reference.shape), judged_as or precision)
            cos = float("nan") if result["cosine"] is None else result["cosine"]
            diff = float("nan") if result["max_abs"] is None else result["max_abs"]
            top1 = bool(result["top1_equal"])
            verdict = "pass" if result["passed"] else "FAIL"
            if not np.all(np.isfinite(out)):
                verdict += f" ({int(np.sum(~np.isfinite(out)))} non-finite outputs)"
        except (RuntimeError, ValueError) as exc:
            cos, diff, verdict = float("nan"), float("nan"), f"cannot run: {exc}"
        row = {"model": model, "res": res, "artifact": artifact.name, "form": form, "kernel_path": path,
               "cpu": cpu, "cosine": cos, "max_abs_diff": diff, "top1_equal": top1, "parity": verdict}
        rows.append(row)
        print(f"| {model} | {res} | {artifact.name} | {form} | {path} | {cpu} | {cos:.6f} | {diff:.3g} | "
              f"{'-' if top1 is None else ('yes' if top1 else 'NO')} | {verdict} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
