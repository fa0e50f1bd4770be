package org.effvit.bench.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.Charset;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import org.junit.Before;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class BenchRunnerTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    private FakeClock clock;
    private FakeBackend backend;
    private Map<String, Object> extras;

    private final BackendFactory factory = new BackendFactory() {
        @Override
        public Backend create(String runtime) throws BenchError {
            if (!"tflite".equals(runtime)) {
                throw new BenchError(BenchError.UNAVAILABLE, "runtime " + runtime + " is unavailable in this build");
            }
            return backend;
        }

        @Override
        public boolean has(String runtime) {
            return "tflite".equals(runtime);
        }
    };

    @Before
    public void setUp() throws IOException {
        clock = new FakeClock();
        backend = new FakeBackend(clock, 12.0, 30, 20, 10, 11, 12, 13);
        File model = tmp.newFile("m-224x224.tflite");
        extras = BenchArgsTest.extras();
        extras.put("model", model.getAbsolutePath());
        extras.put("warmup", 2);
        extras.put("runs", 4);
    }

    private Map<String, Object> run() {
        Map<String, Object> device = new LinkedHashMap<String, Object>();
        device.put("model", "Pixel 4");
        return new BenchRunner(factory, clock, device).run(extras);
    }

    @Test
    public void timesInitFirstWarmupAndSamples() {
        Map<String, Object> r = run();
        assertEquals(r.get("error") + "", "ok", r.get("status"));
        assertEquals(12.0, (Double) r.get("init_ms"), 1e-9);
        assertEquals(30.0, (Double) r.get("first_ms"), 1e-9);
        assertEquals(Arrays.<Object>asList(30.0, 20.0), r.get("warmup_ms"));
        assertTrue(Arrays.equals(new double[] {10, 11, 12, 13}, (double[]) r.get("samples_ms")));
        @SuppressWarnings("unchecked")
        Map<String, Object> stats = (Map<String, Object>) r.get("stats");
        assertEquals(11.5, (Double) stats.get("median_ms"), 1e-9);
        assertEquals(6, backend.runs);
        assertEquals(Arrays.asList("load " + extras.get("model") + " 4 null", "setInput 48"), backend.calls);
        assertEquals("app-litert", r.get("runner"));
        assertEquals("fake-1.0", r.get("runtime_version"));
        assertTrue(backend.closed);
    }

    @Test
    public void feedsTheFixedSeedInputAndDescribesTheOutput() {
        Map<String, Object> r = run();
        Random rng = new Random(1234);
        for (int i = 0; i < backend.input.length; i++) {
            assertEquals((float) rng.nextGaussian(), backend.input[i], 0f);
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> out = (Map<String, Object>) r.get("output");
        assertEquals(7, out.get("argmax"));
        assertEquals(20, out.get("count"));
        assertEquals(BenchRunner.FIRST_VALUES, ((float[]) out.get("first")).length);
        assertEquals(-1f, ((float[]) out.get("first"))[0], 0f);
        assertEquals(Boolean.TRUE, out.get("finite"));
        assertEquals(20, ((float[]) out.get("values")).length);
        assertNull(BenchRunner.describeOutput(new float[BenchRunner.ALL_VALUES_MAX + 1], new long[] {1}).get("values"));
        @SuppressWarnings("unchecked")
        Map<String, Object> input = (Map<String, Object>) r.get("input");
        assertEquals("seed:1234", input.get("source"));
    }

    @Test
    public void readsARawInputFileOfTheRightSize() throws IOException {
        File raw = tmp.newFile("in.f32");
        FileOutputStream o = new FileOutputStream(raw);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(48 * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 48; i++) {
            b.putFloat(i * 0.5f);
        }
        o.write(b.array());
        o.close();
        extras.put("input", raw.getAbsolutePath());
        assertEquals("ok", run().get("status"));
        assertEquals(23.5f, backend.input[47], 0f);
        backend = new FakeBackend(clock, 1, 1);
        backend.shape = new long[] {1, 3, 8, 8};
        Map<String, Object> r = run();
        assertEquals(BenchError.BAD_ARGS, r.get("status"));
        assertTrue((String) r.get("error"), ((String) r.get("error")).contains("needs 768"));
    }

    @Test
    public void unavailableRuntimeIsAResultNotACrash() {
        extras.put("runtime", "executorch");
        Map<String, Object> r = run();
        assertEquals("unavailable", r.get("status"));
        assertTrue(((String) r.get("error")).contains("executorch"));
        assertEquals("app-executorch", r.get("runner"));
        assertTrue(((List<?>) r.get("samples_ms")).isEmpty());
        @SuppressWarnings("unchecked")
        Map<String, Object> backends = (Map<String, Object>) r.get("backends");
        assertEquals(Boolean.TRUE, backends.get("tflite"));
        assertEquals(Boolean.FALSE, backends.get("onnx"));
    }

    @Test
    public void loadAndRunFailuresAreReportedAndTheBackendClosed() {
        backend.failLoad = true;
        Map<String, Object> r = run();
        assertEquals("error", r.get("status"));
        assertEquals("java.lang.IllegalArgumentException: model is corrupt", r.get("error"));
        assertTrue(backend.closed);
        backend = new FakeBackend(clock, 1, 1);
        backend.failRunAt = 3;
        r = run();
        assertEquals("error", r.get("status"));
        assertTrue(((String) r.get("error")).contains("delegate failed at run 3"));
        assertNull(r.get("stats"));
        assertTrue(backend.closed);
    }

    @Test
    public void missingModelAndBadArgs() {
        extras.put("model", "/no/such/model.tflite");
        Map<String, Object> r = run();
        assertEquals("error", r.get("status"));
        assertTrue(((String) r.get("error")).contains("cannot read model /no/such/model.tflite"));
        extras.put("threads", -2);
        r = run();
        assertEquals("bad_args", r.get("status"));
        assertNull(r.get("threads"));
    }

    @Test
    public void reflectiveFactoryReportsMissingClassesAsUnavailable() throws BenchError {
        Map<String, String> classes = new LinkedHashMap<String, String>();
        classes.put("tflite", "org.effvit.bench.backends.NotInThisBuild");
        classes.put("onnx", NoArgBackend.class.getName());
        ReflectiveBackendFactory f = new ReflectiveBackendFactory(classes);
        assertFalse(f.has("tflite"));
        assertFalse(f.has("executorch"));
        assertTrue(f.has("onnx"));
        assertEquals("noarg", f.create("onnx").version());
        try {
            f.create("tflite");
            fail("expected unavailable");
        } catch (BenchError e) {
            assertEquals(BenchError.UNAVAILABLE, e.status);
            assertTrue(e.getMessage().contains("ANDROID_AARS"));
        }
        // The app's own table: this host build has none of the runtime jars.
        assertFalse(new ReflectiveBackendFactory().has("tflite"));
    }

    @Test
    public void resultFileIsWrittenWholeThenRenamed() throws IOException {
        File dir = new File(tmp.getRoot(), "files");
        File f = ResultFile.write(dir, "r1.json", Json.write(run()));
        assertEquals(Arrays.asList("r1.json"), Arrays.asList(dir.list()));
        String text = new String(Files.readAllBytes(f.toPath()), Charset.forName("UTF-8"));
        assertTrue(text.endsWith("}\n"));
        assertNotNull(MiniJson.parse(text));
    }

    // --- the stop rule: runs AND min_seconds, capped by max_seconds --------------------------------------------
    @Test
    public void timedRunsGoOnUntilMinSecondsAfterTheMinimumCount() {
        extras.put("min_seconds", 0.1f); // am --ef gives a Float
        Map<String, Object> r = run();
        assertEquals(r.get("error") + "", "ok", r.get("status"));
        // runs take 10, 11, 12, 13, 13, ... ms: 4 runs are 46 ms, so the rule needs 5 more of 13 ms (111 ms)
        assertTrue(Arrays.equals(new double[] {10, 11, 12, 13, 13, 13, 13, 13, 13}, (double[]) r.get("samples_ms")));
        assertEquals(0.111, (Double) r.get("timed_s"), 1e-9);
        assertEquals(30.0, (Double) r.get("first_ms"), 1e-9);
        @SuppressWarnings("unchecked")
        Map<String, Object> rule = (Map<String, Object>) r.get("stop_rule");
        assertEquals(4, rule.get("min_runs"));
        assertEquals(0.1, (Double) rule.get("min_seconds"), 1e-6);
        assertNull(rule.get("max_seconds"));
    }

    @Test
    public void maxSecondsStopsTheTimedRunsBeforeTheCount() {
        extras.put("runs", 50);
        extras.put("max_seconds", "0.05");
        Map<String, Object> r = run();
        assertEquals(r.get("error") + "", "ok", r.get("status"));
        // 10 + 11 + 12 + 13 = 46 ms < 50 ms, one more run passes the cap
        assertEquals(5, ((double[]) r.get("samples_ms")).length);
        assertEquals(0.059, (Double) r.get("timed_s"), 1e-9);
        assertEquals(7, backend.runs);
    }

    @Test
    public void countOnlyRuleRunsExactlyTheCount() {
        Map<String, Object> r = run();
        assertEquals(4, ((double[]) r.get("samples_ms")).length);
        assertEquals(0.046, (Double) r.get("timed_s"), 1e-9);
    }

    @Test
    public void timedFlagExistsExactlyDuringTheTimedRuns() throws IOException {
        File dir = tmp.newFolder("files");
        backend.watch = new File(dir, "r1.timed");
        extras.put("timed_flag", "r1.timed");
        Map<String, Object> device = new LinkedHashMap<String, Object>();
        Map<String, Object> r = new BenchRunner(factory, clock, device, dir).run(extras);
        assertEquals(r.get("error") + "", "ok", r.get("status"));
        assertEquals(Arrays.asList(false, false, true, true, true, true), backend.watched); // 2 warm-up, 4 timed
        assertFalse(backend.watch.exists());
    }

    // --- the schema file shared with the harness -------------------------------------------------------------
    @Test
    public void everyKindOfResultMatchesTheSharedSchema() throws IOException {
        String path = System.getProperty("effvit.schema");
        assertNotNull("run with -Deffvit.schema=effvit_deploy/bench/app_result_schema.json", path);
        @SuppressWarnings("unchecked")
        Map<String, Object> schema = (Map<String, Object>) MiniJson.parse(
                new String(Files.readAllBytes(new File(path).toPath()), Charset.forName("UTF-8")));
        assertEquals((double) BenchRunner.SCHEMA, schema.get("schema"));
        List<?> statuses = (List<?>) schema.get("statuses");
        checkAgainst(schema, statuses, run());
        extras.put("runtime", "onnx");
        checkAgainst(schema, statuses, run());
        extras.put("runs", 0);
        checkAgainst(schema, statuses, run());
        backend = new FakeBackend(clock, 1, 1);
        backend.failLoad = true;
        extras.put("runtime", "tflite");
        extras.put("runs", 1);
        checkAgainst(schema, statuses, run());
    }

    @SuppressWarnings("unchecked")
    private static void checkAgainst(Map<String, Object> schema, List<?> statuses, Map<String, Object> result) {
        Map<String, Object> parsed = (Map<String, Object>) MiniJson.parse(Json.write(result));
        Map<String, Object> fields = (Map<String, Object>) schema.get("fields");
        assertEquals(fields.keySet(), parsed.keySet());
        checkTypes(fields, parsed);
        assertTrue(statuses.contains(parsed.get("status")));
        if (parsed.get("output") != null) {
            Map<String, Object> output = (Map<String, Object>) parsed.get("output");
            Map<String, Object> outFields = (Map<String, Object>) schema.get("output_fields");
            assertEquals(outFields.keySet(), output.keySet());
            checkTypes(outFields, output);
        }
    }

    private static void checkTypes(Map<String, Object> fields, Map<String, Object> values) {
        for (Map.Entry<String, Object> f : fields.entrySet()) {
            Object v = values.get(f.getKey());
            String type = v == null ? "null" : v instanceof String ? "string" : v instanceof Boolean ? "bool"
                    : v instanceof Map ? "object" : v instanceof List ? "array"
                    : ((Double) v) == Math.rint((Double) v) ? "int" : "number";
            List<?> allowed = (List<?>) f.getValue();
            boolean ok = allowed.contains(type) || ("int".equals(type) && allowed.contains("number"));
            assertTrue(f.getKey() + " is " + type + ", schema allows " + allowed, ok);
        }
    }
}
