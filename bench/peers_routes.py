"""The routes a user could take instead of ours, each turning the same weights into an artifact for one runtime.

Every route returns `Artifact`s or raises `RouteUnavailable` with one line saying why (a peer not installed, a
converter that failed on the model). Peer artifacts are cached under `<out>/<model>/<HxW>/peers/` next to a small
JSON sidecar naming what they were built from (the source file's sha256, the flags, the tool's version), so a second
run reuses them only when nothing changed; they are written through a temp file and renamed, never half-written.

Routes (what a user would reach for, with its defaults unless said):
- ours / ours --no-optimize: `effvit_deploy.export.export` (deploy form / as built) for tflite, onnx, executorch;
- onnx2tf: our plain ONNX export -> `onnx2tf -i model.onnx` (defaults) and with `ONNX2TF_SPEED_FLAGS`;
- timm: timm's `efficientvit_mit` port with our weights mapped onto it (the key map in `models.checkpoint`), through
  litert-torch's defaults, through torch.onnx -> onnx2tf, and through our ONNX / ExecuTorch targets as built;
- nobuco: PyTorch -> Keras (tf_keras) -> `tf.lite.TFLiteConverter` defaults.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from effvit_deploy.export import ExportOptions, export
from effvit_deploy.fileio import atomic_path, sha256_file
from effvit_deploy.models.checkpoint import timm_to_official

# onnx2tf variants: its defaults, and the switches its help text ties to run-time speed that apply to an fp32 CPU
# graph of this model. (-eatfp16 is an fp16 ARMv8.2 hint, -ofgd targets the GPU delegate, -eru unrolls RNNs and the
# ArgMax fusions need an ArgMax: none applies.) -ebu splits BATCH_MATMUL into per-batch MATMULs.
ONNX2TF_VARIANTS: dict[str, tuple[str, ...]] = {
    "onnx2tf defaults": (),
    "onnx2tf -ebu": ("-ebu",),
}

TIMM_ARCH = {"efficientvit-b0": "efficientvit_b0", "efficientvit-b1": "efficientvit_b1",
             "efficientvit-b2": "efficientvit_b2", "efficientvit-b3": "efficientvit_b3"}


class RouteUnavailable(RuntimeError):
    """A route that cannot produce its artifact here; the message is one line naming why."""


@dataclass(frozen=True)
class Artifact:
    route: str  # as printed in the table
    runtime: str  # "litert", "onnxruntime" or "executorch"
    path: Path
    reference: str  # which PyTorch model its outputs must match: "ours" or "timm"


RUNTIME_OF_TARGET = {"tflite": "litert", "onnx": "onnxruntime", "executorch": "executorch"}


# ----------------------------------------------------------------------------------------------------------------------
# ours


def ours(model: str | nn.Module, resolution: tuple[int, int], out_dir: Path, targets: tuple[str, ...],
         *, name: str | None = None, label: str = "ours", optimize_variants: tuple[bool, ...] = (True, False),
         reference: str = "ours", nhwc: bool = False) -> list[Artifact]:
    """Our pipeline's verified artifacts (cached by the pipeline itself) per target, deploy form and as built."""
    found = []
    for target in targets:
        for optimize in optimize_variants:
            entry = export(model, ExportOptions(target=target, resolution=resolution, out_dir=out_dir,
                                                optimize=optimize, name=name, random_weights=name is None, nhwc=nhwc))
            route = (label if optimize else f"{label} --no-optimize") + (" --nhwc" if nhwc else "")
            found.append(Artifact(route, RUNTIME_OF_TARGET[target], Path(entry["path"]), reference))
    return found


# ----------------------------------------------------------------------------------------------------------------------
# peer artifacts: cache + atomic write


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RouteUnavailable(f"{dist} is not installed (pip install '.[peers]', see README 'Against the peers')") \
            from exc


def cached_build(path: Path, recipe: dict, build: Callable[[Path], None]) -> Path:
    """`path` if its sidecar records `recipe`, else `build(temp)` then rename onto `path` (sidecar written last)."""
    sidecar = path.with_suffix(path.suffix + ".json")
    if path.exists() and sidecar.exists():
        try:
            if json.loads(sidecar.read_text()) == recipe:
                return path
        except (OSError, ValueError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        build(Path(tmp))
    with atomic_path(sidecar) as tmp:
        Path(tmp).write_text(json.dumps(recipe, indent=1, sort_keys=True))
    return path


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors or lines or ["(no output)"])[-1][:300]


# ----------------------------------------------------------------------------------------------------------------------
# onnx2tf


# onnx2tf checks its conversion on 20 sample photos it downloads into the working folder unless that file is already
# there; offline, we write the same-shaped file (20x128x128x3 float32 in [0, 1]) from the photos scikit-image ships.
# It feeds only onnx2tf's accuracy check, not the graph it writes.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def write_onnx2tf_sample_images(path: Path, count: int = 20, size: int = 128) -> None:
    import numpy as np
    from PIL import Image

    from effvit_deploy.export.quantize.calibration import bundled_photo_dir

    photos = sorted(p for p in bundled_photo_dir().iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = []
    for photo in photos:
        with Image.open(photo) as im:
            if im.mode != "RGB" or min(im.size) < size:
                continue
            images.append(np.asarray(im.resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255.0)
    if not images:
        raise RouteUnavailable("no RGB photo in scikit-image's data folder to give onnx2tf as sample images")
    np.save(path, np.stack([images[i % len(images)] for i in range(count)]))


def onnx2tf(onnx_path: Path, out: Path, flags: tuple[str, ...] = ()) -> Path:
    """`onnx2tf -i onnx_path [flags]` in a scratch folder; its `*_float32.tflite` becomes `out`."""
    recipe = {"tool": "onnx2tf", "version": _version("onnx2tf"), "source_sha256": sha256_file(onnx_path),
              "flags": list(flags)}

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="onnx2tf-") as work:
            write_onnx2tf_sample_images(Path(work) / ONNX2TF_SAMPLE_FILE)
            # onnx2tf rewrites its input file in place (onnxsim's result): give it a copy, not our artifact
            shutil.copyfile(onnx_path, Path(work) / "model.onnx")
            cmd = [sys.executable, "-m", "onnx2tf", "-i", "model.onnx", "-o", "out", "-n", *flags]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                                  env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
            produced = sorted((Path(work) / "out").glob("*_float32.tflite"))
            if done.returncode != 0 or not produced:
                raise RouteUnavailable(f"onnx2tf failed (exit {done.returncode}): "
                                       f"{_first_line(done.stderr + done.stdout)}")
            shutil.copyfile(produced[0], tmp)

    return cached_build(out, recipe, build)


# ----------------------------------------------------------------------------------------------------------------------
# timm


def timm_model(model_name: str, ours_model: nn.Module) -> nn.Module:
    """timm's port of `model_name` (no download) carrying `ours_model`'s weights through the documented key map."""
    if model_name not in TIMM_ARCH:
        raise RouteUnavailable(f"timm has no port of {model_name}")
    _version("timm")
    try:
        with _quiet():
            from timm.models import efficientvit_mit
    except Exception as exc:  # ImportError, or timm's own import-time failure without torchvision
        raise RouteUnavailable(f"timm.models.efficientvit_mit does not import: {type(exc).__name__}: {exc}") from exc
    builder = getattr(efficientvit_mit, TIMM_ARCH[model_name])
    theirs = builder(pretrained=False).eval()
    ours_state = ours_model.state_dict()
    mapped = {}
    for timm_key, official_key in zip(theirs.state_dict(), timm_to_official(theirs.state_dict()), strict=True):
        if official_key not in ours_state:
            raise RouteUnavailable(f"timm key {timm_key} maps to {official_key}, which {model_name} does not have")
        mapped[timm_key] = ours_state[official_key]
    theirs.load_state_dict(mapped, strict=True)
    return theirs


def litert_torch_default(module: nn.Module, example: torch.Tensor, out: Path, recipe: dict) -> Path:
    """`litert_torch.convert(module, (x,)).export(path)`: the converter's defaults, nothing of ours in between."""
    recipe = {**recipe, "tool": "litert-torch", "version": _version("litert-torch")}

    def build(tmp: Path) -> None:
        import litert_torch

        try:
            with _quiet():
                litert_torch.convert(module.eval(), (example,)).export(str(tmp))
        except Exception as exc:  # the converter raises many types; all mean "did not convert"
            raise RouteUnavailable(f"litert-torch failed: {type(exc).__name__}: {_first_line(str(exc))}") from exc

    return cached_build(out, recipe, build)


# ----------------------------------------------------------------------------------------------------------------------
# nobuco


def nobuco_tflite(module: nn.Module, example: torch.Tensor, out: Path, recipe: dict) -> Path:
    """nobuco.pytorch_to_keras (NHWC inputs/outputs as its docs show for TFLite) -> TFLiteConverter defaults."""
    recipe = {**recipe, "tool": "nobuco", "version": _version("nobuco")}

    def build(tmp: Path) -> None:
        try:
            with _quiet():
                import nobuco
                import tensorflow as tf
                from nobuco import ChannelOrder

                keras_model = nobuco.pytorch_to_keras(
                    module.eval(), args=[example], inputs_channel_order=ChannelOrder.TENSORFLOW,
                    outputs_channel_order=ChannelOrder.TENSORFLOW,
                )
                tmp.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras_model).convert())
        except Exception as exc:  # nobuco raises on unconverted ops; tf on anything else
            raise RouteUnavailable(f"nobuco failed: {type(exc).__name__}: {_first_line(str(exc))}") from exc

    return cached_build(out, recipe, build)


def torch_onnx_default(module: nn.Module, example: torch.Tensor, out: Path, recipe: dict) -> Path:
    """`torch.onnx.export(module, (x,), path)`: torch's defaults (dynamo exporter, its optimizer, no onnxsim)."""
    recipe = {**recipe, "tool": "torch.onnx", "version": torch.__version__}

    def build(tmp: Path) -> None:
        try:
            with _quiet():
                torch.onnx.export(module.eval(), (example,), str(tmp), dynamo=True, verbose=False)
        except Exception as exc:  # the exporter raises many types
            raise RouteUnavailable(f"torch.onnx failed: {type(exc).__name__}: {_first_line(str(exc))}") from exc

    return cached_build(out, recipe, build)


def weights_recipe(module: nn.Module, resolution: tuple[int, int]) -> dict:
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return {"weights_sha256": digest.hexdigest(), "resolution": list(resolution), "class": type(module).__name__}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Converters print progress on stdout; the benchmark prints its own."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
