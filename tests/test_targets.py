"""Export targets (ONNX, TFLite, ExecuTorch): parity with PyTorch, op census, delegation, errors.

Conversions are the slow part (seconds each on a shared 2-core machine), so one module-scoped cache converts each
(target, precision, resolution, layout) once and every test reads from it. The tiny EfficientViT has real LiteMLA
blocks (linear attention in stage 3, quadratic in stage 4 at these sizes) and randomized BN statistics, so BN
folding in the converters is exercised. efficientvit-b0 at 224 runs under `-m slow`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from effvit_deploy.errors import EffvitError, InvalidInputError, MissingDependencyError
from effvit_deploy.export.targets import TARGETS, ConversionError, get_target
from effvit_deploy.models.efficientvit import EfficientViTCls, EfficientViTConfig

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

# what a decomposed hard-swish would leave behind, per target
DECOMPOSED = {
    "onnx": {"HardSigmoid", "Clip", "Relu6"},
    "tflite": {"RELU6", "RELU_0_TO_1", "LOGISTIC", "HARD_SIGMOID"},
    "executorch": {"aten.hardsigmoid.default", "aten.hardtanh.default", "aten.clamp.default", "aten.relu6.default"},
}


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(1 + torch.randn(c, generator=gen) * 0.1)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)
    return model


def tiny_effvit() -> nn.Module:
    torch.manual_seed(0)
    cfg = EfficientViTConfig((8, 16, 16, 32, 32), (1, 1, 1, 1, 1), dim=8, head_widths=(64, 64))
    with torch.no_grad():
        return _randomize_bn(EfficientViTCls(cfg, num_classes=10)).eval()


def verification_input(h: int, w: int) -> torch.Tensor:
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1234))
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def n_hardswish(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Hardswish) for m in model.modules())


def hardswish_count(target: str, census: dict) -> int:
    """HardSwish ops in the artifact; for ExecuTorch both the lowered aten op and the XNNPACK node must agree."""
    if target == "onnx":
        return census["ops"].get("HardSwish", 0)
    if target == "tflite":
        return census["ops"].get("HARD_SWISH", 0)
    lowered = census["lowered_ops"].get("aten.hardswish.default", 0)
    assert census["ops"].get("XNNHardswish", 0) == lowered
    return lowered


def decomposition_ops(target: str, census: dict) -> set[str]:
    names = set(census["ops"]) | set(census.get("lowered_ops", {}))
    return names & DECOMPOSED[target]


def parity(out: np.ndarray, ref: np.ndarray) -> tuple[float, float, bool]:
    cos = float((out * ref).sum() / (np.linalg.norm(out) * np.linalg.norm(ref)))
    return float(np.abs(out - ref).max()), cos, bool(out.argmax() == ref.argmax())


Converted = dict  # {"path", "census", "out", "ref", "model"}


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    return tiny_effvit()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, tiny: nn.Module) -> Callable[..., Converted]:
    cache: dict[tuple, Converted] = {}

    def get(target: str, precision: str, res: tuple[int, int], nhwc: bool = False, model: nn.Module | None = None):
        model = tiny if model is None else model
        key = (target, precision, res, nhwc, id(model))
        if key not in cache:
            backend = get_target(target)
            x = verification_input(*res)
            path = tmp_path_factory.mktemp(target) / f"m-{precision}{'-nhwc' if nhwc else ''}{backend.suffix}"
            extra = backend.convert(model, x, path, precision=precision, nhwc=nhwc)
            census = {**backend.census(path), **(extra or {})}
            out = backend.load_runner(path, threads=1)(x.numpy())
            with torch.no_grad():
                ref = model(x).numpy()
            cache[key] = {"path": path, "census": census, "out": out, "ref": ref, "model": model}
        return cache[key]

    return get


# ----------------------------------------------------------------------------------------------------------------
# Parity and census on the tiny model
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("res", [(64, 64), (64, 96)], ids=["64x64", "64x96"])
def test_fp32_parity_and_census(converted: Callable[..., Converted], target: str, res: tuple[int, int]) -> None:
    got = converted(target, "fp32", res)
    max_abs, _, top1 = parity(got["out"], got["ref"])
    assert got["out"].shape == (1, 10)
    assert max_abs <= 1e-4 and top1, (max_abs, top1)
    census = got["census"]
    assert hardswish_count(target, census) == n_hardswish(got["model"]) == 16
    assert not decomposition_ops(target, census)
    assert sum(census["ops"].values()) == census["total_ops"]
    if target == "onnx":
        assert census["partitions"] is None and census["simplified"] is True
        assert "BatchNormalization" not in census["ops"]  # folded into the convs by the optimizer
    else:  # a delegate: every op is either inside a partition or listed as undelegated
        assert isinstance(census["partitions"], int) and census["partitions"] >= 1
        assert census["delegated_ops"] + sum(census["undelegated"].values()) == census["total_ops"]


@pytest.mark.parametrize("target", list(TARGETS))
def test_fp16_parity(converted: Callable[..., Converted], target: str) -> None:
    got = converted(target, "fp16", (64, 96))
    max_abs, cos, top1 = parity(got["out"], got["ref"])
    assert np.isfinite(got["out"]).all()
    assert cos >= 0.999, (max_abs, cos)
    assert hardswish_count(target, got["census"]) == 16
    assert not decomposition_ops(target, got["census"])


def test_fp16_artifacts_are_really_fp16(converted: Callable[..., Converted]) -> None:
    """Half weights in ONNX, fp16 weights + DEQUANTIZE in TFLite, fp16 tensors in XNNPACK; float32 I/O everywhere."""
    import onnx

    proto = onnx.load(str(converted("onnx", "fp16", (64, 96))["path"]))
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    dtypes = {init.data_type for init in proto.graph.initializer if init.name in conv_weights}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    ops = converted("tflite", "fp16", (64, 96))["census"]["ops"]
    assert ops["DEQUANTIZE"] == ops["CONV_2D"] + ops["DEPTHWISE_CONV_2D"] + ops["FULLY_CONNECTED"]
    for target in ("onnx", "tflite"):
        half, full = converted(target, "fp16", (64, 96))["path"], converted(target, "fp32", (64, 96))["path"]
        assert half.stat().st_size < 0.8 * full.stat().st_size, target

    # ExecuTorch: activations fp16 inside XNNPACK; the dtype casts are not delegated in 1.4.1
    half = converted("executorch", "fp16", (64, 96))["census"]
    full = converted("executorch", "fp32", (64, 96))["census"]
    assert half["delegated_dtypes"].get("fp16", 0) > 0 and "fp16" not in full["delegated_dtypes"]
    assert half["undelegated"].get("dim_order_ops::_to_dim_order_copy.out", 0) >= 2  # at least the two I/O casts


def test_tflite_nhwc_parity(converted: Callable[..., Converted]) -> None:
    nhwc = converted("tflite", "fp32", (64, 96), nhwc=True)
    nchw = converted("tflite", "fp32", (64, 96))
    assert nhwc["census"]["layout"] == "NHWC" and nchw["census"]["layout"] == "NCHW"
    max_abs, _, top1 = parity(nhwc["out"], nhwc["ref"])  # the runner took NCHW and transposed itself
    assert max_abs <= 1e-4 and top1
    assert nhwc["census"]["ops"].get("TRANSPOSE", 0) < nchw["census"]["ops"].get("TRANSPOSE", 0)


def test_runner_is_reusable(converted: Callable[..., Converted]) -> None:
    for target in TARGETS:
        backend = get_target(target)
        run = backend.load_runner(converted(target, "fp32", (64, 64))["path"], threads=2)
        a, b = verification_input(64, 64).numpy(), np.zeros((1, 3, 64, 64), np.float32)
        first, other, again = run(a), run(b), run(a)
        np.testing.assert_allclose(first, again, atol=1e-6)
        assert not np.allclose(first, other)


def test_executorch_runner_sets_threadpool(converted: Callable[..., Converted]) -> None:
    """The pool is never reset under a live runner's program, and follows the request again once none is left."""
    path = converted("executorch", "fp32", (64, 64))["path"]
    script = (
        "import sys, numpy as np\n"
        "from executorch.extension.pybindings import portable_lib\n"
        "from effvit_deploy.export.targets import get_target\n"
        "backend = get_target('executorch')\n"
        "x = np.zeros((1, 3, 64, 64), np.float32)\n"
        "run2 = backend.load_runner(sys.argv[1], threads=2); run2(x)\n"
        "first = portable_lib._threadpool_get_thread_count()\n"
        "run1 = backend.load_runner(sys.argv[1], threads=1); run1(x); run2(x)\n"
        "kept = portable_lib._threadpool_get_thread_count()\n"
        "del run1, run2\n"
        "run3 = backend.load_runner(sys.argv[1], threads=1); run3(x)\n"
        "print(first, kept, portable_lib._threadpool_get_thread_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["2", "2", "1"]  # kept while runners live, resized once they are gone


def test_versions_name_the_tools() -> None:
    assert {"torch", "onnx", "onnxscript", "onnxsim", "onnxruntime"} <= set(get_target("onnx").versions())
    assert {"torch", "litert-torch", "ai-edge-litert"} <= set(get_target("tflite").versions())
    assert {"torch", "executorch"} <= set(get_target("executorch").versions())
    assert all(v != "not installed" for t in TARGETS.values() for v in t.versions().values())


# ----------------------------------------------------------------------------------------------------------------
# Targeted graph checks (small purpose-built modules)
# ----------------------------------------------------------------------------------------------------------------


class _EpsNormalise(nn.Module):
    """relu(x) / (sum + 1e-15): zero columns must give 0, not 0/0 (onnxscript's `x+0` rule used to drop the eps)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return x / (x.sum(dim=1, keepdim=True) + 1e-15)


def test_onnx_keeps_tiny_epsilon(tmp_path: Path) -> None:
    backend = get_target("onnx")
    x = torch.randn(1, 4, 8, 8)
    x[:, :, :4] = -1.0  # rows 0..3: every channel negative -> relu gives an all-zero column
    path = tmp_path / "eps.onnx"
    backend.convert(_EpsNormalise(), x, path, precision="fp32")
    out = backend.load_runner(path)(x.numpy())
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, _EpsNormalise()(x).numpy(), atol=1e-6)
    assert backend.census(path)["ops"]["Add"] == 1


class _HeadLike(nn.Module):
    """Linear + LayerNorm + hard-swish on a 1280-wide vector, like the classifier head."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.norm, self.act = nn.Linear(256, 1280, bias=False), nn.LayerNorm(1280), nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.linear(x)))


@pytest.mark.parametrize("target", ["onnx", "executorch"])
def test_fp16_layer_norm_is_accurate(tmp_path: Path, target: str) -> None:
    """fp16 exports keep LayerNorm in fp32; ExecuTorch 1.4.1's fp16 layer-norm kernel gave cosine ~0.7 here."""
    torch.manual_seed(0)
    model = _HeadLike().eval()
    x = torch.randn(1, 256) * 3
    backend = get_target(target)
    path = tmp_path / f"head{backend.suffix}"
    backend.convert(model, x, path, precision="fp16")
    with torch.no_grad():
        ref = model(x).numpy()
    _, cos, _ = parity(backend.load_runner(path)(x.numpy()), ref)
    assert cos >= 0.999, cos
    assert not any(isinstance(m, nn.LayerNorm) and m.weight.dtype != torch.float32 for m in model.modules())


class _PadOnes(nn.Module):
    """conv -> pad with ones (TFLite PADV2, which XNNPACK does not take) -> conv: two XNNPACK partitions."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.pad(torch.relu(self.a(x)), (1, 1, 1, 1), value=1.0))


def test_tflite_delegation_counts(tmp_path: Path) -> None:
    backend = get_target("tflite")
    torch.manual_seed(0)
    model = _PadOnes().eval()
    path = tmp_path / "pad.tflite"
    backend.convert(model, torch.randn(1, 3, 16, 16), path, precision="fp32")
    census = backend.census(path)
    assert census["undelegated"] == {"PADV2": 1}
    assert census["partitions"] == 2
    assert census["delegated_ops"] == census["total_ops"] - 1


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent Python control flow: torch.export cannot trace it
            return x * 2
        return x


@pytest.mark.parametrize("target", list(TARGETS))
def test_converter_failure_is_one_line_conversion_error(tmp_path: Path, target: str) -> None:
    backend = get_target(target)
    with pytest.raises(ConversionError) as info:
        backend.convert(_DataDependent(), torch.randn(1, 3, 8, 8), tmp_path / f"x{backend.suffix}", precision="fp32")
    message = str(info.value)
    assert isinstance(info.value, EffvitError)
    assert target in message and "_DataDependent" in message and "\n" not in message


# ----------------------------------------------------------------------------------------------------------------
# User errors
# ----------------------------------------------------------------------------------------------------------------


def test_unknown_target_lists_valid_names() -> None:
    with pytest.raises(InvalidInputError, match="'coreml'.*onnx, tflite, executorch"):
        get_target("coreml")


@pytest.mark.parametrize("target", list(TARGETS))
def test_bad_precision_names_choices(tmp_path: Path, target: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"^{target} cannot take precision 'bf16'; choose fp32, fp16$"):
        get_target(target).convert(nn.Identity(), torch.randn(1, 3, 8, 8), tmp_path / "x", precision="bf16")


@pytest.mark.parametrize("target", ["onnx", "executorch"])
def test_nhwc_only_for_tflite(tmp_path: Path, target: str) -> None:
    with pytest.raises(InvalidInputError, match="NHWC.*tflite"):
        get_target(target).convert(nn.Identity(), torch.randn(1, 3, 8, 8), tmp_path / "x", precision="fp32", nhwc=True)


@pytest.mark.parametrize(
    ("target", "hidden"),
    [("onnx", ["onnxsim"]), ("tflite", ["litert_torch"]), ("executorch", ["executorch.exir"])],
)
def test_missing_converter_names_pip_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, target: str, hidden: list[str]
) -> None:
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingDependencyError, match=rf"pip install 'effvit-deploy\[{target}\]'"):
        get_target(target).convert(nn.Identity(), torch.randn(1, 3, 8, 8), tmp_path / "x", precision="fp32")


@pytest.mark.parametrize(
    ("target", "hidden"), [("onnx", "onnxruntime"), ("tflite", "litert_torch"), ("executorch", "executorch.runtime")]
)
def test_versions_fail_early_when_a_runtime_is_missing(
    monkeypatch: pytest.MonkeyPatch, target: str, hidden: str
) -> None:
    """The pipeline calls versions() before any work so that a missing package stops it at once."""
    monkeypatch.setitem(sys.modules, hidden, None)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'effvit-deploy\[{target}\]'"):
        get_target(target).versions()


@pytest.mark.parametrize(
    ("target", "hidden"),
    [
        ("onnx", ["onnxruntime"]),
        ("tflite", ["ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"]),
        ("executorch", ["executorch.runtime"]),
    ],
)
def test_missing_runtime_names_pip_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, target: str, hidden: list[str]
) -> None:
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'effvit-deploy\[{target}\]'"):
        get_target(target).load_runner(tmp_path / f"missing{get_target(target).suffix}")


# ----------------------------------------------------------------------------------------------------------------
# efficientvit-b0 at 224 (slow)
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def b0() -> nn.Module:
    from effvit_deploy import models

    torch.manual_seed(0)
    with torch.no_grad():
        return _randomize_bn(models.build("efficientvit-b0")).eval()


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_b0_224_fp32(converted: Callable[..., Converted], b0: nn.Module, target: str) -> None:
    got = converted(target, "fp32", (224, 224), model=b0)
    max_abs, _, top1 = parity(got["out"], got["ref"])
    assert max_abs <= 1e-4 and top1, max_abs
    assert hardswish_count(target, got["census"]) == n_hardswish(b0)
    assert not decomposition_ops(target, got["census"])


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_b0_224_fp16(converted: Callable[..., Converted], b0: nn.Module, target: str) -> None:
    got = converted(target, "fp16", (224, 224), model=b0)
    _, cos, _ = parity(got["out"], got["ref"])
    assert cos >= 0.999, cos
    assert hardswish_count(target, got["census"]) == n_hardswish(b0)
