"""TFLite op tables: what the attention-island finder and the int8 census need to know about TFLite's operators."""

from __future__ import annotations

from effvit_deploy.export.quantize.islands import OpClasses

ATTENTION_OPS = OpClasses(
    matmul=frozenset({"BATCH_MATMUL"}),
    normaliser=frozenset({"DIV", "SOFTMAX"}),
    plumbing=frozenset(
        {"RESHAPE", "SLICE", "STRIDED_SLICE", "TRANSPOSE", "RELU", "PAD", "PADV2", "ADD", "SUB", "MUL", "SUM",
         "CONCATENATION", "SPLIT", "SPLIT_V", "SQUEEZE", "EXPAND_DIMS", "BROADCAST_TO", "GATHER", "RECIPROCAL",
         "MEAN", "QUANTIZE", "DEQUANTIZE"}
    ),
    # RELU is not listed: TFLite's XNNPACK delegate takes a standalone RELU only in fp32, so the ReLU kernel (and
    # whatever follows it) joins the fp32 island instead of splitting the XNNPACK partition.
    # SPLIT is not listed either: it fans one tensor out into q, k, v, so in the island it costs one dequantize
    # (of the joined tensor) where an int8 split would cost three.
    movement=frozenset({"RESHAPE", "SLICE", "STRIDED_SLICE", "TRANSPOSE", "PAD", "CONCATENATION", "SQUEEZE",
                        "EXPAND_DIMS", "GATHER"}),
)

# LayerNorm as the TFLite converter decomposes it (MEAN, SQUARED_DIFFERENCE, ADD eps, RSQRT, MUL, SUB): XNNPACK has
# no QS8 RSQRT / SQUARED_DIFFERENCE, so an int8 LayerNorm would leave the delegate; it stays one fp32 island instead.
NORM_ANCHORS = frozenset({"RSQRT"})
NORM_OPS = frozenset({"MEAN", "SQUARED_DIFFERENCE", "ADD", "SUB", "MUL", "RSQRT", "SQRT", "DIV", "RESHAPE"})

COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
INT_TYPES = frozenset({"INT8", "UINT8", "INT16"})
