"""Deploy form (effvit_deploy.export.deploy): same function, cleaner structure, input never touched.

PyTorch-level checks run on every registry model at small resolutions; two slow checks convert a tiny EfficientViT
with litert-torch and look at the TFLite graph (the full op census per target is the targets' and pipeline's tests).
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from effvit_deploy import models
from effvit_deploy.errors import InvalidInputError
from effvit_deploy.export.deploy import DEFAULT_PASSES, DeployContext, DeployLiteMLA, to_deploy_form
from effvit_deploy.export.deploy.decompose_layer_norm import DecomposedLayerNorm, DecomposeLayerNormPass
from effvit_deploy.export.deploy.fold_batch_norm import FoldBatchNormPass, fold_conv_bn
from effvit_deploy.export.deploy.head_split import STYLES
from effvit_deploy.export.deploy.lite_mla_deploy import LiteMLADeployPass, attention_order
from effvit_deploy.export.targets import get_target
from effvit_deploy.export.targets.tflite import graph as tflite_graph
from effvit_deploy.export.targets.tflite.placement import locate
from effvit_deploy.models.efficientvit import EfficientViTCls, EfficientViTConfig, LiteMLA

EFFICIENTVIT = [n for n in models.names() if n.startswith("efficientvit")]
BASELINES = [n for n in models.names() if not n.startswith("efficientvit")]
TINY = EfficientViTConfig((8, 16, 16, 32, 32), (1, 1, 1, 1, 1), dim=8, head_widths=(64, 64))


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine, LayerNorm affine: a wrong fold or rewrite cannot hide behind 1s and 0s."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
    return model.eval()


def built(name: str) -> nn.Module:
    torch.manual_seed(0)
    return randomized(models.build(name, num_classes=10))


def assert_same_function(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        ref, out = a(x), b(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


# ----------------------------------------------------------------------------------------------------------------------
# numerics on every EfficientViT variant and its softmax twin


@pytest.mark.parametrize("name", EFFICIENTVIT)
def test_efficientvit_same_function(name: str) -> None:
    model = built(name)
    # 96x128: attention maps 6x8 = 48 tokens (linear for dim 16 and 32) and 3x4 = 12 tokens (quadratic for both).
    resolution = (96, 128)
    deploy, info = to_deploy_form(model, resolution)
    assert_same_function(model, deploy, torch.randn(2, 3, *resolution, generator=torch.Generator().manual_seed(1)))
    assert count(deploy, LiteMLA) == 0
    assert count(deploy, DeployLiteMLA) == count(model, LiteMLA) == len(info["attention"])
    expected = {"softmax"} if name.endswith("-softmax") else {"linear", "quadratic"}
    assert {r["order"] for r in info["attention"]} == expected
    assert count(deploy, nn.BatchNorm2d) == 0
    assert count(deploy, nn.Hardswish) == count(model, nn.Hardswish)


def test_attention_order_follows_tokens() -> None:
    model = built("efficientvit-b2")  # dim 32
    deploy, info = to_deploy_form(model, (64, 64))  # stage maps 4x4 = 16 and 2x2 = 4 tokens: both <= 32
    assert {r["order"] for r in info["attention"]} == {"quadratic"}
    assert_same_function(model, deploy, torch.randn(2, 3, 64, 64))
    _, info = to_deploy_form(model, (512, 1024))  # 32x64 and 16x32: both > 32
    assert {r["order"] for r in info["attention"]} == {"linear"}
    stage2 = [r for r in info["attention"] if r["module"].startswith("backbone.stages.2.")]
    assert stage2 and all(r["tokens"] == 32 * 64 and r["dim"] == 32 for r in stage2)
    names = {n for n, m in model.named_modules() if isinstance(m, LiteMLA)}
    assert {r["module"] for r in info["attention"]} == names
    assert attention_order(17, 16, False) == "linear" and attention_order(16, 16, False) == "quadratic"
    assert attention_order(4, 16, True) == "softmax"


def test_mixed_orders_in_one_model() -> None:
    model = built("efficientvit-b0")  # dim 16; 96x96 -> maps 6x6 and 3x3
    deploy, info = to_deploy_form(model, (96, 96))
    orders = {r["module"].split(".")[2]: r["order"] for r in info["attention"]}
    assert orders == {"2": "linear", "3": "quadratic"}  # 36 > 16 tokens, 9 <= 16 tokens
    assert_same_function(model, deploy, torch.randn(1, 3, 96, 96))


def test_softmax_twin_has_deploy_form() -> None:
    model = built("efficientvit-b1-softmax")
    deploy, info = to_deploy_form(model, (96, 128))
    assert {r["order"] for r in info["attention"]} == {"softmax"}
    assert_same_function(model, deploy, torch.randn(1, 3, 96, 128))


def test_int8_paper_model_pools_become_depthwise_means() -> None:
    """int8: the v1 shortcut's 2x2 average pools become 2x2 stride-2 depthwise convs of 1/4 (TFLite's XNNPACK has no
    int8 AVERAGE_POOL_2D); the same function; float precisions keep the pools."""
    model = built("efficientvit-paper")
    pools = [n for n, m in model.named_modules() if isinstance(m, nn.AvgPool2d)]
    deploy, info = to_deploy_form(model, (96, 128), precision="int8")
    assert pools and [r["module"] for r in info["avg_pools"]] == pools
    assert "avg_pool_as_depthwise" in info["optimizations"]
    assert count(deploy, nn.AvgPool2d) == 0
    for record in info["avg_pools"]:
        conv = deploy.get_submodule(record["module"])
        assert (conv.groups, conv.stride, conv.kernel_size, conv.bias) == (record["channels"], (2, 2), (2, 2), None)
    assert_same_function(model, deploy, torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(2)))
    for precision in ("fp32", "fp16"):
        float_form, float_info = to_deploy_form(model, (96, 128), precision=precision)
        assert count(float_form, nn.AvgPool2d) == len(pools) and "avg_pools" not in float_info


@pytest.mark.parametrize("name", ["efficientvit-b0", "efficientvit-b1-softmax"])
@pytest.mark.parametrize("style", STYLES)
def test_int8_form_joins_qkv_and_computes_the_same(name: str, style: str) -> None:
    """precision int8: q|k|v enter the core as one tensor (one dequantize later), split the way each target wants."""
    model = built(name)
    deploy, info = to_deploy_form(model, (96, 96), precision="int8", split=style)  # 6x6 linear and 3x3 quadratic maps
    assert info["attention"] and all(r["joined_qkv"] for r in info["attention"])
    assert not any(r["joined_qkv"] for r in to_deploy_form(model, (96, 96))[1]["attention"])
    assert_same_function(model, deploy, torch.randn(1, 3, 96, 96))
    graph = torch.export.export(deploy, (torch.randn(1, 3, 96, 96),)).graph
    ops = Counter(str(n.target) for n in graph.nodes if n.op == "call_function")
    splits = {"chunk": "aten.chunk.default", "slice": "aten.slice.Tensor", "tfl": "effvit.split_heads.default"}
    assert ops[splits[style]] == (3 if style == "slice" else 1) * len(info["attention"]), ops


def test_unknown_split_style_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown split style"):
        to_deploy_form(nn.Identity(), (32, 32), precision="int8", split="unbind")


def test_deploy_form_is_valid_at_other_resolutions() -> None:
    """The order is fixed for one resolution, but any order computes the same function at any size."""
    model = built("efficientvit-b0")
    deploy, _ = to_deploy_form(model, (64, 64))  # quadratic everywhere
    assert_same_function(model, deploy, torch.randn(1, 3, 224, 160))


# ----------------------------------------------------------------------------------------------------------------------
# BN folding on every registry model, baselines included


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_fold_all_bn(name: str) -> None:
    model = built(name)
    bn_before = count(model, nn.BatchNorm2d)
    deploy, info = to_deploy_form(model, (64, 64))
    assert bn_before > 0 and count(deploy, nn.BatchNorm2d) == 0
    assert info["folded_bn"] == bn_before
    assert info["optimizations"] == ["fold_bn"] and info["attention"] == []
    assert count(deploy, nn.Hardswish) == count(model, nn.Hardswish)
    assert count(deploy, nn.Hardsigmoid) == count(model, nn.Hardsigmoid)
    assert_same_function(model, deploy, torch.randn(2, 3, 64, 64))


def test_fold_conv_bn_numerics_grouped_strided_with_bias() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=True)
    bn = randomized(nn.Sequential(nn.BatchNorm2d(16)))[0]
    x = torch.randn(2, 8, 9, 7)
    assert_same_function(nn.Sequential(conv, bn).eval(), fold_conv_bn(conv, bn).eval(), x)


def test_fold_skips_bn_without_running_stats_and_non_adjacent() -> None:
    seq = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(), nn.BatchNorm2d(4))
    result = FoldBatchNormPass()(seq, DeployContext((8, 8)))
    assert not result.modified
    assert [type(m) for m in seq] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.BatchNorm2d]


def test_passes_are_no_ops_on_plain_models() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)
    ).eval()
    before = [type(m) for m in model.modules()]
    for deploy_pass in DEFAULT_PASSES:
        work = copy.deepcopy(model)
        assert not deploy_pass(work, DeployContext((32, 32))).modified
        assert [type(m) for m in work.modules()] == before
    deploy, info = to_deploy_form(model, (32, 32))
    assert info["optimizations"] == [] and info["attention"] == [] and info["folded_bn"] == 0
    assert [type(m) for m in deploy.modules()] == before
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), model(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------------
# purity, fp16, LayerNorm, errors


def test_input_model_untouched() -> None:
    model = built("efficientvit-b0")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    types = [(n, type(m)) for n, m in model.named_modules()]
    deploy, _ = to_deploy_form(model, (128, 128), precision="fp16")
    assert [(n, type(m)) for n, m in model.named_modules()] == types
    after = model.state_dict()
    assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)
    assert not any(p.data_ptr() == q.data_ptr() for p in model.parameters() for q in deploy.parameters())
    assert not deploy.training and all(p.dtype == torch.float32 for p in deploy.parameters())


class _RecordDtypes(TorchFunctionMode):
    """Records the dtypes that torch.bmm and divisions see."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("bmm", "div", "softmax", "mean"):
            self.seen[(name, args[0].dtype)] += 1
        return func(*args, **(kwargs or {}))


def test_fp16_attention_runs_in_fp32() -> None:
    torch.manual_seed(0)
    model = randomized(EfficientViTCls(TINY, num_classes=10))
    deploy, _ = to_deploy_form(model, (64, 64), precision="fp16")
    half = deploy.half()
    x = torch.randn(1, 3, 64, 64)
    recorder = _RecordDtypes()
    with torch.no_grad(), recorder:
        out = half(x.half())
    assert out.dtype == torch.float16
    assert recorder.seen[("bmm", torch.float32)] > 0 and recorder.seen[("div", torch.float32)] > 0
    assert recorder.seen[("mean", torch.float32)] > 0  # the normaliser's key sum (and the LayerNorm statistics)
    assert not any(dtype == torch.float16 for (name, dtype) in recorder.seen if name in ("bmm", "div", "mean"))
    with torch.no_grad():
        ref = model(x)
    cosine = torch.nn.functional.cosine_similarity(out.float().flatten(), ref.flatten(), dim=0)
    assert cosine > 0.999


def test_decomposed_layer_norm_matches() -> None:
    torch.manual_seed(0)
    ln = randomized(nn.Sequential(nn.LayerNorm(40)))[0]
    x = torch.randn(3, 40) * 5 + 2
    assert_same_function(ln, DecomposedLayerNorm(ln), x)
    work = nn.Sequential(copy.deepcopy(ln))
    assert DecomposeLayerNormPass()(work, DeployContext((8, 8))).modified
    assert isinstance(work[0], DecomposedLayerNorm)


def test_lite_mla_pass_alone_folds_proj_bn() -> None:
    """Without the BN pass before it, the attention pass still folds proj's BN itself."""
    torch.manual_seed(0)
    model = randomized(EfficientViTCls(TINY, num_classes=10))
    work = copy.deepcopy(model)
    result = LiteMLADeployPass()(work, DeployContext((64, 96)))
    assert result.modified and len(result.records) == count(model, LiteMLA)
    assert_same_function(model, work, torch.randn(1, 3, 64, 96))


class _DataDependent(nn.Module):
    """A wrapper whose forward cannot run on meta tensors (`.item()`), around a tiny EfficientViT."""

    def __init__(self) -> None:
        super().__init__()
        self.net = EfficientViTCls(TINY, num_classes=10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) if x.abs().sum().item() >= 0 else self.net(-x)


def test_token_counts_without_meta_tracing() -> None:
    torch.manual_seed(0)
    model = randomized(_DataDependent())
    deploy, info = to_deploy_form(model, (64, 96))
    assert [r["tokens"] for r in info["attention"]] == [4 * 6, 2 * 3]
    assert_same_function(model, deploy, torch.randn(1, 3, 64, 96))


@pytest.mark.parametrize("bad", [(224,), (0, 224), "224", (224.0, 224), (True, 2), None])
def test_bad_resolution(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="resolution"):
        to_deploy_form(nn.Identity(), bad)  # type: ignore[arg-type]


def test_bad_precision() -> None:
    with pytest.raises(InvalidInputError, match="precision"):
        to_deploy_form(nn.Identity(), (32, 32), precision="bf16")


# ----------------------------------------------------------------------------------------------------------------------
# converter-level (slow): what litert-torch makes of the deploy form


@pytest.mark.slow
@pytest.mark.parametrize(("resolution", "softmax"), [((64, 96), False), ((128, 128), False), ((64, 64), True)])
def test_tflite_attention_is_clean_and_one_partition(
    tmp_path: Path, resolution: tuple[int, int], softmax: bool
) -> None:
    """64x96 gives one linear and one quadratic stage (4x6 and 2x3 maps, dim 8); 128x128 two linear ones."""
    pytest.importorskip("litert_torch")
    torch.manual_seed(0)
    model = randomized(EfficientViTCls(TINY, num_classes=10, softmax=softmax))
    deploy, info = to_deploy_form(model, resolution)
    path = tmp_path / "tiny.tflite"
    tflite = get_target("tflite")
    tflite.convert(deploy, torch.rand(1, 3, *resolution), path, precision="fp32")
    graph = tflite_graph.read(path.read_bytes())
    census = graph.census()
    places = locate(graph)
    assert census["SLICE"] == census["STRIDED_SLICE"] == census["PADV2"] == 0
    assert sum(n for (op, place), n in places.items() if place == "attention core") == 0
    attention = len(info["attention"])
    assert places[("TRANSPOSE", "conv->heads")] == 3 * attention and places[("TRANSPOSE", "heads->conv")] == attention
    assert census["HARD_SWISH"] == count(deploy, nn.Hardswish)
    runtime = tflite.census(path)
    assert runtime["partitions"] == 1 and not runtime["undelegated"]
