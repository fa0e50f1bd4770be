package org.effvit.bench.core;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Finds backends by class name, so the app compiles and runs whichever backends a build included: the offline
 * build leaves out a backend whose runtime jar was not given, and a class whose runtime library is missing at run
 * time (NoClassDefFoundError, UnsatisfiedLinkError) makes that runtime "unavailable" instead of crashing the app.
 */
public final class ReflectiveBackendFactory implements BackendFactory {
    public static final Map<String, String> APP_BACKENDS = new LinkedHashMap<String, String>();

    static {
        APP_BACKENDS.put("tflite", "org.effvit.bench.backends.LiteRtBackend");
        APP_BACKENDS.put("executorch", "org.effvit.bench.backends.ExecuTorchBackend");
        APP_BACKENDS.put("onnx", "org.effvit.bench.backends.OrtBackend");
    }

    private final Map<String, String> classes;

    public ReflectiveBackendFactory(Map<String, String> classes) {
        this.classes = classes;
    }

    public ReflectiveBackendFactory() {
        this(APP_BACKENDS);
    }

    @Override
    public boolean has(String runtime) {
        String name = classes.get(runtime);
        if (name == null) {
            return false;
        }
        try {
            Class.forName(name, false, getClass().getClassLoader());
            return true;
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    @Override
    public Backend create(String runtime) throws BenchError {
        String name = classes.get(runtime);
        if (name == null) {
            throw unavailable(runtime, "no backend class is registered");
        }
        try {
            return (Backend) Class.forName(name).newInstance();
        } catch (ClassNotFoundException e) {
            throw unavailable(runtime, "this APK was built without it");
        } catch (LinkageError e) {
            throw unavailable(runtime, "its runtime library is missing from the APK (" + e + ")");
        } catch (InstantiationException | IllegalAccessException | ClassCastException e) {
            throw new BenchError(BenchError.ERROR, "backend " + name + " cannot be created: " + e, e);
        }
    }

    private static BenchError unavailable(String runtime, String why) {
        return new BenchError(BenchError.UNAVAILABLE, "runtime " + runtime + " is unavailable in this build: " + why
                + "; build the APK with Gradle (android_app/README.md) or `make android-app ANDROID_AARS=DIR`");
    }
}
