"""ONNX Runtime's attention form (deploy.lite_mla_joined): same function, one qkv conv, and the ONNX graph it gives.

The graph test converts a tiny EfficientViT at 128x128 with the ONNX target (seconds): against the model as built, the
joined form keeps the same convolutions and drops the Pad (linear blocks), the Transpose and the Slices of every block.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from effvit_deploy.export.deploy import DeployLiteMLA, to_deploy_form
from effvit_deploy.export.deploy.lite_mla_joined import JoinedLiteMLA
from effvit_deploy.export.targets import get_target
from effvit_deploy.models.efficientvit import EfficientViTCls, LiteMLA
from tests.test_deploy_form import TINY, assert_same_function, built, count, randomized

EVERY = 10**9  # joined_qkv_max_tokens that joins every block


def test_joined_form_same_function_both_orders_and_batches() -> None:
    model = randomized(EfficientViTCls(TINY, num_classes=10))
    resolution = (64, 96)  # 4x6 = 24 tokens (linear) and 2x3 = 6 tokens (quadratic) for dim 8
    deploy, info = to_deploy_form(model, resolution, joined_qkv_max_tokens=EVERY)
    assert count(deploy, LiteMLA) == count(deploy, DeployLiteMLA) == 0
    assert count(deploy, JoinedLiteMLA) == len(info["attention"]) > 0
    assert {r["order"] for r in info["attention"]} == {"linear", "quadratic"}
    assert {r["qkv_convs"] for r in info["attention"]} == {"joined"}
    assert_same_function(model, deploy, torch.randn(2, 3, *resolution, generator=torch.Generator().manual_seed(1)))


def test_joined_only_up_to_the_token_limit() -> None:
    model = built("efficientvit-b0")
    deploy, info = to_deploy_form(model, (96, 128), joined_qkv_max_tokens=12)  # 12-token maps joined, 48 not
    assert {(r["tokens"], r["qkv_convs"]) for r in info["attention"]} == {(12, "joined"), (48, "separate")}
    assert count(deploy, JoinedLiteMLA) and count(deploy, DeployLiteMLA)
    assert_same_function(model, deploy, torch.randn(1, 3, 96, 128))


def test_joined_form_only_where_it_applies() -> None:
    """The softmax twin and int8 / fp16 keep DeployLiteMLA; the default (TFLite, ExecuTorch) keeps three convs."""
    softmax = randomized(EfficientViTCls(TINY, num_classes=10, softmax=True))
    deploy, info = to_deploy_form(softmax, (128, 128), joined_qkv_max_tokens=EVERY)
    assert count(deploy, JoinedLiteMLA) == 0 and {r["qkv_convs"] for r in info["attention"]} == {"separate"}
    assert_same_function(softmax, deploy, torch.randn(1, 3, 128, 128))
    model = randomized(EfficientViTCls(TINY, num_classes=10))
    for precision in ("int8", "fp16"):
        deploy = to_deploy_form(model, (128, 128), precision=precision, joined_qkv_max_tokens=EVERY)[0]
        assert count(deploy, JoinedLiteMLA) == 0
    assert count(to_deploy_form(model, (128, 128))[0], JoinedLiteMLA) == 0
    assert get_target("onnx").joined_qkv_max_tokens > 0
    assert get_target("tflite").joined_qkv_max_tokens == get_target("executorch").joined_qkv_max_tokens == 0


def _ort_ops(module: torch.nn.Module, path: Path) -> Counter:
    """Op counts of the ONNX target's export of `module` after ONNX Runtime's own graph optimizations (what runs)."""
    import onnx
    import onnxruntime as ort

    get_target("onnx").convert(module, torch.randn(1, 3, 128, 128), path, precision="fp32")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(path.with_suffix(".ort.onnx"))
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)


def test_onnx_graph_of_the_joined_form(tmp_path: Path) -> None:
    pytest.importorskip("onnxsim")
    model = randomized(EfficientViTCls(TINY, num_classes=10))  # dim 8: 8x8 maps linear, 4x4 quadratic
    blocks = count(model, LiteMLA)
    plain = _ort_ops(model, tmp_path / "plain.onnx")
    joined = _ort_ops(to_deploy_form(model, (128, 128), joined_qkv_max_tokens=EVERY)[0], tmp_path / "joined.onnx")
    assert joined["Conv"] == plain["Conv"]  # one qkv conv, one dw + one grouped conv per branch, like the model
    assert plain["Pad"] > 0 and joined["Pad"] == 0  # no ones row padded onto v (8x8 maps: linear blocks)
    assert joined["Split"] == blocks and joined["Slice"] == 0  # q, k, v: one Split per block, nothing sliced
    assert joined["Transpose"] == 0  # no head-major layout transpose; k's transposes fuse into FusedMatMul
    separate = to_deploy_form(model, (128, 128))[0]
    assert count(separate, torch.nn.Conv2d) > joined["Conv"]  # three-conv form: 3 per projection and branch
