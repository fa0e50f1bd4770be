#!/usr/bin/env bash
# Builds a signed APK of android_app without Gradle: javac -> dx -> aapt -> zipalign -> apksigner.
#
#   build_apk.sh TOOLS_DIR OUT_DIR [AARS_DIR]
#
# TOOLS_DIR holds android.jar and dx.jar (install_tools.sh). AARS_DIR, when given, is a folder of official runtime
# .aar files (LiteRT, ExecuTorch, ONNX Runtime) a user downloaded: their classes.jar go on the classpath and into
# classes.dex, their jni/<abi>/*.so into lib/<abi>/, and each backend whose runtime API is found is compiled in.
# A backend without its runtime is left out; the app then reports that runtime as "unavailable".
# The build is skipped when its inputs (sources, manifest, this script, the AARs) are unchanged since the last one.
# Output: OUT_DIR/effvit-bench.apk and OUT_DIR/apk-info.json (backends, ABIs, sha256, input hash).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
app=$(cd "$here/.." && pwd)
tools=${1:?usage: build_apk.sh TOOLS_DIR OUT_DIR [AARS_DIR]}
out=${2:?usage: build_apk.sh TOOLS_DIR OUT_DIR [AARS_DIR]}
aars=${3:-}
die() { echo "error: $*" >&2; exit 2; }

for f in "$tools/android.jar" "$tools/dx.jar"; do
    [ -f "$f" ] || die "$f is missing: run \`make android-tools\` (or android_app/offline/install_tools.sh $tools)"
done
for t in javac java aapt zipalign apksigner keytool; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found: run \`make android-tools\`"
done
if [ -n "$aars" ]; then
    [ -d "$aars" ] || die "ANDROID_AARS=$aars is not a folder: give a folder of .aar files"
    aars=$(cd "$aars" && pwd)
    ls "$aars"/*.aar >/dev/null 2>&1 || die "ANDROID_AARS=$aars has no .aar files"
fi

src="$app/app/src/main"
mkdir -p "$out"
out=$(cd "$out" && pwd)
inputs=$( (cd "$app" && find app/src/main offline/build_apk.sh -type f | LC_ALL=C sort | xargs sha256sum;
           [ -z "$aars" ] || sha256sum "$aars"/*.aar) | sha256sum | cut -c1-64)
if [ -f "$out/effvit-bench.apk" ] && [ -f "$out/apk-info.json" ] && grep -q "\"inputs_sha256\": \"$inputs\"" \
        "$out/apk-info.json"; then
    echo "effvit-bench.apk is up to date ($out)"
    exit 0
fi

work="$out/work"
rm -rf "$work"
mkdir -p "$work/classes" "$work/aars" "$work/apk"
classpath="$tools/android.jar"
jars=()
if [ -n "$aars" ]; then
    for aar in "$aars"/*.aar; do
        name=$(basename "$aar" .aar)
        mkdir -p "$work/aars/$name"
        (cd "$work/aars/$name" && unzip -q -o "$aar")
        if [ -f "$work/aars/$name/classes.jar" ]; then
            jars+=("$work/aars/$name/classes.jar")
            classpath="$classpath:$work/aars/$name/classes.jar"
        fi
        if [ -d "$work/aars/$name/jni" ]; then
            mkdir -p "$work/apk/lib"
            cp -r "$work/aars/$name/jni/." "$work/apk/lib/"
        fi
    done
fi

has_class() {  # has_class path/of/Class.class: is it in one of the AAR jars?
    local jar
    for jar in "${jars[@]+"${jars[@]}"}"; do
        unzip -l "$jar" "$1" >/dev/null 2>&1 && return 0
    done
    return 1
}
sources=("$src"/java/org/effvit/bench/core/*.java "$src/java/org/effvit/bench/BenchActivity.java")
backends=()
if has_class org/tensorflow/lite/InterpreterApi.class; then
    backends+=(tflite); sources+=("$src/java/org/effvit/bench/backends/LiteRtBackend.java")
fi
if has_class org/pytorch/executorch/Module.class; then
    backends+=(executorch)
    sources+=("$src/java/org/effvit/bench/backends/ExecuTorchBackend.java"
              "$src/java/org/effvit/bench/backends/ShapeFromName.java")
fi
if has_class ai/onnxruntime/OrtSession.class; then
    backends+=(onnx); sources+=("$src/java/org/effvit/bench/backends/OrtBackend.java")
fi
echo "backends compiled in: ${backends[*]:-none (no runtime AARs given: every runtime reports unavailable)}"

javac --release 8 -nowarn -encoding UTF-8 -cp "$classpath" -d "$work/classes" "${sources[@]}"
# dx reads only Java <= 8 class files; an AAR compiled for a newer Java needs Gradle's d8 instead.
if ! java -cp "$tools/dx.jar" com.android.dx.command.Main --dex --min-sdk-version=24 \
        --output="$work/apk/classes.dex" "$work/classes" "${jars[@]+"${jars[@]}"}" 2>"$work/dx.log"; then
    cat "$work/dx.log" >&2
    die "dx could not convert the classes (an AAR built for Java > 8?): use the Gradle build (android_app/README.md)"
fi

sed 's|<manifest xmlns:android="http://schemas.android.com/apk/res/android">|<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="org.effvit.bench" android:versionCode="1" android:versionName="0.1.0">\n    <uses-sdk android:minSdkVersion="24" android:targetSdkVersion="34" />|' \
    "$src/AndroidManifest.xml" > "$work/AndroidManifest.xml"
grep -q 'package="org.effvit.bench"' "$work/AndroidManifest.xml" || die "could not add the package to the manifest"
aapt package -f -M "$work/AndroidManifest.xml" -I "$tools/android.jar" -F "$work/unsigned.apk"
(cd "$work/apk" && find . -type f | LC_ALL=C sort | sed 's|^\./||' | xargs aapt add "$work/unsigned.apk" >/dev/null)
zipalign -f -p 4 "$work/unsigned.apk" "$work/aligned.apk"

# A debug key made at build time (never committed); kept in OUT_DIR so rebuilds can update an installed app.
keystore="$out/debug.keystore"
if [ ! -f "$keystore" ]; then
    keytool -genkeypair -keystore "$keystore" -storepass android -keypass android -alias effvitdebug \
        -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=effvit bench debug" >/dev/null 2>&1
fi
apksigner sign --ks "$keystore" --ks-pass pass:android --ks-key-alias effvitdebug --min-sdk-version 24 \
    --out "$work/signed.apk" "$work/aligned.apk"
apksigner verify --min-sdk-version 24 "$work/signed.apk"
abis=$(cd "$work/apk" && [ -d lib ] && ls lib | tr '\n' ' ' || true)
mv "$work/signed.apk" "$out/effvit-bench.apk.part"
mv "$out/effvit-bench.apk.part" "$out/effvit-bench.apk"
sha=$(sha256sum "$out/effvit-bench.apk" | cut -c1-64)
list() { local s="" x; for x in "$@"; do s="$s${s:+, }\"$x\""; done; printf '[%s]' "$s"; }
cat > "$out/apk-info.json.part" <<JSON
{"apk": "effvit-bench.apk", "sha256": "$sha", "backends": $(list "${backends[@]+"${backends[@]}"}"), "abis": $(list $abis), "inputs_sha256": "$inputs"}
JSON
mv "$out/apk-info.json.part" "$out/apk-info.json"
rm -rf "$work"
echo "built $out/effvit-bench.apk (sha256 ${sha:0:16}, backends: ${backends[*]:-none})"
