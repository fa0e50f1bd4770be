package org.effvit.bench.backends;

import java.nio.FloatBuffer;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;

import org.effvit.bench.core.Backend;
import org.effvit.bench.core.BenchError;

/**
 * ONNX Runtime (com.microsoft.onnxruntime:onnxruntime-android) through OrtSession: CPU provider with intra-op
 * threads = threads and one inter-op thread (as the harness's Python runner); "xnnpack" adds the XNNPACK execution
 * provider with the same thread count, "nnapi" the NNAPI provider.
 */
public final class OrtBackend implements Backend {
    private OrtEnvironment env;
    private OrtSession session;
    private String inputName;
    private long[] shape;
    private OnnxTensor input;
    private OrtSession.Result last;
    private float[] lastOutput;
    private long[] lastShape;

    @Override
    public String runtime() {
        return "onnx";
    }

    @Override
    public String version() {
        return OrtEnvironment.getEnvironment().getVersion();
    }

    @Override
    public void load(String modelPath, int threads, String delegate) throws Exception {
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setIntraOpNumThreads(threads);
        options.setInterOpNumThreads(1);
        options.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
        if ("xnnpack".equals(delegate)) {
            Map<String, String> xnn = new HashMap<String, String>();
            xnn.put("intra_op_num_threads", Integer.toString(threads));
            options.addXnnpack(xnn);
        } else if ("nnapi".equals(delegate)) {
            options.addNnapi();
        } else if ("gpu".equals(delegate)) {
            throw new BenchError(BenchError.UNAVAILABLE, "ONNX Runtime has no gpu delegate on Android; use nnapi");
        }
        session = env.createSession(modelPath, options);
        Map.Entry<String, NodeInfo> first = session.getInputInfo().entrySet().iterator().next();
        inputName = first.getKey();
        shape = ((TensorInfo) first.getValue().getInfo()).getShape().clone();
        for (int i = 0; i < shape.length; i++) {
            shape[i] = Math.max(shape[i], 1); // dynamic dimensions (-1) run as 1
        }
    }

    @Override
    public long[] inputShape() {
        return shape.clone();
    }

    @Override
    public void setInput(float[] data) throws Exception {
        input = OnnxTensor.createTensor(env, FloatBuffer.wrap(data), shape);
    }

    @Override
    public void run() throws Exception {
        if (last != null) {
            last.close();
        }
        last = session.run(Collections.singletonMap(inputName, input));
    }

    @Override
    public float[] output() throws Exception {
        if (lastOutput == null) {
            OnnxTensor out = (OnnxTensor) last.get(0);
            lastShape = ((TensorInfo) out.getInfo()).getShape();
            FloatBuffer fb = out.getFloatBuffer();
            lastOutput = new float[fb.remaining()];
            fb.get(lastOutput);
        }
        return lastOutput;
    }

    @Override
    public long[] outputShape() throws Exception {
        output();
        return lastShape;
    }

    @Override
    public void close() {
        try {
            if (last != null) {
                last.close();
            }
            if (input != null) {
                input.close();
            }
            if (session != null) {
                session.close();
            }
        } catch (Exception ignored) {
            // closing at exit: nothing left to report
        }
    }
}
