# Test stand-in for the NDK's build/cmake/android.toolchain.cmake (no NDK is reachable here): the host compiler, plus
# what the real file sets that the runners' CMake project relies on: ANDROID, ANDROID_ABI/PLATFORM/STL as given,
# ANDROID_NDK, and find_* confined to the NDK sysroot (so libraries outside it need NO_CMAKE_FIND_ROOT_PATH).
set(ANDROID TRUE)
get_filename_component(ANDROID_NDK "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
set(CMAKE_SYSROOT_STUB "${ANDROID_NDK}/toolchains/llvm/prebuilt/linux-x86_64/sysroot")
set(CMAKE_FIND_ROOT_PATH "${CMAKE_SYSROOT_STUB}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
