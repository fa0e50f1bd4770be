"""EfficientViT seg models: official key layout, checkpoint round trip, official outputs, params/MACs, shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from effvit_deploy import models
from effvit_deploy.models.efficientvit_seg import HEADS
from effvit_deploy.zoo import load_zoo

DATA = Path(__file__).resolve().parent / "data" / "seg"
SEG = list(HEADS)


def _official_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (DATA / "keys" / f"{name}_state_dict_keys.txt").read_text().splitlines():
        key, shape = line.split("\t")
        rows.append((key, tuple(int(d) for d in shape.strip("[]").split(",") if d.strip())))
    return rows


def _meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return models.build(name)


def test_zoo_names_are_the_official_ones() -> None:
    cities = [f"efficientvit-seg-b{i}-cityscapes" for i in range(4)]
    ade = [f"efficientvit-seg-b{i}-ade20k" for i in range(1, 4)]
    assert SEG == cities + ade
    assert {f"{n}-softmax" for n in SEG} <= set(models.names())
    zoo = load_zoo()
    assert all(zoo[n].layout == "official" and zoo[n].miou is not None for n in SEG)


@pytest.mark.parametrize("name", SEG)
@pytest.mark.parametrize("suffix", ["", "-softmax"])
def test_state_dict_equals_official_layout(name: str, suffix: str) -> None:
    got = [(k, tuple(v.shape)) for k, v in _meta(name + suffix).state_dict().items()]
    assert got == _official_keys(name)


# Published (official README) params and MACs; our counts must be within 1% (they equal the official code's).
PUBLISHED = [
    ("efficientvit-seg-b0-cityscapes", "1024x2048", 0.7e6, 4.4e9),
    ("efficientvit-seg-b1-cityscapes", "1024x2048", 4.8e6, 25e9),
    ("efficientvit-seg-b2-cityscapes", "1024x2048", 15e6, 74e9),
    ("efficientvit-seg-b3-cityscapes", "1024x2048", 40e6, 179e9),
    ("efficientvit-seg-b1-ade20k", "512x512", 4.8e6, 3.1e9),
    ("efficientvit-seg-b2-ade20k", "512x512", 15e6, 9.1e9),
    ("efficientvit-seg-b3-ade20k", "512x512", 39e6, 22e9),
]
# The official code's exact counts (facts §4: conv + attention matmuls, BN not counted).
OFFICIAL_COUNT = {
    "efficientvit-seg-b0-cityscapes": (706_691, 4.391e9),
    "efficientvit-seg-b1-cityscapes": (4_803_443, 25.105e9),
    "efficientvit-seg-b2-cityscapes": (15_323_779, 73.641e9),
    "efficientvit-seg-b3-cityscapes": (39_603_155, 179.228e9),
    "efficientvit-seg-b1-ade20k": (4_791_414, 3.090e9),
    "efficientvit-seg-b2-ade20k": (15_293_382, 9.083e9),
    "efficientvit-seg-b3-ade20k": (39_546_198, 22.174e9),
}


@pytest.mark.parametrize(("name", "res", "params", "macs"), PUBLISHED)
def test_params_and_macs_match_published(name: str, res: str, params: float, macs: float) -> None:
    got_params, got_macs = models.profile(_meta(name), res)
    assert got_macs == pytest.approx(macs, rel=0.01)
    # published params are rounded to 2 significant digits (15M for 15.32M): 5% there, exact against the code
    assert got_params == pytest.approx(params, rel=0.05)
    exact_params, exact_macs = OFFICIAL_COUNT[name]
    assert got_params == exact_params
    assert got_macs == pytest.approx(exact_macs, rel=1e-3)


def _official_b0() -> tuple[torch.nn.Module, dict]:
    state = torch.load(DATA / "efficientvit_seg_b0_cityscapes_official_fp16.pt", weights_only=True)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    model = models.build("efficientvit-seg-b0-cityscapes")
    model.load_state_dict(state, strict=True)
    return model, torch.load(DATA / "efficientvit_seg_b0_cityscapes_official_io.pt", weights_only=True)


def test_outputs_match_official_code() -> None:
    model, io = _official_b0()
    assert set(io["inputs"]) == {"128x192", "64x96"}
    with torch.no_grad():
        for res, x in io["inputs"].items():
            # bilinear instead of bicubic upsampling would be off by ~1e-3 here
            torch.testing.assert_close(model(x), io["outputs"][res], rtol=0, atol=1e-5)


def test_official_layout_checkpoint_round_trips(tmp_path: Path) -> None:
    model, io = _official_b0()
    path = tmp_path / "seg.pt"
    torch.save({"state_dict": model.state_dict()}, path)  # the official checkpoints wrap it under "state_dict"
    loaded = models.build("efficientvit-seg-b0-cityscapes", checkpoint=path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    twin = models.build("efficientvit-seg-b0-cityscapes-softmax", checkpoint=path)  # the twin takes the same file
    x = io["inputs"]["64x96"]
    with torch.no_grad():
        assert twin(x).shape == loaded(x).shape and not torch.allclose(twin(x), loaded(x))
    assert models.guess_model(model.state_dict()) == "efficientvit-seg-b0-cityscapes"


@pytest.mark.parametrize(
    ("name", "res"),
    [
        ("efficientvit-seg-b0-cityscapes", "64x96"),
        ("efficientvit-seg-b0-cityscapes", "96x224"),
        ("efficientvit-seg-b0-cityscapes-softmax", "160x96"),
        ("efficientvit-seg-b1-ade20k", "128x128"),
        ("efficientvit-seg-b2-cityscapes", "64x128"),
    ],
)
def test_output_shapes(name: str, res: str) -> None:
    h, w = models.parse_resolution(res)
    model = models.build(name)
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    classes = 150 if "ade20k" in name else 19
    assert out.shape == (1, classes, h // 8, w // 8) and torch.isfinite(out).all()
    assert _meta(name)(torch.empty(1, 3, 1024, 2048, device="meta")).shape == (1, classes, 128, 256)


def test_num_classes_changes_only_the_classifier() -> None:
    base = {k: v.shape for k, v in _meta("efficientvit-seg-b1-ade20k").state_dict().items()}
    with torch.device("meta"):
        small = {k: v.shape for k, v in models.build("efficientvit-seg-b1-ade20k", num_classes=5).state_dict().items()}
    changed = {k for k in base if base[k] != small[k]}
    assert changed == {"head.output_ops.0.op_list.0.conv.weight", "head.output_ops.0.op_list.0.conv.bias"}


# ---------------------------------------------------------------------------------------------- LR-ASPP baseline


def test_lraspp_matches_torchvision_layout_and_figures() -> None:
    model = models.build("lraspp-mobilenetv3-large", num_classes=21)  # torchvision's weights have 21 VOC classes
    state = model.state_dict()
    # torchvision's weight metadata: num_params 3,221,538, _ops 2.1 GMACs (at its 520 evaluation size)
    params, macs = models.profile(model, "520x520", multiple=8)
    assert params == 3_221_538 and macs == pytest.approx(2.1e9, rel=0.01)
    # spot checks, derived by hand from torchvision's lraspp.py / mobilenetv3.py (dilated=True)
    expected = {
        "backbone.0.0.weight": (16, 3, 3, 3),
        "backbone.4.block.2.fc1.weight": (24, 72, 1, 1),
        "backbone.13.block.1.0.weight": (672, 1, 5, 5),
        "backbone.16.0.weight": (960, 160, 1, 1),
        "classifier.cbr.0.weight": (128, 960, 1, 1),
        "classifier.cbr.1.running_var": (128,),
        "classifier.scale.1.weight": (128, 960, 1, 1),
        "classifier.low_classifier.weight": (21, 40, 1, 1),
        "classifier.high_classifier.bias": (21,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert max(int(k.split(".")[1]) for k in state if k.startswith("backbone.")) == 16
    dilated = model.backbone[13].block[1][0]
    assert dilated.dilation == (2, 2) and dilated.stride == (1, 1) and dilated.padding == (4, 4)
    assert not model.backbone[13].use_res_connect and model.backbone[14].use_res_connect


def test_lraspp_output_stride_8() -> None:
    model = models.build("lraspp-mobilenetv3-large")
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 160))
    assert out.shape == (1, 19, 12, 20) and torch.isfinite(out).all()
