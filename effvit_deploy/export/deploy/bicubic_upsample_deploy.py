"""Replaces each bicubic `UpSampleLayer` (EfficientViT seg head, `--full-res-output`) with `BicubicUpsample`.

Why: `upsample_bicubic2d` has no TFLite op and stays outside ExecuTorch's XNNPACK delegate; `BicubicUpsample`
computes the same function (to fp32 rounding) with slices, concatenations, two depthwise convs and a pixel shuffle,
which all three targets put into their one XNNPACK partition (see `bicubic.py`). The convs need the channel count,
read from the input shape at the export resolution (a shapes-only run, `_shapes.input_shapes`).
"""

from __future__ import annotations

from torch import nn

from effvit_deploy.export.deploy._base import DeployContext, PassResult, set_submodule
from effvit_deploy.export.deploy._shapes import input_shapes
from effvit_deploy.export.deploy.bicubic import BicubicUpsample
from effvit_deploy.models.efficientvit_seg import UpSampleLayer


class BicubicUpsampleDeployPass:
    """Swap every UpSampleLayer reached by forward for a BicubicUpsample with its channel count and factor."""

    name = "bicubic_upsample"

    def __call__(self, model: nn.Module, ctx: DeployContext) -> PassResult:
        if not any(type(m) is UpSampleLayer for m in model.modules()):
            return PassResult(modified=False)
        shapes = input_shapes(model, ctx.resolution, UpSampleLayer)
        records = []
        for name, shape in shapes.items():
            old = model.get_submodule(name)
            dtype = next((p.dtype for p in model.parameters()), None)
            new = BicubicUpsample(shape[1], old.factor, **({"dtype": dtype} if dtype is not None else {}))
            set_submodule(model, name, new.train(old.training))
            records.append({"module": name, "channels": shape[1], "factor": old.factor, "input": list(shape[-2:])})
        return PassResult(modified=bool(records), records=records)
