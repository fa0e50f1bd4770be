"""Loading checkpoints safely (weights_only) into registry models, with errors that say what is wrong.

Accepted files: a bare state_dict, or a dict that wraps one under `state_dict` (official EfficientViT checkpoints) or
`model` (common training scripts).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, MissingFileError

_WRAPPER_KEYS = ("state_dict", "model")
_SHOW = 3  # how many offending keys an error names


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from `path` with `torch.load(weights_only=True)`.

    Raises:
        MissingFileError: the file does not exist.
        CheckpointError: not a PyTorch checkpoint, needs arbitrary unpickling, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist; pass the path of a .pt/.pth file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # The type says "weights_only refused something"; its wording changes between torch releases, so the
        # refused globals are asked of torch itself rather than parsed out of the message.
        refused = _unsafe_globals(path)
        if refused:
            shown = ", ".join(refused[:_SHOW]) + (f" and {len(refused) - _SHOW} more" if len(refused) > _SHOW else "")
            raise CheckpointError(
                f"checkpoint {path} needs the Python object{'s' * (len(refused) > 1)} {shown} to load, which "
                "weights_only=True refuses; re-save it with torch.save(model.state_dict(), path)"
            ) from None
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint ({_first_line(exc)}); pass a file saved with torch.save"
        ) from None
    except Exception as exc:  # torch.load raises KeyError, RuntimeError, EOFError, ... on foreign bytes
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint ({_first_line(exc)}); pass a file saved with torch.save"
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} holds no state_dict (expected a dict of tensors, bare or under 'state_dict'); "
            "save one with torch.save(model.state_dict(), path)"
        )
    return dict(obj)


def _unsafe_globals(path: Path) -> list[str]:
    """Globals a checkpoint's pickle names that weights_only does not allow ([] if torch cannot tell)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint, or an older torch: fall back to the generic line
        return []


def _first_line(exc: BaseException) -> str:
    """The first line of an error, cut at a word boundary (never mid-word)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    if len(line) > 120:
        line = line[:120].rsplit(" ", 1)[0] + " …"
    return f"{type(exc).__name__}: {line}"


def _shape_problems(model_sd: Mapping[str, torch.Tensor], ckpt: Mapping[str, torch.Tensor]) -> list[str]:
    return [
        f"{k} {tuple(ckpt[k].shape)} vs {tuple(v.shape)}"
        for k, v in model_sd.items()
        if k in ckpt and tuple(ckpt[k].shape) != tuple(v.shape)
    ]


def mismatch_summary(model_sd: Mapping[str, torch.Tensor], ckpt: Mapping[str, torch.Tensor]) -> str | None:
    """One line naming the first few missing/unexpected keys and wrong shapes, or None when the layouts agree."""
    missing = [k for k in model_sd if k not in ckpt]
    unexpected = [k for k in ckpt if k not in model_sd]
    shapes = _shape_problems(model_sd, ckpt)
    parts = []
    if missing:
        parts.append(
            f"{len(missing)} missing keys ({', '.join(missing[:_SHOW])}{', …' if len(missing) > _SHOW else ''})"
        )
    if unexpected:
        more = ", …" if len(unexpected) > _SHOW else ""
        parts.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:_SHOW])}{more})")
    if shapes:
        parts.append(f"{len(shapes)} wrong shapes ({'; '.join(shapes[:_SHOW])}{'; …' if len(shapes) > _SHOW else ''})")
    return "; ".join(parts) if parts else None


def load_into(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], name: str, path: str | Path, guess: str | None = None
) -> None:
    """Load `state_dict` strictly into `model`, or raise CheckpointError naming the problem (and `guess`, the model
    the checkpoint seems to be for)."""
    problem = mismatch_summary(model.state_dict(), state_dict)
    if problem is not None:
        hint = (
            f"it looks like a checkpoint for {guess}; build that model instead"
            if guess
            else ("pass a checkpoint saved from this model")
        )
        raise CheckpointError(f"checkpoint {path} does not fit {name}: {problem}; {hint}")
    model.load_state_dict(state_dict, strict=True)


# timm's port renames the containers only; below block level the keys are identical (verified one-to-one in
# ../shared/reference/efficientvit_official_facts.md §2.2). Rules map timm -> official.
_TIMM_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"^stem\.in_conv\.", "backbone.input_stem.op_list.0."),
        (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"backbone.stages.\1.op_list.\2."),
        (r"^head\.in_conv\.", "head.op_list.0."),
        (r"^head\.classifier\.0\.", "head.op_list.2.linear."),
        (r"^head\.classifier\.1\.", "head.op_list.2.norm."),
        (r"^head\.classifier\.4\.", "head.op_list.3.linear."),
    )
)
_TIMM_STEM_RES = re.compile(r"^stem\.res(\d+)\.")


def is_timm_efficientvit(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for a state_dict in timm's `efficientvit_mit` layout (e.g. timm's efficientvit_b0.r224_in1k)."""
    return any(k.startswith("stem.in_conv.") for k in state_dict) and any(k.startswith("stages.") for k in state_dict)


def timm_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename timm EfficientViT keys to the official layout; tensors are shared, not copied."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = _TIMM_STEM_RES.sub(lambda m: f"backbone.input_stem.op_list.{int(m.group(1)) + 1}.", key)
        for pattern, repl in _TIMM_RULES:
            new = pattern.sub(repl, new)
        out[new] = value
    return out
