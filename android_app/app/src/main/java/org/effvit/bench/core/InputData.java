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

    /**
     * Read exactly {@code n} float32 values: raw little-endian, or a .npy file of little-endian float32 in C order
     * (what effvit-export stores as the verification input). Another size is an error naming both sizes.
     */
    public static float[] fromFile(String path, int n) throws BenchError {
        File file = new File(path);
        if (!file.isFile()) {
            throw new BenchError(BenchError.BAD_ARGS, "input file " + path + " does not exist");
        }
        byte[] bytes = readAll(file, path);
        int offset = bytes.length >= 10 && (bytes[0] & 0xff) == 0x93 && bytes[1] == 'N' ? npyDataOffset(bytes, path)
                : 0;
        long want = 4L * n;
        if (bytes.length - offset != want) {
            throw new BenchError(BenchError.BAD_ARGS, "input file " + path + " has " + (bytes.length - offset)
                    + " bytes of data but the model's input needs " + want + " (" + n + " float32 values)");
        }
        float[] data = new float[n];
        ByteBuffer.wrap(bytes, offset, (int) want).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(data);
        return data;
    }

    /** Where a .npy file's data starts; only little-endian float32 in C order is accepted. */
    static int npyDataOffset(byte[] b, String path) throws BenchError {
        int major = b[6];
        int headerLen = major == 1 ? (b[8] & 0xff) | (b[9] & 0xff) << 8
                : (b[8] & 0xff) | (b[9] & 0xff) << 8 | (b[10] & 0xff) << 16 | (b[11] & 0xff) << 24;
        int start = major == 1 ? 10 : 12;
        if (start + headerLen > b.length) {
            throw new BenchError(BenchError.BAD_ARGS, "input file " + path + " is a truncated .npy file");
        }
        String header = new String(b, start, headerLen, java.nio.charset.Charset.forName("ISO-8859-1"));
        if (!header.replace(" ", "").contains("'descr':'<f4'") || header.replace(" ", "").contains(
                "'fortran_order':True")) {
            throw new BenchError(BenchError.BAD_ARGS, "input file " + path + " must hold little-endian float32 in "
                    + "C order; its .npy header says " + header.trim());
        }
        return start + headerLen;
    }

    private static byte[] readAll(File file, String path) throws BenchError {
        if (file.length() > Integer.MAX_VALUE) {
            throw new BenchError(BenchError.BAD_ARGS, "input file " + path + " is too large");
        }
        byte[] bytes = new byte[(int) file.length()];
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
        return bytes;
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
