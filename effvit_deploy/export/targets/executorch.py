"""ExecuTorch target (1.4.1): torch.export -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte.

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
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from effvit_deploy.export.deploy.head_split import split_style
from effvit_deploy.export.targets import _pte
from effvit_deploy.export.targets._common import (
    Runner,
    check_options,
    conversion_error,
    package_versions,
    prepare,
    require,
)

log = logging.getLogger(__name__)


class ExecutorchTarget:
    name = "executorch"
    suffix = ".pte"
    precisions = ("fp32", "fp16")

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
        check_options(self.name, self.precisions, precision, nhwc, nhwc_ok=False)
        require("executorch.exir", self.name)
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.backends.xnnpack.utils.configs import get_transform_passes
        from executorch.exir import to_edge_transform_and_lower

        work = prepare(module, precision)
        try:
            with split_style("slice"):  # a joined q|k|v (deploy.head_split): slices are delegated, split is not
                exported = torch.export.export(work, (example.float(),))
            edge = to_edge_transform_and_lower(
                exported, partitioner=[XnnpackPartitioner()], transform_passes=get_transform_passes()
            )
            lowered = _lowered_ops(edge.exported_program().graph_module)
            program = edge.to_executorch()
        except Exception as exc:  # export/lowering raise many types; all mean "this model did not convert"
            raise conversion_error(self.name, module, exc) from exc
        Path(out_path).write_bytes(program.buffer)
        return {"lowered_ops": dict(sorted(lowered.items()))}

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


def _lowered_ops(graph_module: torch.fx.GraphModule) -> Counter:
    """Edge op name -> count inside every lowered (delegated) submodule of the top-level graph."""
    from executorch.exir.lowered_backend_module import get_lowered_submodules

    counts: Counter = Counter()
    for _, lowered, _ in get_lowered_submodules(graph_module):
        for node in lowered.original_module.graph_module.graph.nodes:
            op = getattr(node.target, "_op", node.target)
            if node.op == "call_function" and isinstance(op, torch._ops.OpOverload):
                counts[str(op)] += 1
    return counts


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
