package org.effvit.bench.core;

import static org.junit.Assert.assertEquals;

import java.util.Map;

import org.junit.Test;

public class StatsTest {
    @Test
    public void percentilesInterpolateLikeNumpy() {
        double[] x = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
        assertEquals(9.1, Stats.percentile(x, 90), 1e-12);
        assertEquals(5.5, Stats.percentile(x, 50), 1e-12);
        assertEquals(1.0, Stats.percentile(x, 0), 1e-12);
        assertEquals(10.0, Stats.percentile(x, 100), 1e-12);
        assertEquals(3.0, Stats.percentile(new double[] {3}, 90), 1e-12);
    }

    @Test
    public void summaryUsesThePopulationStd() {
        Map<String, Object> s = Stats.summarize(new double[] {2, 4, 4, 4, 5, 5, 7, 9});
        assertEquals(2.0, (Double) s.get("std_ms"), 1e-12);
        assertEquals(5.0, (Double) s.get("mean_ms"), 1e-12);
        assertEquals(4.5, (Double) s.get("median_ms"), 1e-12);
        assertEquals(2.0, (Double) s.get("min_ms"), 0);
        assertEquals(9.0, (Double) s.get("max_ms"), 0);
        assertEquals(8, s.get("n"));
        assertEquals("samples", s.get("basis"));
        assertEquals(0.0, (Double) Stats.summarize(new double[] {1.5}).get("std_ms"), 0);
    }

    @Test(expected = IllegalArgumentException.class)
    public void noSamplesIsAnError() {
        Stats.summarize(new double[0]);
    }
}
