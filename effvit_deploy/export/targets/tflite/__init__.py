"""LiteRT (TFLite): everything this project knows about the runtime, in one package.

- `target.py`  `TfliteTarget`: litert-torch conversion (fp32, fp16), the interpreter runner used for verification,
               the op census and XNNPACK partitions, int8 through `int8.py`;
- `graph.py`   the one .tflite flatbuffer reader (ops, tensors, shapes, BATCH_MATMUL flags) and the XNNPACK
               partition count of a delegated interpreter (`bench/inspect_tflite_graph.py` reads graphs with it);
- `int8.py`    AI Edge Quantizer static int8 with fp32 attention / LayerNorm / hard-swish islands, and the int8 census;
- `ops.py`     TFLite op-type tables for the island finder and the census.
"""

from effvit_deploy.export.targets.tflite.target import TfliteTarget

__all__ = ["TfliteTarget"]
