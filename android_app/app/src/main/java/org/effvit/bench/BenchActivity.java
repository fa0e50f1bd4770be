package org.effvit.bench;

import android.app.Activity;
import android.os.Build;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.util.Log;
import android.view.WindowManager;
import android.widget.TextView;

import java.io.File;
import java.util.LinkedHashMap;
import java.util.Map;

import org.effvit.bench.core.BenchArgs;
import org.effvit.bench.core.BenchRunner;
import org.effvit.bench.core.Clock;
import org.effvit.bench.core.Json;
import org.effvit.bench.core.ReflectiveBackendFactory;
import org.effvit.bench.core.ResultFile;

/**
 * Started by the harness with
 * {@code am start -W -n org.effvit.bench/.BenchActivity --es model PATH --es runtime tflite|executorch|onnx
 * --ei threads N --ei warmup N --ei runs N --es out NAME [--es delegate xnnpack|gpu|nnapi] [--ef min_seconds S]
 * [--ef max_seconds S] [--es timed_flag NAME]} (see BenchArgs).
 * The benchmark runs on a worker thread while this activity stays in the foreground with the screen kept on
 * (the scheduler favours a foreground app, which is why phone numbers are taken from an app). The result JSON goes
 * to getExternalFilesDir()/NAME (adb can pull it from /sdcard/Android/data/org.effvit.bench/files/NAME); then the
 * process ends, so every measurement starts in a fresh process like the harness's other runners.
 */
public final class BenchActivity extends Activity {
    static final String TAG = "EffvitBench";

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        getWindow().addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON);
        final TextView view = new TextView(this);
        view.setPadding(32, 32, 32, 32);
        setContentView(view);
        final Map<String, Object> extras = extras(getIntent().getExtras());
        if (extras.isEmpty()) {
            view.setText("effvit bench: start me from the harness (effvit-bench run --runner app)");
            return;
        }
        view.setText("effvit bench: running " + extras.get("runtime") + " on " + extras.get("model"));
        final File dir = resultDir();
        Thread worker = new Thread(new Runnable() {
            @Override
            public void run() {
                BenchRunner runner = new BenchRunner(new ReflectiveBackendFactory(), Clock.SYSTEM, deviceFacts(), dir);
                Map<String, Object> result = runner.run(extras);
                final String summary = write(dir, BenchArgs.outName(extras), result);
                new Handler(Looper.getMainLooper()).post(new Runnable() {
                    @Override
                    public void run() {
                        view.setText(summary);
                        finish();
                        // A fresh process per measurement: peak memory and init time are not carried over.
                        android.os.Process.killProcess(android.os.Process.myPid());
                    }
                });
            }
        }, "effvit-bench");
        worker.start();
    }

    private File resultDir() {
        File dir = getExternalFilesDir(null);
        return dir != null ? dir : getFilesDir();
    }

    private static String write(File dir, String name, Map<String, Object> result) {
        try {
            File file = ResultFile.write(dir, name, Json.write(result));
            Log.i(TAG, "result " + result.get("status") + " written to " + file);
            return "effvit bench: " + result.get("status") + " -> " + file;
        } catch (Exception e) {
            Log.e(TAG, "cannot write the result " + name + " to " + dir, e);
            return "effvit bench: cannot write the result: " + e;
        }
    }

    private static Map<String, Object> extras(Bundle bundle) {
        Map<String, Object> out = new LinkedHashMap<String, Object>();
        if (bundle != null) {
            for (String key : bundle.keySet()) {
                out.put(key, bundle.get(key));
            }
        }
        return out;
    }

    private static Map<String, Object> deviceFacts() {
        Map<String, Object> d = new LinkedHashMap<String, Object>();
        d.put("model", Build.MODEL);
        d.put("manufacturer", Build.MANUFACTURER);
        d.put("hardware", Build.HARDWARE);
        d.put("sdk", Build.VERSION.SDK_INT);
        d.put("release", Build.VERSION.RELEASE);
        d.put("abi", Build.SUPPORTED_ABIS.length > 0 ? Build.SUPPORTED_ABIS[0] : null);
        d.put("cpus", Runtime.getRuntime().availableProcessors());
        return d;
    }
}
