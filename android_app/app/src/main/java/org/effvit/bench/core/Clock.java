package org.effvit.bench.core;

/** Monotonic nanoseconds; System.nanoTime in the app, a fake in tests so timing is exact. */
public interface Clock {
    long nanoTime();

    Clock SYSTEM = new Clock() {
        @Override
        public long nanoTime() {
            return System.nanoTime();
        }
    };
}
