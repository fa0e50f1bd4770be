package org.effvit.bench.core;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

/**
 * The benchmark input: standard-normal noise from a fixed seed (java.util.Random's generator is specified, so
 * every device and the host JVM produce the same values), or raw little-endian float32 from a file (for a parity
 * check against a reference input).
 */
public final class InputData {
    public static final long SEED = 1234L;

    private InputData() {
    }

    /** Number of elements of a shape (dynamic dimensions, reported as <= 0, count as 1). */
    public static int count(long[] shape) throws BenchError {
        long n = 1;
        for (long d : shape) {
            n *= Math.max(d, 1);
            if (n > Integer.MAX_VALUE) {
                throw new BenchError(BenchError.ERROR, "input shape is too large: " + java.util.Arrays.toString(shape));
            }
        }
        return (int) n;
    }

    public static float[] seeded(int n) {
        Random rng = new Random(SEED);
        float[] data = new float[n];
        for (int i = 0; i < n; i++) {
            data[i] = (float) rng.nextGaussian();
        }
        return data;
    }

    /** Read exactly {@code n} float32 values; a file of another size is an error naming both sizes. */
    public static float[] fromFile(String path, int n) throws BenchError {
        File file = new File(path);
        long want = 4L * n;
        if (!file.isFile()) {
            throw new BenchError(BenchError.BAD_ARGS, "input file " + path + " does not exist");
        }
        if (file.length() != want) {
            throw new BenchError(BenchError.BAD_ARGS, "input file " + path + " has " + file.length()
                    + " bytes but the model's input needs " + want + " (" + n + " float32 values)");
        }
        byte[] bytes = new byte[(int) want];
        FileInputStream in = null;
        try {
            in = new FileInputStream(file);
            int off = 0;
            while (off < bytes.length) {
                int got = in.read(bytes, off, bytes.length - off);
                if (got < 0) {
                    throw new IOException("file ended early");
                }
                off += got;
            }
        } catch (IOException e) {
            throw new BenchError(BenchError.ERROR, "cannot read input file " + path + ": " + e.getMessage(), e);
        } finally {
            closeQuietly(in);
        }
        float[] data = new float[n];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(data);
        return data;
    }

    private static void closeQuietly(FileInputStream in) {
        if (in != null) {
            try {
                in.close();
            } catch (IOException ignored) {
                // reading is done; nothing useful to report
            }
        }
    }
}
