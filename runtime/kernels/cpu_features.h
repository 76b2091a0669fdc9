// What the running CPU can do, read once (x86: cpuid + xgetbv; ARM64 Linux:
// HWCAP). Used only to pick kernel tables.
#pragma once

namespace cria::kernels {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  bool neon = false, dotprod = false, fp16 = false, i8mm = false;  // fp16: FEAT_FP16 scalar + vector
};

const CpuFeatures& cpu_features();

}  // namespace cria::kernels
