"""Seeded run order: drift over a sweep (heat soak, a background update, battery level) must favour no model.

The sweep's interleaved order (sweep.py) keeps the models a report compares back to back: one block per
(resolution, target, precision, options, threads). `shuffled` keeps those blocks together and shuffles both the
order of the blocks and the order of the models inside each block, from `seed` alone, so the same seed gives the
same order in any process (resume and re-runs see the same sequence; record keys do not depend on order).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .sweep import Configuration


def _block(c: Configuration) -> tuple[object, ...]:
    return (c.resolution, c.target, c.precision, c.optimize, c.nhwc, c.threads)


def shuffled(configs: Sequence[Configuration], seed: int | None) -> list[Configuration]:
    """`configs` in a seeded shuffled order (comparison blocks kept together); unchanged when `seed` is None."""
    if seed is None:
        return list(configs)
    rng = random.Random(seed)  # random.Random(int) is stable across Python versions and platforms
    blocks: dict[tuple[object, ...], list[Configuration]] = {}
    for c in configs:
        blocks.setdefault(_block(c), []).append(c)
    groups = list(blocks.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    return [c for group in groups for c in group]
