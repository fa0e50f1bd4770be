package org.effvit.bench.core;

/** A backend with a public no-argument constructor, as ReflectiveBackendFactory needs. */
public final class NoArgBackend implements Backend {
    @Override
    public String runtime() {
        return "onnx";
    }

    @Override
    public String version() {
        return "noarg";
    }

    @Override
    public void load(String modelPath, int threads, String delegate) {
    }

    @Override
    public long[] inputShape() {
        return new long[] {1};
    }

    @Override
    public void setInput(float[] data) {
    }

    @Override
    public void run() {
    }

    @Override
    public float[] output() {
        return new float[] {1};
    }

    @Override
    public long[] outputShape() {
        return new long[] {1};
    }

    @Override
    public void close() {
    }
}
