"""EfficientViT reference models: official key layout, checkpoint loading, params/MACs, shapes, attention paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from effvit_deploy import models
from effvit_deploy.errors import CheckpointError, InvalidInputError, MissingFileError
from effvit_deploy.models.efficientvit import LiteMLA

# Copies of ../shared/reference/efficientvit_b{0,1}_state_dict_keys.txt: keys read off the official code.
REFERENCE = Path(__file__).resolve().parent / "data"


def _official_keys(variant: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (REFERENCE / f"efficientvit_{variant}_state_dict_keys.txt").read_text().splitlines():
        key, shape = line.split(" ", 1)
        rows.append((key, tuple(int(d) for d in shape.strip("()").split(",") if d.strip())))
    return rows


@pytest.mark.parametrize("variant", ["b0", "b1"])
@pytest.mark.parametrize("suffix", ["", "-softmax"])
def test_state_dict_equals_official_layout(variant: str, suffix: str) -> None:
    model = models.build(f"efficientvit-{variant}{suffix}")
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == _official_keys(variant)


def _random_official_checkpoint(tmp_path: Path, name: str, wrap: bool) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    reference = models.build(name)
    state = {k: (torch.randn_like(v) * 0.1 if v.is_floating_point() else v) for k, v in reference.state_dict().items()}
    for k in state:  # valid BN statistics
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 0.5
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state} if wrap else state, path)
    return path, state


@pytest.mark.parametrize("wrap", [True, False])
def test_checkpoint_round_trip(tmp_path: Path, wrap: bool) -> None:
    path, state = _random_official_checkpoint(tmp_path, "efficientvit-b0", wrap)
    model = models.build("efficientvit-b0", checkpoint=path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    twin = models.build("efficientvit-b0-softmax", checkpoint=path)  # the twin takes the same file
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == twin(x).shape == (1, 1000)
    assert not torch.allclose(model(x), twin(x))  # only the attention kernel differs, and it does


def _official_linear_att(qkv: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
    """The official pre-April-2024 form (transpose, kᵀ·(v|1), q·kv), written independently of LiteMLA."""
    b, _, h, w = qkv.shape
    qkv = qkv.reshape(b, -1, 3 * dim, h * w).transpose(-1, -2)
    q, k, v = qkv[..., :dim].relu(), qkv[..., dim : 2 * dim].relu(), qkv[..., 2 * dim :]
    v = torch.nn.functional.pad(v, (0, 1), value=1.0)
    out = q @ (k.transpose(-1, -2) @ v)
    out = out[..., :-1] / (out[..., -1:] + eps)
    return out.transpose(-1, -2).reshape(b, -1, h, w)


def test_linear_attention_matches_official_formulation() -> None:
    torch.manual_seed(0)
    mla = LiteMLA(64, 64, dim=16).eval()
    qkv = torch.randn(2, 6 * 64, 8, 12)
    torch.testing.assert_close(mla.relu_linear_att(qkv), _official_linear_att(qkv, 16, mla.eps), rtol=1e-5, atol=1e-5)


def test_quadratic_and_linear_paths_agree() -> None:
    torch.manual_seed(0)
    mla = LiteMLA(64, 64, dim=16).eval()
    for h, w in [(2, 2), (4, 4), (7, 7)]:
        qkv = torch.rand(1, 6 * 64, h, w)  # positive, so the normaliser is well away from eps
        torch.testing.assert_close(mla.relu_quadratic_att(qkv), mla.relu_linear_att(qkv), rtol=1e-4, atol=1e-5)


def test_path_choice_follows_token_count(monkeypatch: pytest.MonkeyPatch) -> None:
    mla = LiteMLA(32, 32, dim=16).eval()
    calls: list[str] = []
    monkeypatch.setattr(mla, "relu_linear_att", lambda t: calls.append("linear") or t[:, : 2 * 32])
    monkeypatch.setattr(mla, "relu_quadratic_att", lambda t: calls.append("quadratic") or t[:, : 2 * 32])
    mla(torch.randn(1, 32, 4, 4))  # N = 16 = dim -> quadratic
    mla(torch.randn(1, 32, 4, 5))  # N = 20 > dim -> linear
    assert calls == ["quadratic", "linear"]


def test_fp16_input_keeps_attention_in_fp32() -> None:
    torch.manual_seed(0)
    mla = LiteMLA(32, 32, dim=16).eval()
    x = torch.rand(1, 6 * 32, 8, 8) * 300  # large enough that an fp16 normaliser would overflow
    out = mla.relu_linear_att(x.half())
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, mla.relu_linear_att(x.half().float()))


# Published figures: official README / torchprofile (EfficientViT); torchvision's weight metadata `_ops` (baselines:
# 0.386 / 0.301 / 0.217 GMACs, shown rounded as 0.39 / 0.30 / 0.22 in its docs table).
PUBLISHED = [
    ("efficientvit-b0", 224, 3.41e6, 0.102e9),
    ("efficientvit-b1", 224, 9.10e6, 0.524e9),
    ("efficientvit-b1", 256, 9.10e6, 0.683e9),
    ("efficientvit-b1", 288, 9.10e6, 0.863e9),
    ("efficientvit-b2", 224, 24.33e6, 1.594e9),
    ("efficientvit-b3", 224, 48.65e6, 3.970e9),
    ("efficientnet-b0", 224, 5.29e6, 0.386e9),
    ("mobilenetv2", 224, 3.50e6, 0.301e9),
    ("mobilenetv3-large", 224, 5.48e6, 0.217e9),
    ("efficientnet-b1", 240, 7.79e6, 0.687e9),  # torchvision figures are at each weight's crop size
    ("efficientnet-b3", 300, 12.23e6, 1.827e9),
]


@pytest.mark.parametrize(("name", "res", "params", "macs"), PUBLISHED)
def test_params_and_macs_match_published(name: str, res: int, params: float, macs: float) -> None:
    got_params, got_macs = models.profile(models.build(name), res, multiple=1)
    assert got_params == pytest.approx(params, rel=0.01)
    assert got_macs == pytest.approx(macs, rel=0.01)


def test_paper_config_figures() -> None:
    params, macs = models.profile(models.build("efficientvit-paper"), 224)
    assert params == pytest.approx(4.51e6, rel=0.005)
    assert macs == pytest.approx(0.355e9, rel=0.005)  # the docstring's figure; the paper says "around 400M"
    params, macs = models.profile(models.build("efficientvit-paper-widths-iccv-blocks"), 224)
    assert params == pytest.approx(4.71e6, rel=0.005) and macs == pytest.approx(0.381e9, rel=0.005)


def test_paper_follows_the_v1_text() -> None:
    from effvit_deploy.models.efficientvit import DownsampleShortcut

    model = models.build("efficientvit-paper")
    attention = [m for m in model.modules() if isinstance(m, LiteMLA)]
    assert len(attention) == 5 + 2 and all(len(m.aggreg) == 0 for m in attention)  # no multi-scale aggregation
    downs = [m for m in model.modules() if isinstance(m, DownsampleShortcut)]
    assert len(downs) == 4 and all(isinstance(d.shortcut[0], torch.nn.AvgPool2d) for d in downs)
    kernels = {m.kernel_size for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    assert kernels == {(3, 3), (5, 5)}  # 3x3 only in the stem's DSConv
    stem = {m.kernel_size for m in model.backbone.input_stem.modules() if isinstance(m, torch.nn.Conv2d)}
    assert (5, 5) not in stem
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU | torch.nn.ReLU6 | torch.nn.GELU)]
    assert relus == [m.kernel_func for m in attention]  # the attention kernel only: hard-swish everywhere else


def test_paper_seg_model() -> None:
    model = models.build("efficientvit-paper-seg")
    params, macs = models.profile(model, "1024x2048")
    assert params == pytest.approx(1.89e6, rel=0.005) and macs == pytest.approx(16.43e9, rel=0.005)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 160))
    assert out.shape == (1, 19, 12, 20) and torch.isfinite(out).all()
    backbone = {k for k in model.state_dict() if k.startswith("backbone.")}
    assert backbone == {f"backbone.{k}" for k in models.build("efficientvit-paper").backbone.state_dict()}


def test_macs_scale_with_resolution_non_square() -> None:
    model = models.build("efficientvit-b0")
    _, macs_224 = models.profile(model, 224)
    _, macs_wide = models.profile(model, "512x1024")
    assert macs_wide > 10 * macs_224  # 10.4x the pixels; attention is linear in N, so roughly proportional
    assert macs_wide < 11 * macs_224


@pytest.mark.parametrize(
    ("name", "res"),
    [
        ("efficientvit-b0", "224"),
        ("efficientvit-b0", "512x1024"),
        ("efficientvit-b1", "512"),
        ("efficientvit-b0-softmax", "96x160"),
        ("efficientvit-paper", "224"),
        ("efficientvit-b2", "64"),  # 2x2 final map: quadratic path
    ],
)
def test_output_shapes(name: str, res: str) -> None:
    h, w = models.parse_resolution(res)
    with torch.no_grad():
        out = models.build(name, num_classes=10)(torch.randn(1, 3, h, w))
    assert out.shape == (1, 10)
    assert torch.isfinite(out).all()


def test_build_returns_eval_mode_and_lists_names() -> None:
    assert not models.build("efficientvit-b0").training
    expected = {f"efficientvit-{v}{s}" for v in ("b0", "b1", "b2", "b3", "paper") for s in ("", "-softmax")}
    assert expected <= set(models.names())


# ---------------------------------------------------------------------------------------------- bad input


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(InvalidInputError, match="unknown model 'efficientvit-b9'.*efficientvit-b0"):
        models.build("efficientvit-b9")


@pytest.mark.parametrize("res", ["225", "0", "-32", "512x1000", "abc", "1x2x3"])
def test_bad_resolution(res: str) -> None:
    with pytest.raises(InvalidInputError, match="resolution"):
        models.parse_resolution(res)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="does not exist"):
        models.build("efficientvit-b0", checkpoint=tmp_path / "nope.pt")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        models.build("efficientvit-b0", checkpoint=path)


class _Custom:  # a pickled object that weights_only refuses
    pass


def test_pickle_needing_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": _Custom()}, path)
    with pytest.raises(CheckpointError, match="_Custom.*weights_only=True refuses"):
        models.build("efficientvit-b0", checkpoint=path)


def test_missing_unexpected_and_shape_errors_name_keys(tmp_path: Path) -> None:
    path, state = _random_official_checkpoint(tmp_path, "efficientvit-b0", wrap=False)
    state.pop("head.op_list.3.linear.weight")
    state["extra.weight"] = torch.zeros(1)
    state["backbone.input_stem.op_list.0.conv.weight"] = torch.zeros(8, 3, 5, 5)
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        models.build("efficientvit-b0", checkpoint=path)
    msg = str(err.value)
    assert "head.op_list.3.linear.weight" in msg and "extra.weight" in msg
    assert "backbone.input_stem.op_list.0.conv.weight (8, 3, 5, 5) vs (8, 3, 3, 3)" in msg
    assert "\n" not in msg


def test_checkpoint_for_another_model_is_named(tmp_path: Path) -> None:
    path, _ = _random_official_checkpoint(tmp_path, "efficientvit-b0", wrap=True)
    with pytest.raises(CheckpointError, match="looks like a checkpoint for efficientvit-b0"):
        models.build("efficientvit-b1", checkpoint=path)


def test_empty_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match="no state_dict"):
        models.build("efficientvit-b0", checkpoint=path)


def _official_to_timm(key: str) -> str:
    """Inverse of the documented timm map (facts §2.2), written out independently of the loader's rules."""
    for official, timm in (
        ("backbone.input_stem.op_list.0.", "stem.in_conv."),
        ("head.op_list.0.", "head.in_conv."),
        ("head.op_list.2.linear.", "head.classifier.0."),
        ("head.op_list.2.norm.", "head.classifier.1."),
        ("head.op_list.3.linear.", "head.classifier.4."),
    ):
        if key.startswith(official):
            return timm + key[len(official) :]
    parts = key.split(".")
    if key.startswith("backbone.input_stem.op_list."):
        return ".".join(["stem", f"res{int(parts[3]) - 1}", *parts[4:]])
    assert key.startswith("backbone.stages.")
    return ".".join(["stages", parts[2], "blocks", parts[4], *parts[5:]])


def test_timm_layout_checkpoint_loads(tmp_path: Path) -> None:
    path, state = _random_official_checkpoint(tmp_path, "efficientvit-b0", wrap=False)
    timm_state = {_official_to_timm(k): v for k, v in state.items()}
    assert "stem.res0.main.depth_conv.conv.weight" in timm_state
    torch.save(timm_state, path)
    model = models.build("efficientvit-b0", checkpoint=path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
