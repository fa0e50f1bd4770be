package org.effvit.bench.core;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.Charset;

/**
 * Writes the result where the harness polls for it: whole file under a temporary name, fsync'd, then renamed, so
 * a poll never sees half a file.
 */
public final class ResultFile {
    private ResultFile() {
    }

    public static File write(File dir, String name, String json) throws IOException {
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create result folder " + dir);
        }
        File target = new File(dir, name);
        File tmp = new File(dir, "." + name + ".part");
        FileOutputStream out = new FileOutputStream(tmp);
        try {
            out.write((json + "\n").getBytes(Charset.forName("UTF-8")));
            out.getFD().sync();
        } finally {
            out.close();
        }
        if (!tmp.renameTo(target)) {
            tmp.delete();
            throw new IOException("cannot rename " + tmp + " to " + target);
        }
        return target;
    }
}
