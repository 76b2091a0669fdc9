// Conversions between the plain structs of model_meta.h / config.h and the
// FlatBuffer tables of cria.fbs. Internal to formats/.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <vector>

#include "formats/config.h"
#include "formats/cria_generated.h"
#include "formats/model_meta.h"
#include "formats/status.h"
#include "quant/quant.h"

namespace cria {

struct TensorEntry {
  std::string name;
  QType dtype = QType::kF32;
  std::vector<uint64_t> shape;
  uint32_t group = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;
};

// Builds and finishes the Model FlatBuffer (identifier "CRIA"). Every scalar
// is stored, even at its default, so checksums can be patched in place.
void build_model_fb(flatbuffers::FlatBufferBuilder& fbb, const ModelMeta& meta,
                    const std::vector<TensorEntry>& tensors);

ModelConfig config_from_fb(const fb::Config& c);
ModelMeta meta_from_fb(const fb::Model& m);

// Structural checks of the tokenizer section against the vocabulary size
// (offsets monotonic, ids in range) so that building a tokenizer from a file
// that passed can't index out of bounds.
Status validate_tokenizer_fb(const fb::Tokenizer& t, uint32_t vocab_size);

}  // namespace cria
