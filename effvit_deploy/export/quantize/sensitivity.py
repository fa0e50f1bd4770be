"""Per-layer int8 sensitivity: which attention cores may run in int8, and the worst layers of an int8 model.

Measured on the PT2E int8 simulation (`pt2e.fake_quantize` + `pt2e.layer_sqnr`) over calibration images, never the
held-out ones (those only grade the final artifact). For an attention core the figure that matters is how much SQNR
it loses between its inputs (the q/k/v projections) and its output (the normalised attention, before proj):

    drop_db = min SQNR of the layers feeding the core - SQNR at the core's output

measured twice, with the core an fp32 island and with its matmuls in int8; the difference is what int8 costs there.
`auto` keeps a core's matmuls in int8 only where the runtime has an int8 kernel for them inside its fast path and
that cost stays within AUTO_MAX_DROP_DB; everywhere else the core is an fp32 island.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

AUTO_MAX_DROP_DB = 1.0
WORST_LAYERS = 5


def attention_cores(rows: Sequence[dict], modules: Sequence[str]) -> list[dict]:
    """SQNR into / out of each attention core (rows from `pt2e.layer_sqnr`), in the order of `modules`."""
    sqnr = {row["layer"]: row["sqnr_db"] for row in rows}
    cores = []
    for name in modules:
        core = [row for row in rows if row["module"] == name]
        if not core:
            cores.append({"module": name, "sqnr_in_db": None, "sqnr_out_db": None, "drop_db": None})
            continue
        inside = {row["layer"] for row in core}
        feeding = [sqnr[u] for row in core for u in row["inputs"] if u not in inside and u in sqnr]
        out = core[-1]["sqnr_db"]
        into = min(feeding) if feeding else math.inf
        drop = into - out if math.isfinite(into) and math.isfinite(out) else (0.0 if into == out else math.inf)
        cores.append({"module": name, "sqnr_in_db": _r(into), "sqnr_out_db": _r(out), "drop_db": _r(drop)})
    return cores


def decide(mode: str, island: Sequence[dict], int8: Sequence[dict] | None, runtime_int8: bool,
           runtime_reason: str) -> list[dict]:
    """Per-core choice ("int8" | "fp32") with the reason, for attention mode "auto" | "int8" | "fp32".

    `island` / `int8`: `attention_cores` of a simulation with every core an fp32 island / with every core's matmuls
    in int8 (None when not simulated). The cost of int8 for a core is how much more SQNR it loses with int8
    matmuls than as an fp32 island (its q/k/v are int8 either way, and the division amplifies their error).
    """
    decisions = []
    for k, core in enumerate(island):
        row = {"module": core["module"], "island_sqnr_in_db": core["sqnr_in_db"],
               "island_sqnr_out_db": core["sqnr_out_db"]}
        cost = None
        if int8 is not None and core["drop_db"] is not None and int8[k]["drop_db"] is not None:
            cost = _f(int8[k]["drop_db"]) - _f(core["drop_db"])
            row.update(int8_sqnr_in_db=int8[k]["sqnr_in_db"], int8_sqnr_out_db=int8[k]["sqnr_out_db"],
                       int8_cost_db=_r(cost))
        if mode == "fp32":
            choice, reason = "fp32", "--int8-attention fp32"
        elif mode == "int8":
            choice, reason = "int8", "--int8-attention int8"
        elif not runtime_int8:
            choice, reason = "fp32", runtime_reason
        elif cost is None or not math.isfinite(cost):
            choice, reason = "fp32", "int8 cost not measurable"
        elif cost <= AUTO_MAX_DROP_DB:
            choice, reason = "int8", f"int8 matmuls cost {cost:.2f} dB <= {AUTO_MAX_DROP_DB} dB"
        else:
            choice, reason = "fp32", f"int8 matmuls cost {cost:.2f} dB > {AUTO_MAX_DROP_DB} dB"
        decisions.append({**row, "choice": choice, "reason": reason})
    return decisions


# Left out of the ranking: means (global pooling and LayerNorm statistics; the LayerNorm's mean of a nearly centred
# vector is ~0, so its SQNR is near 0 dB by construction while the normalised output is fine).
_NOT_RANKED = {"mean", "layer_norm"}


def worst_layers(rows: Sequence[dict], n: int = WORST_LAYERS) -> list[dict]:
    """The n layers with the lowest (accumulated) SQNR, each with the dB it adds itself."""
    finite = [row for row in rows if math.isfinite(row["sqnr_db"]) and row["op"] not in _NOT_RANKED]
    ranked = sorted(finite, key=lambda row: row["sqnr_db"])[:n]
    return [
        {
            "layer": row["layer"],
            "op": row["op"],
            "module": row["module"],
            "sqnr_db": _r(row["sqnr_db"]),
            "added_db": _r(row["input_sqnr_db"] - row["sqnr_db"]) if math.isfinite(row["input_sqnr_db"]) else None,
        }
        for row in ranked
    ]


def _r(value: float) -> float | str:
    return round(value, 2) if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _f(value: float | str) -> float:
    return float(value) if not isinstance(value, str) else (math.inf if value == "inf" else -math.inf)
