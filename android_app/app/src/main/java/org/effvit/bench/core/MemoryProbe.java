package org.effvit.bench.core;

import java.io.BufferedReader;
import java.io.FileReader;
import java.io.IOException;

/** Peak resident memory of this process from /proc/self/status (VmHWM), as Linux and Android kernels report it. */
public final class MemoryProbe {
    private MemoryProbe() {
    }

    /** VmHWM in kB, or null where /proc is not readable. */
    public static Long peakRssKb() {
        return field("/proc/self/status", "VmHWM:");
    }

    static Long field(String path, String name) {
        BufferedReader reader = null;
        try {
            reader = new BufferedReader(new FileReader(path));
            String line;
            while ((line = reader.readLine()) != null) {
                if (line.startsWith(name)) {
                    String[] parts = line.substring(name.length()).trim().split("\\s+");
                    return Long.parseLong(parts[0]);
                }
            }
        } catch (IOException | NumberFormatException e) {
            return null;
        } finally {
            if (reader != null) {
                try {
                    reader.close();
                } catch (IOException ignored) {
                    // read already finished
                }
            }
        }
        return null;
    }
}
