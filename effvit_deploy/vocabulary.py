"""The words every stage shares, defined once: export targets and precisions (torch-free, so the bench can use them).

The export registry (`effvit_deploy.export.targets.TARGETS`) holds one backend per name here; result records, sweep
files, runner builds and reports validate and order by these tuples.
"""

from __future__ import annotations

TARGETS = ("tflite", "onnx", "executorch")  # report and sweep order
PRECISIONS = ("fp32", "fp16", "int8")
FLOAT_PRECISIONS = ("fp32", "fp16")  # what a target's `convert` writes; int8 comes from its `quantize`
