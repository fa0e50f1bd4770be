"""Rows of the peers benchmark and their Markdown / JSON rendering (pure functions: no converter, no runtime)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from peers_census import Census


@dataclass
class Row:
    model: str
    resolution: str
    runtime: str  # litert / onnxruntime / executorch
    threads: int
    route: str
    times_ms: list[float] = field(default_factory=list)
    parity: dict | None = None  # effvit_deploy.parity.compare against the route's PyTorch reference
    census: Census | None = None
    note: str = ""  # why a route has no time (did not convert, ...)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    @property
    def best(self) -> float | None:
        return min(self.times_ms) if self.times_ms else None


OURS = "ours"


def ratio_to_ours(rows: list[Row], row: Row) -> float | None:
    """row median / ours (deploy form) median in the same (model, resolution, runtime, threads) group."""
    ours = next((r for r in rows if r.route == OURS and _group(r) == _group(row) and r.median), None)
    if ours is None or row.median is None:
        return None
    return row.median / ours.median


def best_peer(rows: list[Row], group: tuple) -> Row | None:
    """The fastest timed route other than ours (and ours --no-optimize is a peer: it is litert-torch's default)."""
    peers = [r for r in rows if _group(r) == group and r.route != OURS and r.median is not None and _passed(r)]
    return min(peers, key=lambda r: r.median) if peers else None


def _passed(row: Row) -> bool:
    return bool(row.parity and row.parity.get("passed"))


def _group(row: Row) -> tuple:
    return (row.model, row.resolution, row.runtime, row.threads)


def _parity_cell(parity: dict | None) -> str:
    if not parity:
        return "-"
    if parity.get("max_abs") is None:
        return f"FAIL ({parity.get('criterion')})"
    verdict = "ok" if parity.get("passed") else "FAIL"
    return f"{parity['max_abs']:.1e} {verdict}"


def markdown(rows: list[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| model | resolution | runtime | threads | route | median ms (min) | x ours | parity max abs | "
        "transpose/slice/pad of ops; partitions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = ratio_to_ours(rows, r)
        time_cell = f"{r.median:.2f} ({r.best:.2f})" if r.median is not None else (r.note or "-")
        lines.append(
            f"| {r.model} | {r.resolution} | {r.runtime} | {r.threads} | {r.route} | {time_cell} "
            f"| {'-' if ratio is None else f'{ratio:.2f}x'} | {_parity_cell(r.parity)} "
            f"| {r.census.cell() if r.census else '-'} |"
        )
    lines += ["", "x ours: the route's median / ours (deploy form) in the same runtime and thread count; >1 = ours "
              "faster. Parity: max |logit difference| on the verification input against the route's PyTorch model "
              "(fp32 criterion 1e-4 + same top-1)."]
    lines += ["", *summary(rows)]
    return "\n".join(lines) + "\n"


def summary(rows: list[Row]) -> list[str]:
    """One line per group: ours vs the best peer that matched PyTorch."""
    out = []
    for group in dict.fromkeys(_group(r) for r in rows):
        ours = next((r for r in rows if _group(r) == group and r.route == OURS and r.median), None)
        peer = best_peer(rows, group)
        if ours is None or peer is None:
            continue
        out.append(f"- {group[0]} {group[1]} {group[2]} {group[3]}t: best peer {peer.route} {peer.median:.2f} ms, "
                   f"ours {ours.median:.2f} ms -> ours {peer.median / ours.median:.2f}x")
    return out


def to_json(rows: list[Row], meta: dict) -> dict:
    return {"meta": meta, "rows": [{**asdict(r), "median_ms": r.median, "min_ms": r.best,
                                    "x_ours": ratio_to_ours(rows, r)} for r in rows]}
