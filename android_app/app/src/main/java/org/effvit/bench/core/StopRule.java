package org.effvit.bench.core;

/**
 * When the timed runs stop: at least {@code minRuns} of them AND at least {@code minSeconds}, but never past
 * {@code maxSeconds} (at least one run). The harness's rule (effvit_deploy/bench/stability.py StopRule), restated.
 */
public final class StopRule {
    public final int minRuns;
    public final double minSeconds;
    public final Double maxSeconds; // null: no upper limit

    public StopRule(int minRuns, double minSeconds, Double maxSeconds) {
        this.minRuns = minRuns;
        this.minSeconds = minSeconds;
        this.maxSeconds = maxSeconds;
    }

    /** Have {@code runs} timed runs taking {@code elapsedSeconds} in all run long enough? */
    public boolean done(int runs, double elapsedSeconds) {
        if (maxSeconds != null && runs >= 1 && elapsedSeconds >= maxSeconds) {
            return true;
        }
        return runs >= minRuns && elapsedSeconds >= minSeconds;
    }
}
