plugins {
    id("com.android.application")
}

// Runtime versions, pinned to what reads the artifacts effvit-export writes (see android_app/README.md):
// - LiteRT 2.3.0: the same release as ai-edge-litert 2.3.0, the interpreter our .tflite exports are verified with;
// - ExecuTorch 1.4.1: the same release as the executorch 1.4.1 exporter that writes our .pte files (a .pte needs a
//   runtime at least as new as its exporter);
// - ONNX Runtime 1.32.0: the same release as the onnxruntime 1.32.0 our .onnx exports (opset 18) are verified with.
val litertVersion = "2.3.0"
val executorchVersion = "1.4.1"
val onnxruntimeVersion = "1.32.0"

android {
    namespace = "org.effvit.bench"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.effvit.bench"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            abiFilters += listOf("arm64-v8a")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false // backends are found by class name (ReflectiveBackendFactory)
            // A benchmark tool, not a store app: sign release builds with the debug key so they install as built.
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }

    testOptions {
        unitTests.all {
            // The result schema the harness reads; the core's JUnit tests check every result kind against it.
            it.systemProperty("effvit.schema",
                rootProject.file("../effvit_deploy/bench/app_result_schema.json").absolutePath)
        }
    }
}

dependencies {
    implementation("com.google.ai.edge.litert:litert:$litertVersion")
    implementation("org.pytorch:executorch-android:$executorchVersion")
    implementation("com.microsoft.onnxruntime:onnxruntime-android:$onnxruntimeVersion")
    testImplementation("junit:junit:4.13.2")
}
