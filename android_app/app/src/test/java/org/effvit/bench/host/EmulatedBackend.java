package org.effvit.bench.host;

import java.io.File;
import java.nio.file.Files;

import org.effvit.bench.backends.ShapeFromName;
import org.effvit.bench.core.Backend;

/**
 * The emulated phone's stand-in for a runtime (test infrastructure, never in the APK): it "loads" the pushed model
 * file (checking the file is of the runtime's format by its identifier bytes, as the real runtime would refuse it),
 * and each run computes 1000 logits from the model bytes and the input, so outputs are deterministic per
 * artifact and input. The numbers say nothing about a phone's speed.
 */
public final class EmulatedBackend implements Backend {
    static final int CLASSES = 1000;
    private final String runtime;
    private byte[] model;
    private long[] shape;
    private float[] input;
    private float[] out;

    public EmulatedBackend(String runtime) {
        this.runtime = runtime;
    }

    @Override
    public String runtime() {
        return runtime;
    }

    @Override
    public String version() {
        return "emulated";
    }

    @Override
    public void load(String modelPath, int threads, String delegate) throws Exception {
        model = Files.readAllBytes(new File(modelPath).toPath());
        String why = formatProblem(model);
        if (why != null) {
            throw new IllegalArgumentException(modelPath + " is not a " + runtime + " model: " + why);
        }
        shape = ShapeFromName.nchw(modelPath);
    }

    private String formatProblem(byte[] b) {
        if ("tflite".equals(runtime) && !(b.length > 8 && b[4] == 'T' && b[5] == 'F' && b[6] == 'L' && b[7] == '3')) {
            return "no TFL3 flatbuffer identifier";
        }
        if ("executorch".equals(runtime) && !(b.length > 8 && b[4] == 'E' && b[5] == 'T')) {
            return "no ET program identifier";
        }
        if ("onnx".equals(runtime) && !(b.length > 2 && b[0] == 0x08)) {
            return "not an ONNX protobuf (no ir_version field first)";
        }
        return null;
    }

    @Override
    public long[] inputShape() {
        return shape;
    }

    @Override
    public void setInput(float[] data) {
        input = data;
    }

    @Override
    public void run() throws InterruptedException {
        float[] logits = new float[CLASSES];
        for (int j = 0; j < CLASSES; j++) {
            float w = (model[(j * 7919) % model.length] & 0xff) / 255f - 0.5f;
            logits[j] = w + 0.1f * input[j % input.length];
        }
        out = logits;
        Thread.sleep(1); // a measurable, nonzero time per run
    }

    @Override
    public float[] output() {
        return out;
    }

    @Override
    public long[] outputShape() {
        return new long[] {1, CLASSES};
    }

    @Override
    public void close() {
    }
}
