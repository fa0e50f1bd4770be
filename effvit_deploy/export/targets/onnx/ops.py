"""ONNX op tables: what the attention-island finder and the int8 census need to know about ONNX Runtime's ops."""

from __future__ import annotations

from effvit_deploy.export.quantize.islands import OpClasses

ATTENTION_OPS = OpClasses(
    matmul=frozenset({"MatMul", "Einsum"}),
    normaliser=frozenset({"Div", "Softmax", "Reciprocal"}),
    plumbing=frozenset(
        {"Reshape", "Slice", "Transpose", "Relu", "Pad", "Add", "Sub", "Mul", "ReduceSum", "Concat", "Split",
         "Squeeze", "Unsqueeze", "Expand", "Gather", "Shape", "Constant", "Cast", "ReduceMean", "Identity",
         "QuantizeLinear", "DequantizeLinear"}
    ),
    movement=frozenset({"Reshape", "Slice", "Transpose", "Relu", "Pad", "Concat", "Squeeze", "Unsqueeze",
                        "Gather", "Identity", "QuantizeLinear", "DequantizeLinear"}),  # Split: as for TFLite
)

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
# Op types ONNX Runtime's CPU EP runs in int8 when wrapped in DQ -> op -> Q (its QDQ fusions to QLinear*/QGemm, or
# pure data movement). Others (HardSwish, LayerNormalization, ReduceMean, Div, ...) compute in fp32 between the DQ
# and the Q even when the quantizer wrapped them, so their Q/DQ are boundaries.
INT8_KERNELS = frozenset({"Conv", "MatMul", "Gemm", "Add", "Mul", "Concat", "AveragePool", "GlobalAveragePool",
                          "MaxPool", "LeakyRelu", "Sigmoid", "Softmax", "Where", "Resize", "Reshape", "Transpose",
                          "Squeeze", "Unsqueeze", "Flatten", "Slice", "Split", "Gather", "Pad", "Relu", "Clip",
                          "ArgMax"})
QDQ = ("QuantizeLinear", "DequantizeLinear")
# Ops that merely move int8 data: a Q/DQ pair around them does not make them fp32.
SHAPE_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Split", "Gather", "Pad",
                       "Concat", "MaxPool", "Relu", "Clip"})
