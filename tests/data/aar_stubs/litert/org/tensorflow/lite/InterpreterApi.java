package org.tensorflow.lite;

import java.io.File;

/**
 * Test stub with the signatures of LiteRT's org.tensorflow.lite.InterpreterApi that LiteRtBackend calls (as in the
 * litert AAR's classes); bodies do nothing. Packed into a fake AAR to test `make android-app ANDROID_AARS=DIR`.
 */
public interface InterpreterApi extends AutoCloseable {
    void allocateTensors();

    @Override
    void close();

    Tensor getInputTensor(int inputIndex);

    Tensor getOutputTensor(int outputIndex);

    void run(Object input, Object output);

    class Options {
        public Options setNumThreads(int numThreads) {
            return this;
        }

        public Options setUseNNAPI(boolean useNNAPI) {
            return this;
        }

        public Options setUseXNNPACK(boolean useXNNPACK) {
            return this;
        }

        public Options addDelegate(Delegate delegate) {
            return this;
        }
    }

    static InterpreterApi create(File modelFile, Options options) {
        throw new UnsupportedOperationException("stub");
    }
}
