package org.tensorflow.lite;

/** Test stub (see InterpreterApi). */
public final class TensorFlowLite {
    private TensorFlowLite() {
    }

    public static String runtimeVersion() {
        return "stub";
    }
}
