package org.effvit.bench.backends;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.effvit.bench.core.BenchError;

/** 1x3xHxW (or 1xHxWx3 for --nhwc exports) from an artifact name such as efficientvit-b0-224x224-pte-fp32.pte. */
public final class ShapeFromName {
    private static final Pattern RES = Pattern.compile("(?:^|[-_/])(\\d{2,5})x(\\d{2,5})(?:[-_.]|$)");

    private ShapeFromName() {
    }

    public static long[] nchw(String path) throws BenchError {
        String name = path.substring(path.lastIndexOf('/') + 1);
        Matcher m = RES.matcher(name);
        if (!m.find()) {
            throw new BenchError(BenchError.ERROR, "cannot tell the input size of " + name + ": ExecuTorch's Java "
                    + "API does not expose it, so the file name must carry HxW (as effvit-export names it)");
        }
        long h = Long.parseLong(m.group(1));
        long w = Long.parseLong(m.group(2));
        return name.contains("nhwc") ? new long[] {1, h, w, 3} : new long[] {1, 3, h, w};
    }
}
