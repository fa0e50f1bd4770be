package org.effvit.bench.core;

/** A clock that moves only when a test (or a fake backend) advances it, so every timing is exact. */
final class FakeClock implements Clock {
    long now = 1_000_000L;

    @Override
    public long nanoTime() {
        return now;
    }

    void advanceMs(double ms) {
        now += Math.round(ms * 1e6);
    }
}
