"""Sweep TOML loading, validation (errors name file:line and key) and expansion order."""

from __future__ import annotations

from pathlib import Path

import pytest

from effvit_deploy.bench.sweep import Configuration, adhoc_sweep, check_cores, interleave, load_sweep
from effvit_deploy.errors import InvalidInputError, MissingFileError

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
# comment
[sweep]
name = "mini"
runs = 7
warmup = 2
cooldown_s = 1.5
cores = "0xF0"

[[group]]
models = ["efficientvit-b0", "efficientnet-b0"]
resolutions = [224, "512x1024"]
targets = ["tflite", "onnx"]
threads = [1, 4]

[[group]]
models = "efficientvit-b0"          # a single value is a one-element list
resolutions = [224]
targets = ["tflite"]
threads = [1]                       # already in group 1: measured once
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_sweep_expands_in_interleaved_order(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, GOOD))
    assert (spec.name, spec.runs, spec.warmup, spec.cooldown_s, spec.cores) == ("mini", 7, 2, 1.5, "f0")
    assert len(spec.configurations) == 2 * 2 * 2 * 2  # the duplicate from group 2 is dropped
    first = spec.configurations[:4]
    # models innermost: the comparison pair runs back to back at the same resolution/target/threads
    assert [(c.model, c.threads) for c in first] == [("efficientvit-b0", 1), ("efficientnet-b0", 1),
                                                      ("efficientvit-b0", 4), ("efficientnet-b0", 4)]
    assert {c.resolution for c in first} == {(224, 224)} and {c.target for c in first} == {"tflite"}
    assert spec.configurations[-1].resolution == (512, 1024) and spec.configurations[-1].target == "onnx"
    assert spec.configurations[0].label == "efficientvit-b0 224x224 tflite fp32 t1"


def test_defaults_and_name_from_file(tmp_path: Path) -> None:
    spec = load_sweep(write(tmp_path, '[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["onnx"]\n',
                            "my-sweep.toml"))
    assert (spec.name, spec.runs, spec.warmup, spec.cooldown_s, spec.cores) == ("my-sweep", 50, 10, 0.0, "big")
    assert spec.configurations == (Configuration("mobilenetv2", (224, 224), "onnx", "fp32", 1, True, False),)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('[sweep]\nruns = 0\n[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["onnx"]\n', 2,
         "'runs'"),
        ('[sweep]\nname = "x"\n\n[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["onnx"]\n'
         'threads = [1, 0]\n', 8, "[[group]] 1: 'threads'"),
        ('[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["tflite"]\n\n[[group]]\n'
         'models=["efficientvit-b9"]\nresolutions=[224]\ntargets=["tflite"]\n', 7, "[[group]] 2: 'models'"),
        ('[[group]]\nmodels=["mobilenetv2"]\nresolutions=[225]\ntargets=["tflite"]\n', 3, "multiple of 32"),
        ('[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["tensorrt"]\n', 4, "'targets'"),
        ('[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["onnx"]\nprecision=["fp16"]\n', 5,
         "unknown key"),
        ('[sweep]\nrunz = 3\n[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["onnx"]\n', 2,
         "'runz'"),
        ('[sweep]\ncores = "fast"\n[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["onnx"]\n', 2,
         "'cores'"),
        ('[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\n', 1, "missing key 'targets'"),
        ('[[group]]\nmodels=[]\nresolutions=[224]\ntargets=["onnx"]\n', 2, "empty list"),
        ('[sweeps]\nruns=1\n', 1, "unknown table 'sweeps'"),
        ('[sweep]\nname = "a b"\n[[group]]\nmodels=["mobilenetv2"]\nresolutions=[224]\ntargets=["onnx"]\n', 2,
         "'name'"),
    ],
)
def test_invalid_sweeps_name_line_and_key(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInputError) as info:
        load_sweep(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message and "\n" not in message


@pytest.mark.parametrize("text", ["", "[sweep]\nname = 'empty'\n", "# only a comment\n"])
def test_empty_sweep_is_an_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidInputError, match="no \\[\\[group\\]\\] table"):
        load_sweep(write(tmp_path, text))


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not valid TOML.*line 2"):
        load_sweep(write(tmp_path, '[sweep]\nruns = = 3\n'))
    with pytest.raises(InvalidInputError, match="array of tables"):
        load_sweep(write(tmp_path, '[group]\nmodels=["mobilenetv2"]\n'))
    with pytest.raises(MissingFileError, match="does not exist"):
        load_sweep(tmp_path / "nope.toml")


def test_shipped_sweeps_are_valid() -> None:
    quick = load_sweep(ROOT / "bench/sweeps/quick.toml")
    assert quick.name == "quick" and len(quick.configurations) == 12
    assert {c.model for c in quick.configurations} == {"efficientvit-b0", "efficientvit-b0-softmax", "efficientnet-b0"}
    assert {c.threads for c in quick.configurations} == {1, 2} and {c.target for c in quick.configurations} == {
        "tflite"}
    paper = load_sweep(ROOT / "bench/sweeps/paper.toml")
    assert {c.target for c in paper.configurations} == {"tflite", "onnx", "executorch"}
    assert {c.resolution for c in paper.configurations} == {(224, 224), (512, 512), (1024, 1024), (1024, 2048)}
    for twin in ("efficientvit-b0", "efficientvit-b3-softmax", "efficientnet-b3", "mobilenetv3-large"):
        assert twin in {c.model for c in paper.configurations}


def test_adhoc_and_overrides() -> None:
    spec = adhoc_sweep(models=["efficientvit-b0"], resolutions=["224", "512x1024"], targets=["tflite"],
                       threads=[1, 4], runs=3, warmup=0)
    assert len(spec.configurations) == 4 and spec.name == "adhoc"
    over = spec.with_overrides(runs=9, cores="ALL")
    assert (over.runs, over.warmup, over.cores) == (9, 0, "all")
    with pytest.raises(InvalidInputError, match="--target: unknown target 'trt'"):
        adhoc_sweep(models=["efficientvit-b0"], resolutions=["224"], targets=["trt"])
    with pytest.raises(InvalidInputError, match="--runs"):
        spec.with_overrides(runs=0)
    with pytest.raises(InvalidInputError, match="--model is required"):
        adhoc_sweep(models=[], resolutions=["224"], targets=["tflite"])


def test_check_cores() -> None:
    assert [check_cores(v, "cores") for v in ("big", "All", "f0", "0x80")] == ["big", "all", "f0", "80"]
    for bad in ("0", "xyz", "", 7):
        with pytest.raises(InvalidInputError):
            check_cores(bad, "cores")


def test_interleave_keeps_model_order_of_first_appearance() -> None:
    a = Configuration("efficientnet-b0", (512, 512), "onnx")
    b = Configuration("efficientvit-b0", (224, 224), "onnx")
    c = Configuration("efficientvit-b0", (512, 512), "onnx")
    assert interleave([a, b, c]) == [b, a, c]
