package org.effvit.bench.core;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Latency summary with the harness's definitions (effvit_deploy/bench/stats.py): median and p90 by linear
 * interpolation between the closest ranks (numpy's default), population standard deviation. The harness
 * recomputes them from samples_ms; the app writes them too so a result file is readable on its own.
 */
public final class Stats {
    private Stats() {
    }

    /** Percentile {@code pct} (0..100) of the values, linear interpolation between ranks. */
    public static double percentile(double[] values, double pct) {
        if (values.length == 0) {
            throw new IllegalArgumentException("no samples");
        }
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        double rank = pct / 100.0 * (sorted.length - 1);
        int lo = (int) Math.floor(rank);
        int hi = Math.min(lo + 1, sorted.length - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    /** {median_ms, mean_ms, p90_ms, min_ms, max_ms, std_ms, n, basis: "samples"}. */
    public static Map<String, Object> summarize(double[] samples) {
        if (samples.length == 0) {
            throw new IllegalArgumentException("no samples");
        }
        double sum = 0;
        double min = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        for (double x : samples) {
            sum += x;
            min = Math.min(min, x);
            max = Math.max(max, x);
        }
        double mean = sum / samples.length;
        double squares = 0;
        for (double x : samples) {
            squares += (x - mean) * (x - mean);
        }
        Map<String, Object> out = new LinkedHashMap<String, Object>();
        out.put("median_ms", percentile(samples, 50));
        out.put("mean_ms", mean);
        out.put("p90_ms", percentile(samples, 90));
        out.put("min_ms", min);
        out.put("max_ms", max);
        out.put("std_ms", Math.sqrt(squares / samples.length));
        out.put("n", samples.length);
        out.put("basis", "samples");
        return out;
    }
}
