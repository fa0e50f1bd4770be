"""Input resolutions, parsed one way everywhere: `224` (square) or `HxW` such as `512x1024`, ASCII digits, each side a
positive multiple of `multiple` (32 for models and exports: their output stride; 1 where any size is acceptable, e.g.
a result record).
"""

from __future__ import annotations

import re

from .errors import InvalidInputError

Resolution = tuple[int, int]
STRIDE = 32
# ASCII digits only: str.isdigit() also accepts superscripts ("²", which int() rejects) and other scripts' digits
_SIDE = re.compile(r"[0-9]+", re.ASCII)


def parse_resolution(value: str | int | tuple[int, int], *, multiple: int = STRIDE) -> Resolution:
    """Parse `224`, `"224"`, `"512x1024"` or `(512, 1024)` into (height, width); each side a multiple of `multiple`."""
    if isinstance(value, tuple):
        height, width = value
    elif isinstance(value, int):
        height = width = value
    else:
        text = str(value).strip().lower()
        parts = [p.strip() for p in text.split("x")]
        if len(parts) not in (1, 2) or not all(_SIDE.fullmatch(p) and len(p) <= 6 for p in parts):
            raise InvalidInputError(f"resolution {value!r} is not understood; write 224 or HxW such as 512x1024")
        height = int(parts[0])
        width = int(parts[-1])
    for side in (height, width):
        if isinstance(side, bool) or not isinstance(side, int):
            raise InvalidInputError(f"resolution {value!r} is not understood; write 224 or HxW such as 512x1024")
        if side <= 0 or side % multiple:
            raise InvalidInputError(
                f"resolution {height}x{width} is invalid: each side must be a positive multiple of {multiple} "
                f"(for example 224, 512 or 512x1024)"
            )
    return height, width


def format_resolution(resolution: Resolution) -> str:
    """(512, 1024) -> '512x1024'."""
    return f"{resolution[0]}x{resolution[1]}"
