package org.effvit.bench.core;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The benchmark request, parsed from the activity's extras:
 * {@code --es model PATH --es runtime tflite|executorch|onnx --ei threads N --ei warmup N --ei runs N --es out NAME
 * [--es delegate xnnpack|gpu|nnapi] [--es input PATH (raw float32 or .npy)] [--ef min_seconds S]
 * [--ef max_seconds S] [--es timed_flag NAME]}. Values arrive as String, Integer or Float (am's --es / --ei / --ef); a
 * number given with --es is accepted too. Unknown keys are refused, so a typo never silently means a default.
 * The stop rule: timed runs go on until {@code runs} of them AND {@code min_seconds} (default 0), never past
 * {@code max_seconds} (default none). {@code timed_flag}: a file of that name exists in the result folder exactly
 * while the timed runs go on (a power sampler beside the app reads only then).
 */
public final class BenchArgs {
    public static final Set<String> RUNTIMES = new HashSet<String>(Arrays.asList("tflite", "executorch", "onnx"));
    public static final Set<String> DELEGATES = new HashSet<String>(Arrays.asList("xnnpack", "gpu", "nnapi"));
    public static final String DEFAULT_OUT = "result.json";
    private static final Set<String> KEYS = new HashSet<String>(Arrays.asList(
            "model", "runtime", "threads", "warmup", "runs", "out", "delegate", "input", "min_seconds", "max_seconds",
            "timed_flag"));
    // A bare file name: the result always lands in the app's own files folder, never elsewhere.
    private static final Pattern OUT_NAME = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9._-]{0,127}");

    public final String model;
    public final String runtime;
    public final int threads;
    public final int warmup;
    public final int runs;
    public final String out;
    public final String delegate; // null: the runtime's default CPU path
    public final String input; // null: fixed-seed input
    public final StopRule stop;
    public final String timedFlag; // null: no flag file

    private BenchArgs(String model, String runtime, int threads, int warmup, int runs, String out, String delegate,
                      String input, StopRule stop, String timedFlag) {
        this.model = model;
        this.runtime = runtime;
        this.threads = threads;
        this.warmup = warmup;
        this.runs = runs;
        this.out = out;
        this.delegate = delegate;
        this.input = input;
        this.stop = stop;
        this.timedFlag = timedFlag;
    }

    /** The result file name the extras ask for, or the default when it is missing or not a plain file name. */
    public static String outName(Map<String, ?> extras) {
        Object out = extras.get("out");
        return out instanceof String && OUT_NAME.matcher((String) out).matches() ? (String) out : DEFAULT_OUT;
    }

    /** Parse and check the extras; the message of a BAD_ARGS error names the extra and the fix. */
    public static BenchArgs fromExtras(Map<String, ?> extras) throws BenchError {
        for (String key : extras.keySet()) {
            if (!KEYS.contains(key)) {
                throw bad("unknown extra '" + key + "'; expected model, runtime, threads, warmup, runs, out, "
                        + "delegate, input, min_seconds, max_seconds or timed_flag");
            }
        }
        String model = text(extras, "model", null);
        if (model == null || !model.startsWith("/")) {
            throw bad("--es model PATH is required and must be an absolute device path (got "
                    + (model == null ? "nothing" : "'" + model + "'") + ")");
        }
        String runtime = text(extras, "runtime", null);
        if (runtime == null || !RUNTIMES.contains(runtime)) {
            throw bad("--es runtime must be tflite, executorch or onnx (got "
                    + (runtime == null ? "nothing" : "'" + runtime + "'") + ")");
        }
        int threads = number(extras, "threads", 1, 1);
        int warmup = number(extras, "warmup", 10, 0);
        int runs = number(extras, "runs", 50, 1);
        Object outValue = extras.get("out");
        String out = text(extras, "out", DEFAULT_OUT);
        if (outValue != null && !OUT_NAME.matcher(out).matches()) {
            throw bad("--es out must be a plain file name such as r1.json (letters, digits, . _ -), got '" + out
                    + "'");
        }
        String delegate = text(extras, "delegate", null);
        if (delegate != null && !DELEGATES.contains(delegate)) {
            throw bad("--es delegate must be xnnpack, gpu or nnapi (got '" + delegate + "')");
        }
        String input = text(extras, "input", null);
        if (input != null && !input.startsWith("/")) {
            throw bad("--es input must be an absolute device path to raw float32 data (got '" + input + "')");
        }
        Double minSeconds = seconds(extras, "min_seconds");
        Double maxSeconds = seconds(extras, "max_seconds");
        if (maxSeconds != null && maxSeconds <= 0) {
            throw bad("--ef max_seconds must be > 0 (got " + maxSeconds + ")");
        }
        String timedFlag = text(extras, "timed_flag", null);
        if (timedFlag != null && !OUT_NAME.matcher(timedFlag).matches()) {
            throw bad("--es timed_flag must be a plain file name such as r1.timed, got '" + timedFlag + "'");
        }
        StopRule stop = new StopRule(runs, minSeconds != null ? minSeconds : 0.0, maxSeconds);
        return new BenchArgs(model, runtime, threads, warmup, runs, out, delegate, input, stop, timedFlag);
    }

    /** A number of seconds >= 0 (am's --ef gives a Float, --es a String, --ei an Integer); null when absent. */
    private static Double seconds(Map<String, ?> extras, String key) throws BenchError {
        Object value = extras.get(key);
        double s;
        if (value == null) {
            return null;
        } else if (value instanceof Number) {
            s = ((Number) value).doubleValue();
        } else if (value instanceof String) {
            try {
                s = Double.parseDouble(((String) value).trim());
            } catch (NumberFormatException e) {
                throw bad("--ef " + key + " must be a number of seconds (got '" + value + "')");
            }
        } else {
            throw bad("--ef " + key + " must be a number of seconds (got " + value.getClass().getSimpleName() + ")");
        }
        if (Double.isNaN(s) || Double.isInfinite(s) || s < 0) {
            throw bad("--ef " + key + " must be a number of seconds >= 0 (got " + value + ")");
        }
        return s;
    }

    private static String text(Map<String, ?> extras, String key, String fallback) throws BenchError {
        Object value = extras.get(key);
        if (value == null) {
            return fallback;
        }
        if (!(value instanceof String)) {
            throw bad("--es " + key + " takes a string (got " + value.getClass().getSimpleName() + ")");
        }
        return (String) value;
    }

    private static int number(Map<String, ?> extras, String key, int fallback, int min) throws BenchError {
        Object value = extras.get(key);
        int n;
        if (value == null) {
            return fallback;
        } else if (value instanceof Integer) {
            n = (Integer) value;
        } else if (value instanceof String) {
            try {
                n = Integer.parseInt(((String) value).trim());
            } catch (NumberFormatException e) {
                throw bad("--ei " + key + " must be a whole number (got '" + value + "')");
            }
        } else {
            throw bad("--ei " + key + " must be a whole number (got " + value.getClass().getSimpleName() + ")");
        }
        if (n < min) {
            throw bad("--ei " + key + " must be >= " + min + " (got " + n + ")");
        }
        return n;
    }

    private static BenchError bad(String message) {
        return new BenchError(BenchError.BAD_ARGS, message);
    }
}
