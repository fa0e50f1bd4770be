package org.effvit.bench.host;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.text.SimpleDateFormat;
import java.util.Arrays;
import java.util.Date;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

import org.effvit.bench.core.Backend;
import org.effvit.bench.core.BackendFactory;
import org.effvit.bench.core.BenchArgs;
import org.effvit.bench.core.BenchError;
import org.effvit.bench.core.BenchRunner;
import org.effvit.bench.core.Clock;
import org.effvit.bench.core.Json;
import org.effvit.bench.core.ResultFile;

/**
 * What the adb emulator's `am start` runs in place of BenchActivity: the app's own core (same argument parsing,
 * timing loop and JSON writer, so the harness reads exactly what the app writes) on the host JVM, with
 * EmulatedBackend for the runtimes this emulated APK "has".
 *
 *   java StandInMain --files-dir DIR --logcat FILE --backends tflite,onnx --fault none|crash|hang
 *       --device-model NAME [--es KEY VALUE | --ei KEY N | --ef KEY X]...
 */
public final class StandInMain {
    private StandInMain() {
    }

    public static void main(String[] argv) throws Exception {
        String filesDir = null;
        String logcat = null;
        String fault = "none";
        String model = "emulated";
        final Set<String> backends = new HashSet<String>();
        Map<String, Object> extras = new LinkedHashMap<String, Object>();
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if ("--files-dir".equals(a)) {
                filesDir = argv[++i];
            } else if ("--logcat".equals(a)) {
                logcat = argv[++i];
            } else if ("--fault".equals(a)) {
                fault = argv[++i];
            } else if ("--device-model".equals(a)) {
                model = argv[++i];
            } else if ("--backends".equals(a)) {
                String list = argv[++i];
                if (!list.isEmpty()) {
                    backends.addAll(Arrays.asList(list.split(",")));
                }
            } else if ("--es".equals(a)) {
                extras.put(argv[i + 1], argv[i + 2]);
                i += 2;
            } else if ("--ei".equals(a)) {
                extras.put(argv[i + 1], Integer.valueOf(argv[i + 2]));
                i += 2;
            } else if ("--ef".equals(a)) {
                extras.put(argv[i + 1], Float.valueOf(argv[i + 2]));
                i += 2;
            } else {
                throw new IllegalArgumentException("stand-in: unknown argument " + a);
            }
        }
        PrintStream log = new PrintStream(new FileOutputStream(logcat, true), true, "UTF-8");
        log(log, "I", "ActivityManager", "Start proc org.effvit.bench for activity org.effvit.bench/.BenchActivity");
        if ("crash".equals(fault)) {
            log(log, "E", "AndroidRuntime", "FATAL EXCEPTION: effvit-bench");
            log(log, "E", "AndroidRuntime", "Process: org.effvit.bench, PID: 0");
            log(log, "E", "AndroidRuntime", "java.lang.IllegalStateException: emulated crash in the runtime");
            System.exit(1);
        }
        if ("hang".equals(fault)) {
            log(log, "I", "EffvitBench", "emulated hang: the benchmark never finishes");
            Thread.sleep(Long.MAX_VALUE);
        }
        Map<String, Object> device = new LinkedHashMap<String, Object>();
        device.put("model", model);
        device.put("emulated", true);
        BackendFactory factory = new BackendFactory() {
            @Override
            public Backend create(String runtime) throws BenchError {
                if (!backends.contains(runtime)) {
                    throw new BenchError(BenchError.UNAVAILABLE, "runtime " + runtime
                            + " is unavailable in this build: this APK was built without it");
                }
                return new EmulatedBackend(runtime);
            }

            @Override
            public boolean has(String runtime) {
                return backends.contains(runtime);
            }
        };
        Map<String, Object> result = new BenchRunner(factory, Clock.SYSTEM, device, new File(filesDir)).run(extras);
        try {
            File file = ResultFile.write(new File(filesDir), BenchArgs.outName(extras), Json.write(result));
            log(log, "I", "EffvitBench", "result " + result.get("status") + " written to " + file);
        } catch (IOException e) {
            log(log, "E", "EffvitBench", "cannot write the result: " + e);
        }
    }

    private static void log(PrintStream log, String level, String tag, String message) {
        String now = new SimpleDateFormat("MM-dd HH:mm:ss.SSS").format(new Date());
        log.println(now + "  4242  4242 " + level + " " + tag + ": " + message);
    }
}
