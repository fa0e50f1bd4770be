"""The model zoo table: params and MACs of every registered model at chosen resolutions, with published figures."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..zoo import load_zoo
from . import build, format_resolution, names, parse_resolution, profile


@dataclass(frozen=True)
class ZooRow:
    name: str
    params: int
    gmacs: dict[str, float]  # resolution "HxW" -> GMACs
    published: tuple[float, float, int] | None
    measured_at_published: float | None  # our GMACs at the published resolution


def zoo_rows(resolutions: list[str] | None = None, model_names: list[str] | None = None) -> list[ZooRow]:
    """Measure params and GMACs of each model (default: all) at each resolution (default: 224 and 512)."""
    resolutions = [format_resolution(parse_resolution(r)) for r in (resolutions or ["224", "512"])]
    rows = []
    published_figures = published_params_macs()
    for name in model_names or names():
        # Shapes are all profile needs: on the meta device no weights are initialised or multiplied.
        with torch.device("meta"):
            model = build(name)
        gmacs = {}
        params = 0
        for res in resolutions:
            params, macs = profile(model, res)
            gmacs[res] = macs / 1e9
        published = published_figures.get(name)
        at_published = profile(model, published[2], multiple=1)[1] / 1e9 if published else None
        rows.append(ZooRow(name, params, gmacs, published, at_published))
    return rows


def published_params_macs() -> dict[str, tuple[float, float, int]]:
    """(params, GMACs, resolution) as published, for every zoo model that has all three (models/zoo.toml)."""
    figures = {}
    for name, entry in load_zoo().items():
        pub = entry.published
        if pub.params is not None and pub.gmacs is not None and pub.resolution is not None:
            figures[name] = (pub.params, pub.gmacs, pub.resolution)
    return figures


def to_markdown(rows: list[ZooRow]) -> str:
    """Markdown table: model, params (M), GMACs per resolution, published params/GMACs at 224."""
    resolutions = list(rows[0].gmacs) if rows else []
    header = ["model", "params (M)", *[f"GMACs @{r}" for r in resolutions], "published params / GMACs", "ours there"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        pub = f"{row.published[0] / 1e6:.2f}M / {row.published[1]:.3f} @{row.published[2]}" if row.published else "–"
        ours = f"{row.measured_at_published:.3f}" if row.measured_at_published is not None else "–"
        cells = [row.name, f"{row.params / 1e6:.2f}", *[f"{row.gmacs[r]:.3f}" for r in resolutions], pub, ours]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(to_markdown(zoo_rows()))
