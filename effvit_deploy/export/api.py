"""The export pipeline: model → deploy form → target converter → verification → artifact + manifest entry.

    from effvit_deploy.export import ExportOptions, export
    entry = export("efficientvit-b0", ExportOptions(target="tflite", resolution=224, out_dir="export"))
    entry["path"], entry["parity"]["max_abs"], entry["cached"]
    # ('export/efficientvit-b0/224x224/tflite-fp32.tflite', 1.37e-06, False) with seed-0 weights; a second call
    # returns the same entry with cached=True without converting

Steps: `check_request` (every check, nothing built) -> `run`: the cache lookup, `_convert_and_verify` (convert or
quantize into a temp file, verify in the runtime, census), `_manifest_entry`.

Layout: `OUT/<model>/<HxW>/<target>-<precision>[-fullres][-nhwc][-noopt].<ext>` with `manifest.json` beside it.
The converter writes into a temp file in the destination folder; it is renamed onto the artifact only after the
artifact, run in its own runtime, matched the PyTorch model as built. Any failure or interrupt leaves no artifact.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__, memory_guard, models, zoo
from ..errors import InvalidInputError, MissingFileError
from ..fileio import atomic_path, sha256_file
from ..models.checkpoint import load_into, read_state_dict
from ..models.efficientvit_seg import FullResolutionOutput, output_stride
from ..models.registry import get_builder
from ..vocabulary import PRECISIONS
from . import manifest as mf
from . import quantize, verification_files
from .deploy import to_deploy_form
from .verify import IMAGENET_MEAN, IMAGENET_STD, fixed_input, reference_logits, verify
from .weights import seeded_model, weights_sha256

log = logging.getLogger(__name__)

RANDOM_WEIGHTS = "random weights (seed 0)"
MAX_CALIB_COUNT = 10_000  # calibration statistics settle after a few hundred images; more is a typo
ARTIFACT_MODE = 0o644
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportOptions:
    """What an export is asked to do, besides which model: the one spelling of an export request.

    The CLI builds one per (model, resolution, target); `check_request` validates it in one place; `export` runs it.

    Fields:
        target: "onnx", "tflite" or "executorch" (see `effvit_deploy.export.targets.TARGETS`).
        resolution: 224, "512x1024" or (512, 1024); each side a multiple of 32.
        precision: "fp32", "fp16" or "int8".
        out_dir: the artifact goes to `out_dir/<model>/<HxW>/`.
        optimize: apply the deploy form (BN folding, attention order, ...) before conversion.
        nhwc: ask the target for an NHWC input (runners still take NCHW).
        full_res_output: segmentation models only: upsample the logits to the input resolution in the graph (exact
            bicubic, as the official evaluation does) instead of returning them at 1/8 (`-fullres` in the name).
        checkpoint: weights file; without one, the zoo's file when present (`zoo_dir`, `$EFFVIT_ZOO`, `./models`),
            else seed-0 weights with random BN statistics (see `weights`); `random_weights=True` skips the zoo.
        calib, calib_count, int8_attention: int8 calibration folder (None: the quantizer's default images), image
            count and attention mode; ignored for fp32/fp16.
        max_memory: memory limit in bytes for the memory guard (default: what this machine has available).
        name: manifest/folder name when the model is a module (default: its class name).
        fp16_guard: TFLite fp16 (other targets keep their fp32 attention core and ignore it): the linear
            attention's division as where(den > 0, num / den, 0), whose select TFLite's XNNPACK leaves to fp32
            kernels, so fp16 arithmetic (`--xnnpack_force_fp16`) cannot make 0/0 = NaN of it (`lite_mla_deploy`,
            "fp16 guard"). None (default): on for TFLite fp16, whose file exists to be run in fp16; False: the
            one-partition form (`-unguarded` in the artifact name), right only where the runtime computes in fp32;
            True: asked for explicitly (an error for another precision).
        force: convert even if an identical artifact is cached.
    """

    target: str
    resolution: str | int | tuple[int, int] = 224
    precision: str = "fp32"
    out_dir: str | Path = "export"
    optimize: bool = True
    nhwc: bool = False
    full_res_output: bool = False
    checkpoint: str | Path | None = None
    zoo_dir: str | Path | None = None
    random_weights: bool = False
    calib: str | Path | None = None
    calib_count: int | None = None
    int8_attention: str = "auto"
    max_memory: int | None = None
    name: str | None = None
    fp16_guard: bool | None = None
    force: bool = False


@dataclass(frozen=True)
class Request:
    """One validated export request: the model, its normalised options and what validation resolved."""

    model: str | nn.Module
    name: str
    options: ExportOptions  # normalised: resolution (H, W), Paths, int8 fields cleared for float exports
    resolution: tuple[int, int]
    checkpoint: Path | None  # the file to load: given, or the zoo's
    weights: str = RANDOM_WEIGHTS  # how manifests and output lines name the weights ("zoo:b1-r224.pt", ...)
    checkpoint_sha256: str | None = None

    @property
    def target(self) -> str:
        return self.options.target

    @property
    def precision(self) -> str:
        return self.options.precision

    @property
    def folder(self) -> Path:
        return Path(self.options.out_dir) / self.name / models.format_resolution(self.resolution)

    def describe(self) -> str:
        o = self.options
        layout = " nhwc" if o.nhwc else ""
        opt = "" if o.optimize else " no-optimize"
        full = " full-res-output" if o.full_res_output else ""
        res = models.format_resolution(self.resolution)
        return f"{self.name} {res} → {o.target} {o.precision}{layout}{opt}{full}"


def check_request(model: str | nn.Module, options: ExportOptions) -> Request:
    """Validate an export request without building or converting anything (cheap; the CLI checks every job first).

    Weights: `options.checkpoint` if given; else, for a registry model, the zoo's file for it when the user placed
    it in the zoo folder (`zoo_dir`, `$EFFVIT_ZOO` or `./models`; see `effvit_deploy.zoo`); else seed-0 random
    weights. The memory guard refuses a request whose estimated peak (see `memory_guard`) does not fit
    `max_memory` or, by default, this machine's available memory.

    Raises:
        InvalidInputError: unknown target, precision, model, resolution, int8 option; an unwritable output folder;
            both a checkpoint and random_weights; an estimated peak memory above the limit.
        CheckpointError: the zoo's file does not have the sha256 the zoo records.
        MissingFileError: the checkpoint, zoo folder or calibration folder does not exist.
        MissingDependencyError: the target's runtime package is not installed (the message names the pip extra).
    """
    o = options
    if o.precision not in PRECISIONS:
        raise InvalidInputError(f"unknown precision {o.precision!r}; choose one of: {', '.join(PRECISIONS)}")
    backend = _backend(o.target)
    int8 = o.precision == "int8"
    if int8:
        quantize.check_options(backend, o.int8_attention)  # no int8 here, or an attention mode it cannot take
    elif o.precision not in backend.precisions:
        raise InvalidInputError(f"target {o.target} cannot export {o.precision}; it takes: "
                                f"{', '.join(backend.precisions)}")
    if o.fp16_guard and o.precision != "fp16":
        raise InvalidInputError(f"--fp16-guard applies to --precision fp16 only (got {o.precision}); drop it")
    res = models.parse_resolution(o.resolution)
    if isinstance(model, str):
        get_builder(model)  # unknown name -> InvalidInputError listing the valid ones
        display = o.name or model
    elif isinstance(model, nn.Module):
        display = o.name or type(model).__name__
    else:
        raise InvalidInputError(f"model must be a registry name or an nn.Module, not {type(model).__name__}")
    if o.full_res_output:
        _check_dense(model, display)
    if not display or "/" in display or display.startswith("."):
        raise InvalidInputError(f"model name {display!r} cannot be a folder name; pass name='my-model'")
    ckpt = Path(o.checkpoint) if o.checkpoint is not None else None
    if ckpt is not None and o.random_weights:
        raise InvalidInputError("pass either a checkpoint or random weights (--random-weights), not both")
    if ckpt is not None and ckpt.exists() and not ckpt.is_file():
        raise InvalidInputError(f"checkpoint {ckpt} is a folder, not a file; pass the path of a .pt/.pth file")
    if ckpt is not None and not ckpt.is_file():
        raise MissingFileError(f"checkpoint {ckpt} does not exist; pass the path of a .pt/.pth file")
    ckpt, weights = _choose_weights(model, ckpt, o.zoo_dir, o.random_weights)
    calib_path = Path(o.calib) if o.calib is not None else None
    if int8:
        if o.calib_count is not None and not 0 < o.calib_count <= MAX_CALIB_COUNT:
            raise InvalidInputError(f"calibration count must be from 1 to {MAX_CALIB_COUNT}, got {o.calib_count}")
        if calib_path is not None and calib_path.exists() and not calib_path.is_dir():
            raise InvalidInputError(f"--calib {calib_path} is not a folder; pass a folder of JPEG/PNG images")
        if calib_path is not None and not calib_path.is_dir():
            raise MissingFileError(f"calibration folder {calib_path} does not exist; pass a folder of images")
    if isinstance(model, str):
        calib_count = quantize.planned_count(calib_path, o.calib_count) if int8 else None
        need = memory_guard.export_estimate(model, res, backend.name, o.precision, calib_count)
        memory_guard.check_fits(need, o.max_memory, f"exporting {model} {models.format_resolution(res)} to "
                                                    f"{backend.name}{memory_guard.attention_note(model, res)}")
    out = Path(o.out_dir)
    check_writable(out)
    backend.versions()  # imports the runtime: a missing package fails here, before any work
    normalised = dataclasses.replace(
        o, target=backend.name, resolution=res, out_dir=out, checkpoint=ckpt,
        calib=calib_path if int8 else None, calib_count=o.calib_count if int8 else None,
        int8_attention=o.int8_attention if int8 else "auto",
    )
    return Request(model=model, name=display, options=normalised, resolution=res, checkpoint=ckpt, weights=weights,
                   checkpoint_sha256=sha256_file(ckpt) if ckpt is not None else None)


def export(model: str | nn.Module, options: ExportOptions, *, progress: Progress | None = None) -> dict[str, Any]:
    """Export one model as `options` say; return its manifest entry.

    Args:
        model: a registry name (`effvit_deploy.models.names()`) or an `nn.Module` (put in eval mode, not modified).
        options: target, resolution, precision and the rest (`ExportOptions`).
        progress: called with a short stage text ("building model", "converting", "verifying", ...).

    Returns:
        The manifest entry (see export/README.md) plus `"cached": bool` and `"path": str` (the artifact's path).

    Raises:
        InvalidInputError, MissingFileError, CheckpointError, MissingDependencyError: bad input (nothing written).
        VerificationError, ConversionError, QuantizationError: the artifact failed (nothing written).
    """
    return run(check_request(model, options), progress=progress)


def export_many(model_list: Iterable[str | nn.Module], targets: Iterable[str],
                resolutions: Iterable[str | int | tuple[int, int]], options: ExportOptions, *,
                progress: Progress | None = None) -> list[dict[str, Any]]:
    """Every combination of models × targets × resolutions with `options` otherwise; all requests are validated
    before the first export."""
    requests = [check_request(m, dataclasses.replace(options, target=t, resolution=r))
                for m in model_list for r in resolutions for t in targets]
    return [run(r, progress=progress) for r in requests]


def run(request: Request, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run one validated request: the cached entry, or convert, verify and record a new artifact."""
    say = progress or (lambda _stage: None)
    started = time.perf_counter()
    backend = _backend(request.target)
    artifact = _artifact_name(request, backend)
    folder, final = request.folder, request.folder / artifact

    say("building model")
    model = _build(request)
    versions = {**backend.versions(), "torch": torch.__version__, "effvit_deploy": __version__}
    versions["effvit_deploy_source"] = source_sha256(int8=request.precision == "int8")
    calib, heldout = _calibration(request)
    key = mf.cache_key({
        "model": request.name,
        "architecture": repr(model),
        "weights_sha256": weights_sha256(model),
        "options": _options(request),
        "calibration_sha256": _arrays_sha256(calib) if calib is not None else None,
        "versions": versions,
    })
    if not request.options.force:
        cached = _cached_entry(folder, artifact, key)
        if cached is not None:
            say("cached")
            if not verification_files.present(folder, cached):  # exported before the files existed: add them
                cached = _add_verification(request, backend, model, folder, artifact)
            return {**cached, "cached": True, "path": str(final)}

    example = fixed_input(request.resolution)
    reference = reference_logits(model, example)
    module, info = model, {"optimizations": [], "attention": []}
    if request.options.optimize:
        say("deploy form")
        module, info = _deploy_form(model, request)
    lock = ExitStack()
    try:
        with atomic_path(final) as tmp:
            made = _convert_and_verify(request, backend, module, example, reference, tmp, calib, heldout, say)
            # Rename and manifest update under one lock: a parallel export of the same file cannot interleave.
            lock.enter_context(mf.folder_lock(folder))
        # after the rename: an interrupted conversion leaves no verification files behind either
        verification = verification_files.write(folder, artifact, example.numpy(), reference,
                                                nhwc=request.options.nhwc, input_name=made["input_name"])
        entry = _manifest_entry(request, model, artifact, info, made, reference, verification, versions, key,
                                started)
        mf.put_entry_locked(folder, artifact, entry)
    finally:
        lock.close()
    return {**entry, "cached": False, "path": str(final)}


def _convert_and_verify(request: Request, backend: Any, module: nn.Module, example: torch.Tensor,
                        reference: np.ndarray, tmp: Path, calib: list[np.ndarray] | None,
                        heldout: list[np.ndarray] | None, say: Progress) -> dict[str, Any]:
    """Write the artifact to `tmp` (convert or quantize), run it in its runtime against `reference`, count its ops.

    Returns {"parity", "census", "int8", "sha256", "size_bytes", "input_name"}; raises (nothing kept) on failure.
    """
    o = request.options
    say("converting")
    int8_info, extra = None, None
    if o.precision == "int8":
        int8_info = quantize.quantize_for_target(backend, module, example, tmp, calib=calib,
                                                 attention=o.int8_attention, heldout=heldout, nhwc=o.nhwc)
    else:  # a backend may return extra census facts it only knows while converting
        extra = backend.convert(module, example, tmp, precision=o.precision, nhwc=o.nhwc)
    say("verifying")
    runner = backend.load_runner(tmp, threads=1)
    parity = verify(runner, reference, example, o.precision, what=f"{request.describe()} ({tmp.name})")
    say("counting ops")
    census = {**backend.census(tmp), **(extra or {})}
    tmp.chmod(ARTIFACT_MODE)  # mkstemp creates 0600; artifacts are ordinary readable files
    return {"parity": parity, "census": census, "int8": int8_info, "sha256": sha256_file(tmp),
            "size_bytes": tmp.stat().st_size, "input_name": _input_name(backend, tmp)}


def _manifest_entry(request: Request, model: nn.Module, artifact: str, info: dict, made: dict[str, Any],
                    reference: np.ndarray, verification: dict, versions: dict[str, str], key: str,
                    started: float) -> dict[str, Any]:
    """The artifact's manifest entry (fields documented in export/README.md)."""
    o = request.options
    params, macs = models.profile(model, request.resolution)
    return {
        "artifact": artifact,
        "model": request.name,
        "resolution": models.format_resolution(request.resolution),
        "target": o.target,
        "precision": o.precision,
        "nhwc": o.nhwc,
        "optimize": o.optimize,
        "optimizations": list(info.get("optimizations", [])),
        "attention": list(info.get("attention", [])),
        "upsample": list(info.get("upsample", [])),
        "census": made["census"],
        "params": params,
        "macs": macs,
        "size_bytes": made["size_bytes"],
        "sha256": made["sha256"],
        "parity": made["parity"],
        "verification": verification,
        "input": _input_spec(request),
        "num_classes": int(reference.shape[1]),
        "output": _output_spec(model, reference),
        "versions": versions,
        "options": _options(request),
        "weights": request.weights,
        "checkpoint_sha256": request.checkpoint_sha256,
        "int8": made["int8"],
        "cache_key": key,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "export_seconds": round(time.perf_counter() - started, 3),
    }


def _artifact_name(request: Request, backend: Any) -> str:
    o = request.options
    unguarded = _fp16_tflite(request) and not _guarded(request)
    suffix = ("-fullres" if o.full_res_output else "") + ("-unguarded" if unguarded else "") + backend.suffix
    return mf.artifact_name(o.target, o.precision, suffix, nhwc=o.nhwc, optimize=o.optimize)


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------


def check_writable(out: Path) -> None:
    """Create `out` and a temp file in it, or raise one line that names the folder and the fix."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test."):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidInputError(
            f"cannot write to output folder {out} ({reason}); pass --out/out_dir a writable folder or fix its "
            "permissions"
        ) from None


def source_sha256(*, int8: bool = False) -> str:
    """sha256 of the code that shapes an artifact's bytes (models, deploy form, targets; their int8.py and quantize
    for int8), so a code change there invalidates cached artifacts while edits elsewhere (bench, CLI, verification)
    do not."""
    root = Path(__file__).resolve().parents[1]
    folders = ["models", "export/deploy", "export/targets"] + (["export/quantize"] if int8 else [])
    digest = hashlib.sha256()
    files = (p for folder in folders for p in root.joinpath(folder).rglob("*.py") if int8 or p.name != "int8.py")
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _choose_weights(
    model: str | nn.Module, checkpoint: Path | None, zoo_dir: str | Path | None, random_weights: bool
) -> tuple[Path | None, str]:
    """(checkpoint to load, how to name the weights): the given file, the zoo's file, or seed-0 random weights."""
    if checkpoint is not None:
        return checkpoint, f"checkpoint:{checkpoint}"
    if random_weights or not isinstance(model, str):
        return None, RANDOM_WEIGHTS
    found = zoo.resolve_checkpoint(model, zoo_dir)
    if found is None:
        return None, RANDOM_WEIGHTS
    return found.path, found.label


def _backend(target: str) -> Any:
    from .targets import get_target  # the targets package imports no runtime until a backend is used

    return get_target(target)


def _build(request: Request) -> nn.Module:
    if isinstance(request.model, str):
        module = seeded_model(request.model, request.checkpoint)
    else:
        module = request.model.eval()
        if request.checkpoint is not None:
            load_into(module, read_state_dict(request.checkpoint), request.name, request.checkpoint)
    if request.options.full_res_output:
        module = FullResolutionOutput(module, output_stride(module) or 1).eval()
    return module


def _check_dense(model: str | nn.Module, display: str) -> None:
    """`--full-res-output` needs a model with a known output stride (the segmentation models)."""
    if isinstance(model, str):
        with torch.device("meta"):  # shapes only: nothing initialised
            model = get_builder(model)()
    if output_stride(model) is None:
        raise InvalidInputError(
            f"--full-res-output applies to segmentation models, and {display} is not one; drop the option"
        )


def _output_spec(model: nn.Module, reference: np.ndarray) -> dict[str, Any]:
    """What the artifact returns: logits (B, classes) or dense logits (B, classes, H, W) at `stride`."""
    inner = model.model if isinstance(model, FullResolutionOutput) else model
    stride = output_stride(inner)
    spec: dict[str, Any] = {"shape": [int(d) for d in reference.shape], "kind": "dense" if stride else "logits"}
    if stride:
        spec["stride"] = 1 if isinstance(model, FullResolutionOutput) else stride
    return spec


def _deploy_form(model: nn.Module, request: Request) -> tuple[nn.Module, dict]:
    split = _backend(request.target).split_style  # the target's converter decides how a joined q|k|v is split
    joined = getattr(_backend(request.target), "joined_qkv_max_tokens", 0)  # one qkv conv: ONNX Runtime (per node)
    module, info = to_deploy_form(model, request.resolution, precision=request.precision, split=split,
                                  fp16_guard=_guarded(request), joined_qkv_max_tokens=joined)
    return module.eval(), info


def _calibration(request: Request) -> tuple[list[np.ndarray] | None, list[np.ndarray] | None]:
    """int8 calibration and held-out images (None, None for float exports)."""
    if request.precision != "int8":
        return None, None
    return quantize.calibration_images(request.options.calib, request.options.calib_count, request.resolution)


def _arrays_sha256(arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _fp16_tflite(request: Request) -> bool:
    return request.target == "tflite" and request.precision == "fp16"


def _guarded(request: Request) -> bool:
    """The fp16 guard applies (a TFLite fp16 export not told otherwise): see ExportOptions.fp16_guard."""
    return _fp16_tflite(request) and request.options.fp16_guard is not False


def _options(request: Request) -> dict[str, Any]:
    options: dict[str, Any] = {
        "target": request.target,
        "precision": request.precision,
        "resolution": models.format_resolution(request.resolution),
        "optimize": request.options.optimize,
        "nhwc": request.options.nhwc,
    }
    if request.options.full_res_output:
        options["full_res_output"] = True  # only when set: the cache keys of every other export stay as they were
    if _guarded(request):
        options["fp16_guard"] = True  # likewise
    if request.precision == "int8":
        options.update(
            calib=str(request.options.calib) if request.options.calib else None,
            calib_count=request.options.calib_count,
            int8_attention=request.options.int8_attention,
        )
    return options


def _input_name(backend: Any, path: Path) -> str | None:
    """The graph input's tensor name for targets whose native runner needs it (TFLite), else None."""
    reader = getattr(backend, "input_name", None)
    return reader(path) if reader is not None else None


def _add_verification(request: Request, backend: Any, model: Any, folder: Path, artifact: str) -> dict[str, Any]:
    """Write the verification files for an artifact cached without them and record them in its manifest entry."""
    example = fixed_input(request.resolution)
    reference = reference_logits(model, example)
    info = verification_files.write(folder, artifact, example.numpy(), reference, nhwc=request.options.nhwc,
                                    input_name=_input_name(backend, folder / artifact))
    with mf.folder_lock(folder):
        entry = mf.read_entry(folder, artifact) or {}
        entry["verification"] = info
        mf.put_entry_locked(folder, artifact, entry)
    return entry


def _input_spec(request: Request) -> dict[str, Any]:
    height, width = request.resolution
    shape = [1, height, width, 3] if request.options.nhwc else [1, 3, height, width]
    return {
        "layout": "NHWC" if request.options.nhwc else "NCHW",
        "shape": shape,
        "dtype": "float32",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


def _cached_entry(folder: Path, artifact: str, key: str) -> dict[str, Any] | None:
    """The manifest entry if the artifact on disk is exactly the one it describes and `key` matches, else None."""
    path = folder / artifact
    entry = mf.read_entry(folder, artifact)
    if not path.is_file():
        return None
    if entry is None:
        log.info("artifact %s has no manifest entry: re-exporting", path)
        return None
    if sha256_file(path) != entry.get("sha256"):
        log.warning("artifact %s is corrupt (sha256 mismatch): re-exporting", path)
        return None
    if entry.get("cache_key") != key:
        log.info("artifact %s was made from other inputs (model, weights, options or tools): re-exporting", path)
        return None
    return entry
