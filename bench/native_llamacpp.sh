#!/usr/bin/env bash
# Builds llama.cpp for this machine from the source node-llama-cpp ships
# (bench/node_modules/node-llama-cpp/llama/gitRelease.bundle, installed by
# `scripts/setup --bench`), the way a user compiling on their board would:
# -DGGML_NATIVE=ON (every ISA extension this CPU has; Q4_0 is repacked at
# load into the interleaved layout its kernels prefer). Nothing is
# downloaded and nothing lands in the repository.
#
#   bench/native_llamacpp.sh [DIR]     # default: .cache/llama.cpp-native
#
# Prints the directory holding llama-bench, llama-perplexity,
# llama-batched-bench and llama-server. Idempotent: a build of the same
# bundle is reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkg=$root/bench/node_modules/node-llama-cpp/llama
bundle=$pkg/gitRelease.bundle
dir=${1:-$root/.cache/llama.cpp-native}
if [ ! -f "$bundle" ]; then
  echo "native_llamacpp: $bundle not found; run scripts/setup --bench first" >&2
  exit 1
fi
stamp="$(sha256sum "$bundle" | cut -c1-16) native"
bin=$dir/build/bin
want=(llama-bench llama-perplexity llama-batched-bench llama-server)
if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] && [ -x "$bin/llama-server" ]; then
  echo "$bin"
  exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
echo "native_llamacpp: building llama.cpp ($(grep -o '"tag": *"[^"]*"' "$pkg/llama.cpp.info.json" 2>/dev/null || echo '?')) in $dir (several minutes)" >&2
git clone -q "$bundle" "$dir/src" 2>/dev/null
cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
  >"$dir/configure.log" 2>&1 || { tail -20 "$dir/configure.log" >&2; exit 1; }
cmake --build "$dir/build" -j "${JOBS:-2}" --target "${want[@]}" >"$dir/build.log" 2>&1 ||
  { tail -20 "$dir/build.log" >&2; exit 1; }
echo "$stamp" >"$dir/stamp"
echo "$bin"
