package org.tensorflow.lite;

/** Test stub (see InterpreterApi). */
public enum DataType {
    FLOAT32, INT32, UINT8, INT64, STRING, BOOL, INT16, INT8
}
