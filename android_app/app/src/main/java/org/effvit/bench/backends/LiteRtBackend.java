package org.effvit.bench.backends;

import java.io.File;
import java.lang.reflect.Constructor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

import org.effvit.bench.core.Backend;
import org.effvit.bench.core.BenchError;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Delegate;
import org.tensorflow.lite.InterpreterApi;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.TensorFlowLite;

/**
 * LiteRT (com.google.ai.edge.litert:litert, Java package org.tensorflow.lite) through InterpreterApi. XNNPACK is
 * the interpreter's default CPU path; "nnapi" asks for NNAPI; "gpu" needs the litert-gpu AAR (looked up by name so
 * this class compiles without it).
 */
public final class LiteRtBackend implements Backend {
    private InterpreterApi interpreter;
    private ByteBuffer input;
    private ByteBuffer output;
    private Delegate gpu;

    @Override
    public String runtime() {
        return "tflite";
    }

    @Override
    public String version() {
        return TensorFlowLite.runtimeVersion();
    }

    @Override
    public void load(String modelPath, int threads, String delegate) throws Exception {
        InterpreterApi.Options options = new InterpreterApi.Options().setNumThreads(threads);
        if ("nnapi".equals(delegate)) {
            options.setUseNNAPI(true);
        } else if ("gpu".equals(delegate)) {
            gpu = gpuDelegate();
            options.addDelegate(gpu);
        } else {
            options.setUseXNNPACK(true);
        }
        interpreter = InterpreterApi.create(new File(modelPath), options);
        interpreter.allocateTensors();
        Tensor in = interpreter.getInputTensor(0);
        if (in.dataType() != DataType.FLOAT32) {
            throw new BenchError(BenchError.ERROR, "the app feeds float32 inputs; this model's input is "
                    + in.dataType());
        }
        input = ByteBuffer.allocateDirect(in.numBytes()).order(ByteOrder.nativeOrder());
        output = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes()).order(ByteOrder.nativeOrder());
    }

    private static Delegate gpuDelegate() throws BenchError {
        try {
            Constructor<?> c = Class.forName("org.tensorflow.lite.gpu.GpuDelegate").getConstructor();
            return (Delegate) c.newInstance();
        } catch (ClassNotFoundException e) {
            throw new BenchError(BenchError.UNAVAILABLE, "delegate gpu needs the litert-gpu AAR in the APK");
        } catch (ReflectiveOperationException | LinkageError e) {
            throw new BenchError(BenchError.ERROR, "cannot create the LiteRT GPU delegate: " + e, e);
        }
    }

    @Override
    public long[] inputShape() {
        return longs(interpreter.getInputTensor(0).shape());
    }

    @Override
    public long[] outputShape() {
        return longs(interpreter.getOutputTensor(0).shape());
    }

    @Override
    public void setInput(float[] data) {
        input.rewind();
        input.asFloatBuffer().put(data);
    }

    @Override
    public void run() {
        input.rewind();
        output.rewind();
        interpreter.run(input, output);
    }

    @Override
    public float[] output() {
        output.rewind();
        FloatBuffer fb = output.asFloatBuffer();
        float[] out = new float[fb.remaining()];
        fb.get(out);
        return out;
    }

    @Override
    public void close() {
        if (interpreter != null) {
            interpreter.close();
        }
        if (gpu instanceof AutoCloseable) {
            try {
                ((AutoCloseable) gpu).close();
            } catch (Exception ignored) {
                // closing at exit: nothing left to report
            }
        }
    }

    private static long[] longs(int[] shape) {
        long[] out = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            out[i] = shape[i];
        }
        return out;
    }
}
