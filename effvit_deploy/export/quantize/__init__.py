"""Int8 export: calibration images, PT2E simulation, per-target int8 artifacts, accuracy and op census.

>>> from effvit_deploy.export.quantize import calibration_images, quantize_for_target
>>> calib, heldout = calibration_images(None, 32, (224, 224))          # bundled photos, disjoint held-out set
>>> info = quantize_for_target("tflite", deploy_module, example, tmp_path, calib=calib, attention="auto",
...                            heldout=heldout)
>>> info["accuracy"]["cosine"], info["census"]["boundaries"], info["attention"][0]["choice"]

Only what is runtime-agnostic lives here: `calibration` (images, official preprocessing), `pt2e` (XNNPACKQuantizer
simulation, per-layer SQNR), `sensitivity` (attention choices, worst layers), `islands` (the attention-core finder,
fed each format's op tables), `census` (the int8 census summary and boundary classes), `metrics`, and `int8` (the
orchestration). Each runtime's recipe, graph reader and op tables live with its target:
`effvit_deploy/export/targets/<runtime>/int8.py` and `ops.py`.
"""

from __future__ import annotations

from .calibration import DEFAULT_CALIB_COUNT, ImageSet, calibration_images, heldout_images, planned_count
from .int8 import ATTENTION_MODES, check_options, quantize_for_target

__all__ = [
    "ATTENTION_MODES",
    "DEFAULT_CALIB_COUNT",
    "ImageSet",
    "calibration_images",
    "check_options",
    "heldout_images",
    "planned_count",
    "quantize_for_target",
]
