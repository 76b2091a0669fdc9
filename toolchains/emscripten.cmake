# WebAssembly build with Debian's Emscripten (3.1.6):
#   cmake -S . -B build-wasm -G Ninja -DCMAKE_TOOLCHAIN_FILE=toolchains/emscripten.cmake \
#         -DCRIA_WASM_THREADS=ON      # pthreads on SharedArrayBuffer (OFF: single-threaded)
# scripts/build-web drives it for both variants.
#
# Every translation unit is compiled with -msimd128: a module holding any
# SIMD instruction only validates on engines with SIMD128 (all current
# browsers and Node), so there is nothing to gain from keeping the rest
# scalar, and the compiler may vectorise the tokenizer and sampler loops.
# Threads need -pthread on every object (atomics and bulk memory) and on the
# link, which find_package(Threads) does not add under Emscripten (its libc
# has pthread_create without a flag).
execute_process(COMMAND em-config EMSCRIPTEN_ROOT OUTPUT_VARIABLE _cria_em_root OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _cria_em_root)
  set(_cria_em_root /usr/share/emscripten)
endif()
include(${_cria_em_root}/cmake/Modules/Platform/Emscripten.cmake)

# Toolchain files are read again for try_compile projects: pass the choice on.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CRIA_WASM_THREADS)

set(_cria_wasm_flags "-msimd128")
if(CRIA_WASM_THREADS)
  string(APPEND _cria_wasm_flags " -pthread")
endif()
set(CMAKE_C_FLAGS_INIT "${_cria_wasm_flags}")
set(CMAKE_CXX_FLAGS_INIT "${_cria_wasm_flags}")
# Executables (the unit tests) grow their memory as needed and run under
# Node. Emscripten's glue is CommonJS, and the repository's package.json makes
# .js files ES modules: the build folder gets a package.json of its own.
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_cria_wasm_flags} -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=4GB")
if(CMAKE_BINARY_DIR AND NOT EXISTS "${CMAKE_BINARY_DIR}/package.json")
  file(WRITE "${CMAKE_BINARY_DIR}/package.json" "{ \"type\": \"commonjs\" }\n")
endif()
set(CRIA_WASM ON CACHE BOOL "WebAssembly build" FORCE)
