"""ONNX Runtime: everything this project knows about the runtime, in one package.

- `target.py`  `OnnxTarget`: torch.onnx + safe optimizer passes + onnxsim (fp32, fp16), the ONNX Runtime session used
               for verification, the op census, int8 through `int8.py`;
- `int8.py`    onnxruntime static QDQ int8 with fp32 attention islands, and the int8 (QDQ) census;
- `ops.py`     ONNX op-type tables for the island finder and the census.
"""

from effvit_deploy.export.targets.onnx.target import OnnxTarget

__all__ = ["OnnxTarget"]
