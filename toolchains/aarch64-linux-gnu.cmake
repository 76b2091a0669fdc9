# Cross build for 64-bit ARM Linux (Debian/Raspberry Pi OS arm64, Jetson):
#
#   scripts/arm64-sysroot                      # arm64 XNNPACK/pthreadpool/cpuinfo -> build-arm64/sysroot
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake
#   cmake --build build-arm64 -j2
#   ctest --test-dir build-arm64 -L unit      # runs under qemu-aarch64-static
#
# Compiler and C library: Debian's g++-aarch64-linux-gnu (/usr/aarch64-linux-gnu).
# Other arm64 libraries: the sysroot made by scripts/arm64-sysroot, given to
# the compiler as --sysroot. That also keeps the host's /usr/include (host
# glibc headers), which the Debian cross compiler otherwise searches last,
# out of the build: with --sysroot it becomes SYSROOT/usr/include, which holds
# only the unpacked arm64 -dev headers.
#
# Cache variables:
#   CRIA_ARM64_SYSROOT  the sysroot (default: build-arm64/sysroot in the source tree,
#                       or $CRIA_ARM64_SYSROOT)
#   CRIA_QEMU_CPU       qemu -cpu model for tests (default empty: qemu's `max`,
#                       which has dotprod and i8mm; `cortex-a53` is ARMv8.0
#                       without dotprod). Empty also lets QEMU_CPU in the
#                       environment choose per run: QEMU_CPU=cortex-a53 ctest ...
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# try_compile() runs this file again in a scratch project: hand it the choices.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CRIA_ARM64_SYSROOT CRIA_QEMU_CPU)

if(NOT CRIA_ARM64_SYSROOT)
  if(DEFINED ENV{CRIA_ARM64_SYSROOT})
    set(_cria_sysroot "$ENV{CRIA_ARM64_SYSROOT}")
  else()
    get_filename_component(_cria_sysroot "${CMAKE_CURRENT_LIST_DIR}/../build-arm64/sysroot" ABSOLUTE)
  endif()
  set(CRIA_ARM64_SYSROOT "${_cria_sysroot}" CACHE PATH "arm64 sysroot made by scripts/arm64-sysroot")
endif()
if(NOT EXISTS "${CRIA_ARM64_SYSROOT}/usr/include/pthreadpool.h")
  message(FATAL_ERROR "No arm64 sysroot at ${CRIA_ARM64_SYSROOT}: run scripts/arm64-sysroot "
                      "(or set CRIA_ARM64_SYSROOT)")
endif()
set(CRIA_QEMU_CPU "" CACHE STRING "qemu -cpu model for running arm64 tests (empty: qemu's default, max)")

set(CMAKE_SYSROOT "${CRIA_ARM64_SYSROOT}")
# Libraries come from the sysroot or the cross C library; programs (flatc,
# python3, node) from the host.
set(CMAKE_FIND_ROOT_PATH "${CRIA_ARM64_SYSROOT}" /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The sysroot's libraries need the cross C library's (libpthread.so.0 ...) at link time.
set(_cria_rpath_link "-Wl,-rpath-link,${CRIA_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,/usr/aarch64-linux-gnu/lib")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_cria_rpath_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${_cria_rpath_link}")

# Binaries find their libraries where the package puts them (scripts/package:
# bin/cria, lib/libcria.so beside lib/libXNNPACK.so.0 ...), with no absolute
# build paths inside; the build tree has the same bin/ and lib/ layout.
# DT_RPATH rather than DT_RUNPATH (--disable-new-dtags): RUNPATH serves only
# the object's own NEEDED entries, and the bundled libXNNPACK.so.0 needs
# libcpuinfo.so.0 from the same lib/ directory.
set(CMAKE_BUILD_WITH_INSTALL_RPATH ON)
set(CMAKE_INSTALL_RPATH "\$ORIGIN/../lib;\$ORIGIN")
string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT " -Wl,--disable-new-dtags")
string(APPEND CMAKE_SHARED_LINKER_FLAGS_INIT " -Wl,--disable-new-dtags")

# Test executables run under user-mode qemu: the cross C library as the ELF
# interpreter's prefix, the sysroot's libraries on the library path.
# CRIA_QEMU_COMMAND (no -cpu) lets tests/arm64 add runs on other CPU models.
find_program(CRIA_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(CRIA_QEMU_AARCH64)
  set(CRIA_QEMU_COMMAND "${CRIA_QEMU_AARCH64}" -L /usr/aarch64-linux-gnu
                        -E "LD_LIBRARY_PATH=${CRIA_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
  set(CMAKE_CROSSCOMPILING_EMULATOR ${CRIA_QEMU_COMMAND})
  if(CRIA_QEMU_CPU)
    list(APPEND CMAKE_CROSSCOMPILING_EMULATOR -cpu "${CRIA_QEMU_CPU}")
  endif()
endif()
