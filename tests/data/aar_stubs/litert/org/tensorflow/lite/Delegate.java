package org.tensorflow.lite;

/** Test stub (see InterpreterApi). */
public interface Delegate {
    long getNativeHandle();
}
