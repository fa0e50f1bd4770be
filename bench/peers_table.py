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
    cpu_ms: list[float] = field(default_factory=list)  # 1-thread rows: thread CPU time per run (load-robust)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    @property
    def best(self) -> float | None:
        return min(self.times_ms) if self.times_ms else None

    @property
    def cpu(self) -> float | None:
        return statistics.median(self.cpu_ms) if self.cpu_ms else None


OURS = "ours"
OUR_VARIANTS = (OURS, "ours --nhwc")  # our deploy form; never counted as a peer
METRICS = ("median", "best", "cpu")  # wall median, wall min, 1-thread CPU median


def _ours(rows: list[Row], group: tuple) -> Row | None:
    return next((r for r in rows if r.route == OURS and _group(r) == group and r.median is not None), None)


def ratio_to_ours(rows: list[Row], row: Row, metric: str = "median") -> float | None:
    """row's metric / ours (deploy form) in the same (model, resolution, runtime, threads) group; >1 = ours faster."""
    ours = _ours(rows, _group(row))
    mine, theirs = getattr(row, metric), getattr(ours, metric) if ours else None
    if mine is None or not theirs:
        return None
    return mine / theirs


def best_peer(rows: list[Row], group: tuple, metric: str = "median") -> Row | None:
    """The fastest route other than ours that matched PyTorch (ours --no-optimize counts: it is litert-torch's,
    torch.export's and our ONNX export's default on the model as built)."""
    peers = [r for r in rows if _group(r) == group and r.route not in OUR_VARIANTS and getattr(r, metric) is not None
             and _passed(r)]
    return min(peers, key=lambda r: getattr(r, metric)) if peers else None


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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(rows: list[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| model | resolution | runtime | threads | route | median ms (min) | x ours median / min | 1-thread CPU ms "
        "(x ours) | parity max abs | transpose/slice/pad of ops; partitions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        time_cell = f"{r.median:.2f} ({r.best:.2f})" if r.median is not None else (r.note or "-")
        cpu_cell = "-" if r.cpu is None else f"{r.cpu:.2f} ({_x(ratio_to_ours(rows, r, 'cpu'))})"
        lines.append(
            f"| {r.model} | {r.resolution} | {r.runtime} | {r.threads or '-'} | {r.route} | {time_cell} "
            f"| {_x(ratio_to_ours(rows, r))} / {_x(ratio_to_ours(rows, r, 'best'))} | {cpu_cell} "
            f"| {_parity_cell(r.parity)} | {r.census.cell() if r.census else '-'} |"
        )
    lines += ["", "x ours: the route's time / ours (deploy form) in the same runtime and thread count; >1 = ours "
              "faster. 1-thread CPU: median CPU time of the calling thread (the runtimes compute inline at one thread),"
              " robust to other load. Parity: max |logit difference| on the verification input against the route's "
              "PyTorch model (fp32 criterion 1e-4 + same top-1)."]
    lines += ["", *summary(rows)]
    return "\n".join(lines) + "\n"


def summary(rows: list[Row]) -> list[str]:
    """One line per group: ours against the best peer that matched PyTorch, per metric."""
    out = []
    for group in dict.fromkeys(_group(r) for r in rows if r.median is not None):
        ours = _ours(rows, group)
        parts = []
        for metric, label in (("median", "median"), ("best", "min"), ("cpu", "CPU")):
            peer = best_peer(rows, group, metric)
            if ours is not None and peer is not None and getattr(ours, metric):
                parts.append(f"{label}: {peer.route} {getattr(peer, metric):.2f} vs ours "
                             f"{getattr(ours, metric):.2f} ms = {getattr(peer, metric) / getattr(ours, metric):.2f}x")
        if parts:
            out.append(f"- {group[0]} {group[1]} {group[2]} {group[3]}t, best peer by " + "; ".join(parts))
    return out


def to_json(rows: list[Row], meta: dict) -> dict:
    return {"meta": meta, "rows": [{**asdict(r), "median_ms": r.median, "min_ms": r.best, "cpu_ms_median": r.cpu,
                                    **{f"x_ours_{m}": ratio_to_ours(rows, r, m) for m in METRICS}} for r in rows]}
