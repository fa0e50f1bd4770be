package org.effvit.bench.core;

/**
 * A failure the app reports in its result JSON instead of crashing. {@code status} is the JSON "status" value:
 * "bad_args" (the am start extras are wrong), "unavailable" (this APK was built without the runtime), or "error"
 * (the runtime failed to load or run the model).
 */
public final class BenchError extends Exception {
    public static final String BAD_ARGS = "bad_args";
    public static final String UNAVAILABLE = "unavailable";
    public static final String ERROR = "error";

    private static final long serialVersionUID = 1L;

    public final String status;

    public BenchError(String status, String message) {
        super(message);
        this.status = status;
    }

    public BenchError(String status, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
    }
}
