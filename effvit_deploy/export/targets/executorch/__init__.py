"""ExecuTorch: everything this project knows about the runtime, in one package.

- `target.py`    `ExecutorchTarget`: torch.export + XNNPACK lowering (fp32, fp16), the ExecuTorch runtime used for
                 verification (and its process threadpool), the .pte census, int8 through `int8.py`;
- `lowering.py`  the one XNNPACK lowering (every precision goes through it);
- `pte.py`       the .pte reader: delegate calls, portable kernels, XNNPACK nodes and value dtypes;
- `int8.py`      PT2E (XNNPACKQuantizer) int8 lowered to XNNPACK, and the int8 census of the quantized graph.
"""

from effvit_deploy.export.targets.executorch.target import ExecutorchTarget

__all__ = ["ExecutorchTarget"]
