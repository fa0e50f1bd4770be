package org.pytorch.executorch;

/**
 * Test stub with the signatures of ExecuTorch's Android Module (as in executorch-android's Module.java) that
 * ExecuTorchBackend calls; bodies do nothing. Packed into a fake AAR to test `make android-app ANDROID_AARS=DIR`.
 */
public class Module {
    public static final int LOAD_MODE_FILE = 0;
    public static final int LOAD_MODE_MMAP = 1;

    public static Module load(final String modelPath, int loadMode, int numThreads) {
        return new Module();
    }

    public void loadMethod(String methodName) {
    }

    public EValue[] forward(EValue... inputs) {
        return inputs;
    }

    public void destroy() {
    }
}
