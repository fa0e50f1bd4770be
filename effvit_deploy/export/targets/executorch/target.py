"""ExecuTorch target (1.4.1): torch.export -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte.

Everything about ExecuTorch lives in this package: conversion, runner and census here; the one XNNPACK lowering
(fp32, fp16 and int8 go through it) in `lowering.py`; the .pte reader in `pte.py`; int8 (PT2E XNNPACKQuantizer) and
its int8 census in `int8.py`.

- Lowering uses the documented flow with `get_transform_passes()` (pre-partition rewrites that expose patterns to the
  partitioner). Hard-swish reaches the partitioner as one `aten.hardswish` and is delegated whole (PR #12360).
- fp16: the module is `.half()` behind float32 I/O (`Fp32IO`), lowered with the same partitioner (its FP32 config
  covers fp16 tensors). ExecuTorch 1.4.1's XNNPACK partitioner does not delegate dtype conversions
  (`ToDimOrderCopyConfig` rejects them), so each fp16<->fp32 cast (the I/O casts and LiteMLA's fp32 attention casts)
  runs as a portable kernel between XNNPACK partitions. `census` shows them as `dim_order_ops::_to_dim_order_copy.out`.
  Also, 1.4.1's XNNPACK serializer stores convolution filters as fp32 even in fp16 graphs (`op_conv2d.py`,
  `force_fp32=True`; XNNPACK converts them when it packs weights at load), so only linear weights shrink: an fp16
  .pte is barely smaller than the fp32 one. Activations are fp16 (census `delegated_dtypes` counts XNNPACK tensor
  values by dtype).
- Census from the .pte itself (`_pte.read`): partitions = delegate calls in `forward`, undelegated = portable kernels
  called outside delegates, ops = XNNPACK node types inside the delegates + those kernels. `convert` also returns
  `{"lowered_ops": {"aten.hardswish.default": n, ...}}`: the edge-dialect ops that went into the delegates, which the
  pipeline merges into the census (the .pte no longer holds aten names).
- Threads: the ExecuTorch Python runtime shares one process-wide threadpool (used by XNNPACK). 1.4.1 exposes
  `executorch.extension.pybindings.portable_lib._unsafe_reset_threadpool(n)` (experimental) and
  `_threadpool_get_thread_count()`; the runner resets the pool to `threads` when it differs, before each call, so
  runners with different thread counts in one process each run with their own count (not thread-safe to call
  concurrently). Its default size is the number of cores.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from effvit_deploy.export.targets._common import (
    Runner,
    check_options,
    conversion_error,
    package_versions,
    prepare,
    require,
)
from effvit_deploy.export.targets.executorch import pte as _pte
from effvit_deploy.export.targets.executorch.lowering import lower

log = logging.getLogger(__name__)


class ExecutorchTarget:
    name = "executorch"
    suffix = ".pte"
    precisions = ("fp32", "fp16", "int8")
    split_style = "slice"  # how the deploy form splits a joined q|k|v for this converter (deploy.head_split)
    joined_qkv_max_tokens = 0  # separate q, k, v convs keep one XNNPACK partition
    nhwc_input = False  # can the artifact take an NHWC (1, H, W, 3) input
    int8_method = "XNNPACKQuantizer (PT2E, min/max observers) -> prepare/calibrate/convert -> XNNPACK lowering"
    int8_attention = (False, "ExecuTorch's XNNPACK partitioner takes bmm and div only in fp32")
    int8_from_simulation = True  # the PT2E fake-quant graph is the artifact: it calibrates on every image

    def convert(
        self, module: nn.Module, example: torch.Tensor, out_path: Path, *, precision: str, nhwc: bool = False
    ) -> dict | None:
        """Export and lower `module` at `example`'s shape to `out_path` (.pte).

        Returns:
            {"lowered_ops": {edge op name: count}} over all XNNPACK delegates, for the census.

        Raises:
            InvalidInputError: precision not fp32/fp16, or nhwc requested.
            MissingDependencyError: executorch missing.
            ConversionError: torch.export or the lowering failed on the model.
        """
        check_options(self.name, precision, nhwc, nhwc_ok=self.nhwc_input)
        require("executorch.exir", self.name)
        work = prepare(module, precision, self.split_style)
        try:
            exported = torch.export.export(work, (example.float(),))
            buffer, lowered = lower(exported)
        except Exception as exc:  # export/lowering raise many types; all mean "this model did not convert"
            raise conversion_error(self.name, module, exc) from exc
        Path(out_path).write_bytes(buffer)
        return {"lowered_ops": dict(sorted(lowered.items()))}

    def quantize(self, module: nn.Module, example: torch.Tensor, out_path: Path, *, calib, fp32_attention,
                 simulation, attention_modules, nhwc: bool = False) -> dict:
        """int8 .pte at `out_path`: the PT2E fake-quant graph `simulation` lowered to XNNPACK; see `int8.py`.

        Returns {"islands": attention modules, "census": int8 census of the quantized graph, "extra": lowered ops}.
        """
        from effvit_deploy.export.quantize import pt2e
        from effvit_deploy.export.targets.executorch import int8

        extra = int8.write_pte(simulation, example, out_path)
        islands = [[n.name for n in simulation.quant.graph.nodes if pt2e.module_path(n) == name]
                   for name in attention_modules]
        return {"islands": len(attention_modules), "census": int8.census(simulation.quant, islands), "extra": extra}

    def load_runner(self, path: Path, *, threads: int = 1) -> Runner:
        """ExecuTorch runtime (XNNPACK delegate) on `forward`, process threadpool set to `threads`: NCHW -> logits."""
        runtime_module = require("executorch.runtime", self.name)
        pool = require("executorch.extension.pybindings.portable_lib", self.name)
        _set_threads(pool, threads)
        program = runtime_module.Runtime.get().load_program(Path(path))
        method = program.load_method("forward")

        def run(x: np.ndarray) -> np.ndarray:
            tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            return method.execute([tensor])[0].float().numpy().copy()

        run.program = program  # type: ignore[attr-defined]  # keep the program alive as long as the runner
        _LIVE_RUNNERS.add(run)
        return run

    def census(self, path: Path) -> dict:
        """XNNPACK nodes + outside kernels -> count, partitions (delegate calls), delegated and undelegated ops."""
        require("executorch.exir", self.name)
        found = _pte.read(Path(path))
        ops = found.delegated + found.kernels
        return {
            "ops": dict(sorted(ops.items())),
            "partitions": found.delegate_calls,
            "delegated_ops": sum(found.delegated.values()),
            "total_ops": sum(ops.values()),
            "undelegated": dict(sorted(found.kernels.items())),
            "backends": dict(found.backends),
            "delegated_dtypes": dict(sorted(found.value_dtypes.items())),
        }

    def versions(self) -> dict[str, str]:
        """Tool versions that shape the artifact; imports them first, so a missing one raises MissingDependencyError."""
        for module in ("executorch.exir", "executorch.runtime"):
            require(module, self.name)
        return package_versions("torch", "executorch")


# ExecuTorch 1.4.1 has one process-wide threadpool; XNNPACK delegates keep a pointer to it when a program is loaded,
# so resetting it afterwards leaves those programs with a dangling pool (a segfault on their next execute, seen in the
# test suite). The pool is therefore resized only while no runner (which owns its program) is alive; a runner that is
# dropped frees its program, after which the next load may pick another thread count.
_LIVE_RUNNERS: weakref.WeakSet = weakref.WeakSet()


def _set_threads(pool, threads: int) -> None:
    current = pool._threadpool_get_thread_count()
    if current == threads:
        return
    if len(_LIVE_RUNNERS):
        log.warning(
            "ExecuTorch's process threadpool already serves loaded programs with %d threads; keeping it (asked for %d)",
            current,
            threads,
        )
        return
    pool._unsafe_reset_threadpool(threads)
