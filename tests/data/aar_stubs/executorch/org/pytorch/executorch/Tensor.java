package org.pytorch.executorch;

/** Test stub (see Module). */
public class Tensor {
    private final float[] data;
    private final long[] shape;

    private Tensor(float[] data, long[] shape) {
        this.data = data;
        this.shape = shape;
    }

    public static Tensor fromBlob(float[] data, long[] shape) {
        return new Tensor(data, shape);
    }

    public float[] getDataAsFloatArray() {
        return data;
    }

    public long[] shape() {
        return shape;
    }
}
