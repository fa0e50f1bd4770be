package org.effvit.bench.core;

import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The benchmark itself, the same on a phone and on the host JVM: load (timed as init), set the input once, run
 * warmup inferences, then timed ones until the stop rule holds (at least runs AND min_seconds, never past
 * max_seconds), each timed around {@code Backend.run} alone (first_ms is the first of all, the timed ones are
 * samples_ms, timed_s their loop's duration, as the harness's Python runner does), then describe the
 * output (checksum and first values, for the device-parity check). Every failure becomes a result with a status
 * and an error text; {@link #run} never throws.
 *
 * Result fields (schema: effvit_deploy/bench/app_result_schema.json): schema, app, app_version, status, error,
 * runner, runtime, runtime_version, delegate, model, threads, warmup, runs, device, backends, init_ms, first_ms,
 * samples_ms, warmup_ms, stats, peak_rss_kb, input, output, wall_ms, stop_rule, timed_s.
 */
public final class BenchRunner {
    public static final int SCHEMA = 2;
    public static final String APP = "org.effvit.bench";
    public static final String APP_VERSION = "0.1.0";
    /** How many leading output values the result carries (enough to compare logits by eye and by code). */
    public static final int FIRST_VALUES = 16;
    /** Outputs up to this many values (classification logits) are written whole, for a full parity check. */
    public static final int ALL_VALUES_MAX = 65536;

    private static final Map<String, String> RUNNER_NAMES = new LinkedHashMap<String, String>();

    static {
        RUNNER_NAMES.put("tflite", "app-litert");
        RUNNER_NAMES.put("executorch", "app-executorch");
        RUNNER_NAMES.put("onnx", "app-onnxruntime");
    }

    private final BackendFactory factory;
    private final Clock clock;
    private final Map<String, Object> device;
    private final File flagDir;

    /** @param device facts about the phone (model, manufacturer, sdk, abi), written as they are. */
    public BenchRunner(BackendFactory factory, Clock clock, Map<String, Object> device) {
        this(factory, clock, device, null);
    }

    /** @param flagDir where the timed_flag extra's file is made (the result folder); null: no flag file. */
    public BenchRunner(BackendFactory factory, Clock clock, Map<String, Object> device, File flagDir) {
        this.factory = factory;
        this.clock = clock;
        this.device = device;
        this.flagDir = flagDir;
    }

    public static String runnerName(String runtime) {
        String name = RUNNER_NAMES.get(runtime);
        return name != null ? name : "app-" + runtime;
    }

    /** Run the benchmark the extras describe; the returned map is the whole result file. */
    public Map<String, Object> run(Map<String, ?> extras) {
        long start = clock.nanoTime();
        Map<String, Object> result = skeleton(extras);
        Backend backend = null;
        try {
            BenchArgs args = BenchArgs.fromExtras(extras);
            result.put("threads", args.threads);
            result.put("warmup", args.warmup);
            result.put("runs", args.runs);
            result.put("delegate", args.delegate);
            Map<String, Object> rule = new LinkedHashMap<String, Object>();
            rule.put("min_runs", args.stop.minRuns);
            rule.put("min_seconds", args.stop.minSeconds);
            rule.put("max_seconds", args.stop.maxSeconds);
            result.put("stop_rule", rule);
            backend = factory.create(args.runtime);
            measure(args, backend, result);
            result.put("status", "ok");
        } catch (BenchError e) {
            result.put("status", e.status);
            result.put("error", e.getMessage());
        } catch (Throwable e) { // a runtime's own exception (or OOM): reported, never a crash of the app
            result.put("status", BenchError.ERROR);
            result.put("error", describe(e));
        } finally {
            if (backend != null) {
                backend.close();
            }
        }
        result.put("peak_rss_kb", MemoryProbe.peakRssKb());
        result.put("wall_ms", ms(clock.nanoTime() - start));
        return result;
    }

    private Map<String, Object> skeleton(Map<String, ?> extras) {
        Map<String, Object> r = new LinkedHashMap<String, Object>();
        Object runtime = extras.get("runtime");
        String rt = runtime instanceof String ? (String) runtime : null;
        r.put("schema", SCHEMA);
        r.put("app", APP);
        r.put("app_version", APP_VERSION);
        r.put("status", BenchError.ERROR);
        r.put("error", null);
        r.put("runner", rt != null ? runnerName(rt) : null);
        r.put("runtime", rt);
        r.put("runtime_version", null);
        r.put("delegate", null);
        r.put("model", extras.get("model") instanceof String ? extras.get("model") : null);
        r.put("threads", null);
        r.put("warmup", null);
        r.put("runs", null);
        r.put("device", device);
        Map<String, Object> backends = new LinkedHashMap<String, Object>();
        for (String name : new String[] {"tflite", "executorch", "onnx"}) {
            backends.put(name, factory.has(name));
        }
        r.put("backends", backends);
        r.put("init_ms", null);
        r.put("first_ms", null);
        r.put("samples_ms", new ArrayList<Object>());
        r.put("warmup_ms", new ArrayList<Object>());
        r.put("stats", null);
        r.put("input", null);
        r.put("output", null);
        r.put("stop_rule", null);
        r.put("timed_s", null);
        return r;
    }

    private void measure(BenchArgs args, Backend backend, Map<String, Object> result) throws Exception {
        result.put("runtime_version", backend.version());
        if (!new java.io.File(args.model).canRead()) {
            throw new BenchError(BenchError.ERROR, "cannot read model " + args.model + " (missing, or the app may "
                    + "not read that folder: push it under /data/local/tmp)");
        }
        long t0 = clock.nanoTime();
        backend.load(args.model, args.threads, args.delegate);
        result.put("init_ms", ms(clock.nanoTime() - t0));
        long[] shape = backend.inputShape();
        int n = InputData.count(shape);
        float[] data = args.input != null ? InputData.fromFile(args.input, n) : InputData.seeded(n);
        backend.setInput(data);
        Map<String, Object> input = new LinkedHashMap<String, Object>();
        input.put("shape", shape);
        input.put("source", args.input != null ? args.input : "seed:" + InputData.SEED);
        result.put("input", input);
        double[] warm = new double[args.warmup];
        for (int i = 0; i < args.warmup; i++) {
            warm[i] = timedRun(backend);
        }
        List<Double> timed = new ArrayList<Double>();
        File flag = args.timedFlag != null && flagDir != null ? new File(flagDir, args.timedFlag) : null;
        long begin;
        long end;
        try {
            if (flag != null && !flag.createNewFile() && !flag.exists()) {
                throw new BenchError(BenchError.ERROR, "cannot create the timed_flag file " + flag);
            }
            begin = clock.nanoTime();
            while (!args.stop.done(timed.size(), (clock.nanoTime() - begin) / 1e9)) {
                timed.add(timedRun(backend));
            }
            end = clock.nanoTime();
        } finally {
            if (flag != null && flag.exists() && !flag.delete()) {
                flag.deleteOnExit();
            }
        }
        double[] samples = new double[timed.size()];
        for (int i = 0; i < samples.length; i++) {
            samples[i] = timed.get(i);
        }
        result.put("first_ms", args.warmup > 0 ? warm[0] : samples[0]);
        result.put("warmup_ms", slice(warm, 0, args.warmup));
        result.put("samples_ms", samples);
        result.put("timed_s", (end - begin) / 1e9);
        result.put("stats", Stats.summarize(samples));
        result.put("output", describeOutput(backend.output(), backend.outputShape()));
    }

    private double timedRun(Backend backend) throws Exception {
        long s = clock.nanoTime();
        backend.run();
        return ms(clock.nanoTime() - s);
    }

    /** Shape, count, sum, sum of |x|, argmax, the first values and (when small) all values of the output. */
    public static Map<String, Object> describeOutput(float[] out, long[] shape) {
        Map<String, Object> o = new LinkedHashMap<String, Object>();
        double sum = 0;
        double absSum = 0;
        int argmax = out.length > 0 ? 0 : -1;
        boolean finite = true;
        for (int i = 0; i < out.length; i++) {
            sum += out[i];
            absSum += Math.abs(out[i]);
            finite &= !Float.isNaN(out[i]) && !Float.isInfinite(out[i]);
            if (out[i] > out[argmax]) {
                argmax = i;
            }
        }
        float[] first = new float[Math.min(FIRST_VALUES, out.length)];
        System.arraycopy(out, 0, first, 0, first.length);
        o.put("shape", shape);
        o.put("count", out.length);
        o.put("sum", sum);
        o.put("abs_sum", absSum);
        o.put("argmax", argmax);
        o.put("finite", finite);
        o.put("first", first);
        o.put("values", out.length <= ALL_VALUES_MAX ? out : null);
        return o;
    }

    private static List<Object> slice(double[] a, int from, int to) {
        List<Object> out = new ArrayList<Object>();
        for (int i = from; i < to; i++) {
            out.add(a[i]);
        }
        return out;
    }

    private static double ms(long nanos) {
        return nanos / 1e6;
    }

    static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder(e.getClass().getName());
        if (e.getMessage() != null) {
            sb.append(": ").append(e.getMessage());
        }
        Throwable cause = e.getCause();
        if (cause != null && cause != e) {
            sb.append(" (caused by ").append(cause.getClass().getName());
            if (cause.getMessage() != null) {
                sb.append(": ").append(cause.getMessage());
            }
            sb.append(')');
        }
        return sb.toString();
    }
}
