package org.effvit.bench.backends;

import org.effvit.bench.core.Backend;
import org.effvit.bench.core.BenchError;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/**
 * ExecuTorch (org.pytorch:executorch-android) through Module. The .pte files effvit-export writes are fully
 * delegated to XNNPACK, so the delegate is fixed at export time; "gpu"/"nnapi" are refused. Module.load with a
 * thread count sizes the XNNPACK thread pool. The Java API does not expose the input shape, so it is read from the
 * model file name's resolution (effvit-export names artifacts MODEL-HxW-...) and assumed NCHW 1x3xHxW.
 */
public final class ExecuTorchBackend implements Backend {
    /** The AAR version the Gradle build pins (the Java API has no runtime version call). */
    public static final String VERSION = "1.4.1";

    private Module module;
    private long[] shape;
    private EValue input;
    private Tensor last;

    @Override
    public String runtime() {
        return "executorch";
    }

    @Override
    public String version() {
        return VERSION;
    }

    @Override
    public void load(String modelPath, int threads, String delegate) throws Exception {
        if (delegate != null && !"xnnpack".equals(delegate)) {
            throw new BenchError(BenchError.BAD_ARGS, "ExecuTorch .pte files carry their delegate (XNNPACK); "
                    + "--es delegate " + delegate + " cannot apply");
        }
        shape = ShapeFromName.nchw(modelPath);
        module = Module.load(modelPath, Module.LOAD_MODE_MMAP, threads);
        module.loadMethod("forward");
    }

    @Override
    public long[] inputShape() {
        return shape.clone();
    }

    @Override
    public void setInput(float[] data) {
        input = EValue.from(Tensor.fromBlob(data, shape));
    }

    @Override
    public void run() {
        last = module.forward(input)[0].toTensor();
    }

    @Override
    public float[] output() {
        return last.getDataAsFloatArray();
    }

    @Override
    public long[] outputShape() {
        return last.shape();
    }

    @Override
    public void close() {
        if (module != null) {
            module.destroy();
        }
    }
}
