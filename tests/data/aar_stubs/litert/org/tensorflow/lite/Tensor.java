package org.tensorflow.lite;

/** Test stub (see InterpreterApi). */
public interface Tensor {
    DataType dataType();

    int numBytes();

    int[] shape();
}
