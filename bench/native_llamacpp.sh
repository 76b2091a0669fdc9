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
# llama-batched-bench, llama-server and ggml-rpc-server (-DGGML_RPC=ON: the RPC
# backend that spreads layers over machines, bench/mpi_bench.py's peer).
# Idempotent: a build of the same bundle and options is reused; a build of
# the same bundle with other options is reconfigured and built again in
# place (only what the change touches recompiles).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkg=$root/bench/node_modules/node-llama-cpp/llama
bundle=$pkg/gitRelease.bundle
dir=${1:-$root/.cache/llama.cpp-native}
if [ ! -f "$bundle" ]; then
  echo "native_llamacpp: $bundle not found; run scripts/setup --bench first" >&2
  exit 1
fi
bundle_id=$(sha256sum "$bundle" | cut -c1-16)
stamp="$bundle_id native rpc"
bin=$dir/build/bin
want=(llama-bench llama-perplexity llama-batched-bench llama-server ggml-rpc-server)
if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] && [ -x "$bin/ggml-rpc-server" ]; then
  echo "$bin"
  exit 0
fi
# The clone is kept while the bundle is the same; a new bundle starts over.
if [ ! -d "$dir/src/.git" ] || [ "$(cut -d' ' -f1 "$dir/stamp" 2>/dev/null)" != "$bundle_id" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  git clone -q "$bundle" "$dir/src" 2>/dev/null
fi
rm -f "$dir/stamp"
echo "native_llamacpp: building llama.cpp ($(grep -o '"tag": *"[^"]*"' "$pkg/llama.cpp.info.json" 2>/dev/null || echo '?')) in $dir (several minutes)" >&2
cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_RPC=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
  >"$dir/configure.log" 2>&1 || { tail -20 "$dir/configure.log" >&2; exit 1; }
cmake --build "$dir/build" -j "${JOBS:-2}" --target "${want[@]}" >"$dir/build.log" 2>&1 ||
  { tail -20 "$dir/build.log" >&2; exit 1; }
echo "$stamp" >"$dir/stamp"
echo "$bin"
