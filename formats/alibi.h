// ALiBi numerics in one place (next to rope.h): the per-head slopes as
// transformers' build_alibi_tensor computes them (Falcon, BLOOM), and their
// bf16 rounding. Falcon checkpoints run in bfloat16, so transformers builds
// the bias from bf16 slopes (and rounds position and product too: that part
// is per score and lives with the attention op, runtime/kernels/ops.cc).
#pragma once

#include <cstdint>
#include <vector>

namespace cria {

// The slope of each of num_heads heads, in f32: geometric from
// 2^(-8 / closest) for the largest power of two `closest` <= num_heads, the
// remaining heads interleaved from the sequence for 2 * closest.
std::vector<float> alibi_slopes(uint32_t num_heads);

// The same slopes rounded to bf16 (returned as f32), as the models use them.
std::vector<float> alibi_slopes_bf16(uint32_t num_heads);

}  // namespace cria
