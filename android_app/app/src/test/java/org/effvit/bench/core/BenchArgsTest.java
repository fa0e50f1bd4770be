package org.effvit.bench.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.HashMap;
import java.util.Map;

import org.junit.Test;

public class BenchArgsTest {
    static Map<String, Object> extras() {
        Map<String, Object> e = new HashMap<String, Object>();
        e.put("model", "/data/local/tmp/effvit/models/ab-efficientvit-b0-224x224-tflite-fp32.tflite");
        e.put("runtime", "tflite");
        e.put("threads", 4);
        e.put("warmup", 3);
        e.put("runs", 7);
        e.put("out", "r1.json");
        return e;
    }

    static String badArgs(Map<String, Object> e) {
        try {
            BenchArgs.fromExtras(e);
        } catch (BenchError err) {
            assertEquals(BenchError.BAD_ARGS, err.status);
            return err.getMessage();
        }
        fail("expected bad_args for " + e);
        return null;
    }

    @Test
    public void parsesTheHarnessExtras() throws BenchError {
        BenchArgs a = BenchArgs.fromExtras(extras());
        assertEquals("tflite", a.runtime);
        assertEquals(4, a.threads);
        assertEquals(3, a.warmup);
        assertEquals(7, a.runs);
        assertEquals("r1.json", a.out);
        assertNull(a.delegate);
        assertNull(a.input);
    }

    @Test
    public void numbersGivenAsStringsAndDefaults() throws BenchError {
        Map<String, Object> e = extras();
        e.put("threads", " 2");
        e.remove("warmup");
        e.remove("runs");
        e.remove("out");
        e.put("delegate", "nnapi");
        BenchArgs a = BenchArgs.fromExtras(e);
        assertEquals(2, a.threads);
        assertEquals(10, a.warmup);
        assertEquals(50, a.runs);
        assertEquals(BenchArgs.DEFAULT_OUT, a.out);
        assertEquals("nnapi", a.delegate);
    }

    @Test
    public void refusesBadValuesNamingTheExtra() {
        Map<String, Object> e = extras();
        e.remove("model");
        assertTrue(badArgs(e).contains("--es model"));
        e = extras();
        e.put("model", "relative.tflite");
        assertTrue(badArgs(e).contains("absolute"));
        e = extras();
        e.put("runtime", "coreml");
        assertTrue(badArgs(e).contains("'coreml'"));
        e = extras();
        e.put("threads", 0);
        assertTrue(badArgs(e).contains("threads must be >= 1"));
        e = extras();
        e.put("runs", "many");
        assertTrue(badArgs(e).contains("whole number"));
        e = extras();
        e.put("warmup", -1);
        assertTrue(badArgs(e).contains("warmup must be >= 0"));
        e = extras();
        e.put("delegate", "hexagon");
        assertTrue(badArgs(e).contains("delegate"));
        e = extras();
        e.put("thread", 4);
        assertTrue(badArgs(e).contains("unknown extra 'thread'"));
        e = extras();
        e.put("runtime", 3);
        assertTrue(badArgs(e).contains("takes a string"));
    }

    @Test
    public void stopRuleExtras() throws BenchError {
        BenchArgs plain = BenchArgs.fromExtras(extras());
        assertEquals(7, plain.stop.minRuns);
        assertEquals(0.0, plain.stop.minSeconds, 0);
        assertNull(plain.stop.maxSeconds);
        assertNull(plain.timedFlag);
        Map<String, Object> e = extras();
        e.put("min_seconds", 2.5f);
        e.put("max_seconds", " 30");
        e.put("timed_flag", "r1.timed");
        BenchArgs a = BenchArgs.fromExtras(e);
        assertEquals(2.5, a.stop.minSeconds, 0);
        assertEquals(30.0, a.stop.maxSeconds, 0);
        assertEquals("r1.timed", a.timedFlag);
        assertTrue(a.stop.done(7, 2.5));
        assertTrue(!a.stop.done(7, 2.4) && !a.stop.done(6, 2.6));
        assertTrue(a.stop.done(1, 30.0));
        e.put("min_seconds", -1);
        assertTrue(badArgs(e).contains("min_seconds"));
        e.put("min_seconds", "soon");
        assertTrue(badArgs(e).contains("min_seconds"));
        e.remove("min_seconds");
        e.put("max_seconds", 0);
        assertTrue(badArgs(e).contains("max_seconds must be > 0"));
        e.remove("max_seconds");
        e.put("timed_flag", "../escape");
        assertTrue(badArgs(e).contains("timed_flag"));
    }

    @Test
    public void outMustBeAPlainFileName() {
        for (String bad : new String[] {"../x.json", "/sdcard/x.json", "a/b.json", ".hidden", "", "x y.json"}) {
            Map<String, Object> e = extras();
            e.put("out", bad);
            assertTrue(bad, badArgs(e).contains("--es out"));
            assertEquals(BenchArgs.DEFAULT_OUT, BenchArgs.outName(e));
        }
        assertEquals("r1.json", BenchArgs.outName(extras()));
    }
}
