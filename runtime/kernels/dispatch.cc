// Picks the kernel table for the running CPU. Each SIMD table lives in its
// own translation unit compiled with that ISA's flags; it is only called
// after the CPU reports every feature those flags let the compiler use
// (runtime/kernels/CMakeLists.txt lists the flags next to each file).
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/kernels/cpu_features.h"
#include "runtime/kernels/kernels.h"

namespace cria::kernels {

#if defined(CRIA_KERNELS_AVX2)
const KernelTable& avx2_table();
#endif
#if defined(CRIA_KERNELS_AVX512)
const KernelTable& avx512_table();
#endif
#if defined(CRIA_KERNELS_NEON)
const KernelTable& neon_table();
#endif
#if defined(CRIA_KERNELS_NEONDOT)
const KernelTable& neondot_table();
#endif
#if defined(CRIA_KERNELS_I8MM)
const KernelTable& i8mm_table();
#endif
#if defined(CRIA_KERNELS_WASM)
const KernelTable& wasm_table();
#endif

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512vnni";
    case Isa::kNeon: return "neon";
    case Isa::kNeonDot: return "neon-dotprod";
    case Isa::kNeonI8mm: return "neon-i8mm";
    case Isa::kWasmSimd: return "wasm-simd128";
  }
  return "?";
}

std::vector<const KernelTable*> available_tables() {
  std::vector<const KernelTable*> out{&scalar_table()};
  const CpuFeatures& f = cpu_features();
  (void)f;
#if defined(CRIA_KERNELS_AVX2)
  if (f.avx2 && f.fma && f.f16c) out.push_back(&avx2_table());
#endif
#if defined(CRIA_KERNELS_AVX512)
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.fma && f.f16c)
    out.push_back(&avx512_table());
#endif
#if defined(CRIA_KERNELS_NEON)
  out.push_back(&neon_table());
#endif
#if defined(CRIA_KERNELS_NEONDOT)
  if (f.dotprod && f.fp16) out.push_back(&neondot_table());
#endif
#if defined(CRIA_KERNELS_I8MM)
  if (f.dotprod && f.fp16 && f.i8mm) out.push_back(&i8mm_table());
#endif
#if defined(CRIA_KERNELS_WASM)
  out.push_back(&wasm_table());
#endif
  return out;
}

const KernelTable* table_for(Isa isa) {
  for (const KernelTable* t : available_tables())
    if (t->isa == isa) return t;
  return nullptr;
}

const KernelTable& best_table() { return *available_tables().back(); }

const KernelTable* requested_table(std::string* err) {
  const char* want = std::getenv("CRIA_ISA");
  if (!want || !*want) return &best_table();
  std::string names;
  for (const KernelTable* t : available_tables()) {
    if (!std::strcmp(isa_name(t->isa), want)) return t;
    names += (names.empty() ? "" : ", ") + std::string(isa_name(t->isa));
  }
  if (err) {
    *err = std::string("CRIA_ISA=") + want + " is not a kernel table this build and CPU have (valid here: " + names +
           ")";
  }
  return nullptr;
}

}  // namespace cria::kernels
