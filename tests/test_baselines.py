"""Baseline models (EfficientNet-B0..B3, MobileNetV2, MobileNetV3-Large) match torchvision's layout and behave.

The expected keys/shapes in tests/data/torchvision_*_keys.txt were derived by hand from the torchvision source, not
generated from these models, so a layout drift here fails against an independent reference.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from effvit_deploy.errors import InvalidInputError
from effvit_deploy.models import efficientnet, mobilenet, registry

DATA = Path(__file__).parent / "data"

# torchvision docs, `num_params` of each weights enum
PUBLISHED_PARAMS = {
    "efficientnet-b0": 5_288_548,
    "efficientnet-b1": 7_794_184,
    "efficientnet-b2": 9_109_994,
    "efficientnet-b3": 12_233_232,
    "mobilenetv2": 3_504_872,
    "mobilenetv3-large": 5_483_032,
}
KEY_FILES = {
    "efficientnet-b0": "torchvision_efficientnet_b0_keys.txt",
    "efficientnet-b3": "torchvision_efficientnet_b3_keys.txt",
    "mobilenetv2": "torchvision_mobilenetv2_keys.txt",
    "mobilenetv3-large": "torchvision_mobilenetv3_large_keys.txt",
}
FINAL_LINEAR = {"mobilenetv3-large": "classifier.3"}  # the others: classifier.1

_cache: dict[str, nn.Module] = {}


def _model(name: str) -> nn.Module:
    """One eval-mode instance per name, shared across tests (building B3 costs ~0.3 s)."""
    if name not in _cache:
        torch.manual_seed(0)
        _cache[name] = registry.get_builder(name)(num_classes=1000).eval()
    return _cache[name]


def _read_reference(path: Path) -> tuple[int, dict[str, tuple[int, ...]], list[str]]:
    """Parse a reference file into (total key count, key -> shape, keys that must be absent)."""
    total, present, absent = -1, {}, []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("total "):
            total = int(line.split()[1])
        elif line.startswith("!"):
            absent.append(line[1:])
        else:
            key, shape = line.split()
            present[key] = () if shape == "()" else tuple(int(s) for s in shape.split(","))
    return total, present, absent


def test_registered_names() -> None:
    assert set(PUBLISHED_PARAMS) <= set(registry.names())
    assert mobilenet.mobilenetv2 is registry.get_builder("mobilenetv2")
    assert efficientnet.efficientnet_b0 is registry.get_builder("efficientnet-b0")


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_param_count_matches_torchvision(name: str) -> None:
    assert sum(p.numel() for p in _model(name).parameters()) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", list(KEY_FILES))
def test_state_dict_layout_matches_torchvision(name: str) -> None:
    total, present, absent = _read_reference(DATA / KEY_FILES[name])
    sd = _model(name).state_dict()
    assert len(sd) == total
    got = {k: tuple(sd[k].shape) for k in present if k in sd}
    assert got == present
    assert [k for k in absent if k in sd] == []


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_forward_shapes_square_and_non_square(name: str) -> None:
    model = _model(name)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
        assert model(torch.randn(2, 3, 64, 96)).shape == (2, 1000)


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_num_classes_changes_only_final_linear(name: str) -> None:
    ref = {k: v.shape for k, v in _model(name).state_dict().items()}
    small = {k: v.shape for k, v in registry.get_builder(name)(num_classes=10).state_dict().items()}
    assert small.keys() == ref.keys()
    changed = sorted(k for k in ref if small[k] != ref[k])
    final = FINAL_LINEAR.get(name, "classifier.1")
    assert changed == [f"{final}.bias", f"{final}.weight"]
    assert small[f"{final}.weight"] == (10, ref[f"{final}.weight"][1])


@pytest.mark.parametrize(
    ("name", "p"),
    [("efficientnet-b0", 0.2), ("efficientnet-b1", 0.2), ("efficientnet-b2", 0.3), ("efficientnet-b3", 0.3),
     ("mobilenetv2", 0.2), ("mobilenetv3-large", 0.2)],
)
def test_classifier_dropout(name: str, p: float) -> None:
    drops = [m for m in _model(name).classifier if isinstance(m, nn.Dropout)]
    assert [d.p for d in drops] == [p]


def test_eval_is_deterministic_and_train_is_not() -> None:
    """Dropout and stochastic depth are identity in eval and active in train."""
    model = registry.get_builder("efficientnet-b0")(num_classes=1000)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        model.train()
        assert not torch.equal(model(x), model(x))


def test_mbconv_eval_residual_is_plain_add() -> None:
    block = _model("efficientnet-b0").features[2][1]  # stride 1, 24 -> 24: has a residual and drop prob > 0
    assert block.use_res_connect and block.stochastic_depth.p > 0
    x = torch.randn(1, 24, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.block(x))


def test_stochastic_depth_probabilities_grow_linearly() -> None:
    blocks = [b for stage in _model("efficientnet-b0").features[1:8] for b in stage]
    assert len(blocks) == 16
    assert [b.stochastic_depth.p for b in blocks] == pytest.approx([0.2 * i / 16 for i in range(16)])


def test_activation_and_norm_modules() -> None:
    v3 = _model("mobilenetv3-large")
    count = lambda m, t: sum(isinstance(x, t) for x in m.modules())  # noqa: E731
    # stem + 9 hard-swish bnecks x 2 + head conv + classifier; SE gates on the 8 SE bnecks
    assert count(v3, nn.Hardswish) == 21
    assert count(v3, nn.Hardsigmoid) == 8
    v3_bns = [m for m in v3.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in v3_bns} == {(0.001, 0.01)}

    b0 = _model("efficientnet-b0")
    se = b0.features[1][0].block[1]
    assert isinstance(se.activation, nn.SiLU) and isinstance(se.scale_activation, nn.Sigmoid)
    assert {(m.eps, m.momentum) for m in b0.modules() if isinstance(m, nn.BatchNorm2d)} == {(1e-5, 0.1)}
    assert count(_model("mobilenetv2"), nn.ReLU6) == 2 + 17 * 2 - 1  # stem, head, one dw-only block


def test_checkpoint_round_trip_strict() -> None:
    """A saved state_dict loads strictly into a fresh model and gives the same logits."""
    src = _model("mobilenetv3-large")
    dst = registry.get_builder("mobilenetv3-large")(num_classes=1000).eval()
    dst.load_state_dict(src.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_num_classes_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="num_classes"):
        registry.get_builder("mobilenetv2")(num_classes=bad)
