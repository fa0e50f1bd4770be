package org.effvit.bench.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.Test;

public class JsonTest {
    @Test
    public void roundTripsThroughAStrictReader() {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        m.put("text", "quote \" backslash \\ newline \n tab \t bell \u0007 é");
        m.put("int", 42);
        m.put("long", 1L << 40);
        m.put("double", 0.125);
        m.put("nan", Double.NaN);
        m.put("inf", Float.POSITIVE_INFINITY);
        m.put("bool", true);
        m.put("null", null);
        m.put("floats", new float[] {0.5f, -2f});
        m.put("longs", new long[] {1, 3, 224, 224});
        m.put("list", Arrays.<Object>asList("a", 1.5));
        @SuppressWarnings("unchecked")
        Map<String, Object> back = (Map<String, Object>) MiniJson.parse(Json.write(m));
        assertEquals(m.get("text"), back.get("text"));
        assertEquals(42.0, back.get("int"));
        assertEquals((double) (1L << 40), back.get("long"));
        assertEquals(0.125, back.get("double"));
        assertNull(back.get("nan"));
        assertNull(back.get("inf"));
        assertEquals(Boolean.TRUE, back.get("bool"));
        assertEquals(Arrays.<Object>asList(0.5, -2.0), back.get("floats"));
        assertEquals(Arrays.<Object>asList(1.0, 3.0, 224.0, 224.0), back.get("longs"));
        assertEquals(Arrays.<Object>asList("a", 1.5), (List<?>) back.get("list"));
        assertEquals(Arrays.asList("text", "int", "long", "double", "nan", "inf", "bool", "null", "floats", "longs",
                "list"), new java.util.ArrayList<String>(back.keySet()));
    }
}
