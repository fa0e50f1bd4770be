package org.effvit.bench.core;

import java.util.ArrayList;
import java.util.List;

/** A backend whose load takes {@code loadMs} and whose i-th run takes {@code runMs[i]} on a FakeClock. */
final class FakeBackend implements Backend {
    final FakeClock clock;
    final double loadMs;
    final double[] runMs;
    final List<String> calls = new ArrayList<String>();
    long[] shape = {1, 3, 4, 4};
    int failRunAt = -1;
    boolean failLoad;
    float[] input;
    int runs;
    boolean closed;
    java.io.File watch; // when set, each run records whether this file exists (the timed_flag check)
    final List<Boolean> watched = new ArrayList<Boolean>();

    FakeBackend(FakeClock clock, double loadMs, double... runMs) {
        this.clock = clock;
        this.loadMs = loadMs;
        this.runMs = runMs;
    }

    @Override
    public String runtime() {
        return "tflite";
    }

    @Override
    public String version() {
        return "fake-1.0";
    }

    @Override
    public void load(String modelPath, int threads, String delegate) throws Exception {
        calls.add("load " + modelPath + " " + threads + " " + delegate);
        clock.advanceMs(loadMs);
        if (failLoad) {
            throw new IllegalArgumentException("model is corrupt");
        }
    }

    @Override
    public long[] inputShape() {
        return shape;
    }

    @Override
    public void setInput(float[] data) {
        calls.add("setInput " + data.length);
        input = data;
    }

    @Override
    public void run() {
        if (runs == failRunAt) {
            throw new IllegalStateException("delegate failed at run " + runs);
        }
        clock.advanceMs(runMs[Math.min(runs, runMs.length - 1)]);
        runs++;
        if (watch != null) {
            watched.add(watch.exists());
        }
    }

    @Override
    public float[] output() {
        float[] out = new float[20];
        for (int i = 0; i < out.length; i++) {
            out[i] = i == 7 ? 5f : i * 0.25f - 1f;
        }
        return out;
    }

    @Override
    public long[] outputShape() {
        return new long[] {1, 20};
    }

    @Override
    public void close() {
        closed = true;
    }
}
