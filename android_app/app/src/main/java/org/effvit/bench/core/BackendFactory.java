package org.effvit.bench.core;

/** Makes the backend for a runtime, or says why this build has none. */
public interface BackendFactory {
    /**
     * @return a new backend for "tflite", "executorch" or "onnx".
     * @throws BenchError with status UNAVAILABLE when this build does not include that runtime.
     */
    Backend create(String runtime) throws BenchError;

    /** Which of the three runtimes this build has (written to the result so the harness can tell). */
    boolean has(String runtime);
}
