#!/usr/bin/env bash
# Installs what `make android-app` needs to build the APK without Gradle, into TOOLS_DIR (a project cache dir):
# - bookworm packages through the system's apt: aapt, zipalign, apksigner, dexdump, junit4 (pinned versions), and
#   a JDK when javac is missing;
# - bullseye's android.jar (libandroid-23-java) and dx (dalvik-exchange), which bookworm lacks, downloaded through
#   a private APT config kept in TOOLS_DIR/apt and unpacked into TOOLS_DIR/root (never installed into the system,
#   so the machine's apt setup and its bookworm packages stay untouched).
# Usage: install_tools.sh TOOLS_DIR
set -euo pipefail
tools=${1:?usage: install_tools.sh TOOLS_DIR}
mkdir -p "$tools"
tools=$(cd "$tools" && pwd)

BOOKWORM_PKGS=(aapt=1:10.0.0+r36-10 zipalign=1:10.0.0+r36-1 apksigner=31.0.2-1 dexdump=11.0.0+r48-5
               junit4=4.13.2-3)
BULLSEYE_PKGS=(dalvik-exchange=10.0.0+r36-1 libandroid-23-java=6.0.1+r72-6)

missing=()
for spec in "${BOOKWORM_PKGS[@]}"; do
    name=${spec%%=*}; want=${spec#*=}
    have=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || true)
    [ "$have" = "$want" ] || missing+=("$spec")
done
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian bookworm)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$tools/android.jar" ] || [ ! -f "$tools/dx.jar" ]; then
    apt_dir="$tools/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.d" "$apt_dir/debs"
    : > "$apt_dir/status"
    # The same Debian mirror the system uses for bookworm, asked for the bullseye suite.
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 == "bookworm" {print $1; exit}')
    if [ -z "$mirror" ]; then
        echo "error: no bookworm source in the system's APT config to take the Debian mirror from" >&2
        exit 2
    fi
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main" \
        > "$apt_dir/sources.list"
    cat > "$apt_dir/apt.conf" <<CONF
Dir::Etc::SourceList "$apt_dir/sources.list";
Dir::Etc::SourceParts "$apt_dir/sources.d";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "$apt_dir/status";
Dir::Cache "$apt_dir/cache";
APT::Architecture "amd64";
APT::Sandbox::User "root";
CONF
    echo "downloading ${BULLSEYE_PKGS[*]} (Debian bullseye, private APT config in $apt_dir)"
    APT_CONFIG="$apt_dir/apt.conf" apt-get update
    (cd "$apt_dir/debs" && APT_CONFIG="$apt_dir/apt.conf" apt-get download "${BULLSEYE_PKGS[@]}")
    rm -rf "$tools/root"
    for deb in "$apt_dir"/debs/*.deb; do
        dpkg-deb -x "$deb" "$tools/root"
    done
    cp "$tools/root/usr/share/java/com.android.android-23.jar" "$tools/android.jar.part"
    cp "$tools/root/usr/share/java/com.android.dx-10.0.0.jar" "$tools/dx.jar.part"
    mv "$tools/android.jar.part" "$tools/android.jar"
    mv "$tools/dx.jar.part" "$tools/dx.jar"
fi
echo "android build tools ready in $tools"
