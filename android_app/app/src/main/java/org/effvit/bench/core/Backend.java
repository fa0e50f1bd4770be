package org.effvit.bench.core;

/**
 * One runtime behind the app (LiteRT, ExecuTorch, ONNX Runtime, or a test double). The core calls, in order:
 * {@code load}, {@code inputShape}, {@code setInput}, then {@code run} warmup + runs times, {@code output} once,
 * {@code close}. Only {@code run} is inside the timed region, so a backend must do all copying of the input into
 * the runtime's buffers in {@code setInput}.
 */
public interface Backend {
    /** Runtime name written to the result: "tflite", "executorch" or "onnx". */
    String runtime();

    /** Version of the runtime library actually linked into the APK (null when it cannot tell). */
    String version();

    /**
     * Load the model and make it ready to run (the timed "init").
     *
     * @param delegate "xnnpack", "gpu", "nnapi" or null for the runtime's default CPU path.
     */
    void load(String modelPath, int threads, String delegate) throws Exception;

    /** Shape of the first input, e.g. {1, 3, 224, 224}; dynamic dimensions reported as 1. */
    long[] inputShape() throws Exception;

    /** Copy the (float32) input into the runtime. */
    void setInput(float[] data) throws Exception;

    /** One inference: the only call that is timed. */
    void run() throws Exception;

    /** The first output of the last run, flattened to float32. */
    float[] output() throws Exception;

    /** Shape of the first output. */
    long[] outputShape() throws Exception;

    /** Release native resources (never throws). */
    void close();
}
