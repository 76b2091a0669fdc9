#include "formats/meta_io.h"

#include <algorithm>
#include <string>

#include "formats/model_file.h"

namespace cria {

namespace {

flatbuffers::Offset<fb::Config> build_config(flatbuffers::FlatBufferBuilder& fbb,
                                             const ModelConfig& c) {
  auto arch_name = fbb.CreateString(c.hf_architecture);
  auto rs = fb::CreateRopeScaling(fbb, (fb::RopeScalingKind)c.rope_scaling.kind,
                                  c.rope_scaling.factor, c.rope_scaling.low_freq_factor,
                                  c.rope_scaling.high_freq_factor,
                                  c.rope_scaling.original_max_position_embeddings);
  fb::ConfigBuilder b(fbb);
  b.add_arch((fb::Arch)c.arch);
  b.add_hf_architecture(arch_name);
  b.add_vocab_size(c.vocab_size);
  b.add_hidden_size(c.hidden_size);
  b.add_intermediate_size(c.intermediate_size);
  b.add_num_layers(c.num_layers);
  b.add_num_heads(c.num_heads);
  b.add_num_kv_heads(c.num_kv_heads);
  b.add_head_dim(c.head_dim);
  b.add_max_position_embeddings(c.max_position_embeddings);
  b.add_norm((fb::NormKind)c.norm);
  b.add_norm_eps(c.norm_eps);
  b.add_block((fb::BlockKind)c.block);
  b.add_position((fb::PositionKind)c.position);
  b.add_rope_theta(c.rope_theta);
  b.add_rope_scaling(rs);
  b.add_mlp((fb::MlpKind)c.mlp);
  b.add_qkv_bias(c.qkv_bias);
  b.add_attn_out_bias(c.attn_out_bias);
  b.add_mlp_bias(c.mlp_bias);
  b.add_tie_word_embeddings(c.tie_word_embeddings);
  return b.Finish();
}

flatbuffers::Offset<fb::Tokenizer> build_tokenizer(flatbuffers::FlatBufferBuilder& fbb,
                                                   const TokenizerData& t) {
  std::vector<uint8_t> bytes;
  std::vector<uint32_t> offsets;
  offsets.reserve(t.vocab.size() + 1);
  for (const std::string& s : t.vocab) {
    offsets.push_back((uint32_t)bytes.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  offsets.push_back((uint32_t)bytes.size());
  std::vector<uint32_t> merges;
  merges.reserve(t.merges.size() * 2);
  for (auto& m : t.merges) {
    merges.push_back(m.first);
    merges.push_back(m.second);
  }
  std::vector<flatbuffers::Offset<fb::PreTokStep>> steps;
  for (const PreTokStep& s : t.pre_tokenizer) {
    steps.push_back(fb::CreatePreTokStep(fbb, (fb::PreTokKind)s.kind, s.use_regex,
                                         s.add_prefix_space, s.individual_digits));
  }
  std::vector<flatbuffers::Offset<fb::AddedToken>> added;
  for (const AddedToken& a : t.added_tokens) {
    added.push_back(fb::CreateAddedToken(fbb, a.id, fbb.CreateString(a.content), a.special,
                                         a.lstrip, a.rstrip, a.single_word, a.normalized));
  }
  auto vb = fbb.CreateVector(bytes);
  auto vo = fbb.CreateVector(offsets);
  auto vm = fbb.CreateVector(merges);
  auto vs = fbb.CreateVector(steps);
  auto va = fbb.CreateVector(added);
  auto ve = fbb.CreateVector(t.eos_ids);
  auto pj = fbb.CreateString(t.pre_tokenizer_json);
  fb::TokenizerBuilder b(fbb);
  b.add_model(fb::TokenizerModel::ByteLevelBPE);
  b.add_token_bytes(vb);
  b.add_token_offsets(vo);
  b.add_merges(vm);
  b.add_ignore_merges(t.ignore_merges);
  b.add_pre_tokenizer(vs);
  b.add_added_tokens(va);
  b.add_add_bos(t.add_bos);
  b.add_bos_id(t.bos_id);
  b.add_eos_ids(ve);
  b.add_pad_id(t.pad_id);
  b.add_pre_tokenizer_json(pj);
  return b.Finish();
}

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

template <typename T>
std::vector<T> vec(const flatbuffers::Vector<T>* v) {
  return v ? std::vector<T>(v->begin(), v->end()) : std::vector<T>();
}

}  // namespace

void build_model_fb(flatbuffers::FlatBufferBuilder& fbb, const ModelMeta& meta,
                    const std::vector<TensorEntry>& tensors) {
  fbb.ForceDefaults(true);
  auto config = build_config(fbb, meta.config);
  auto tok = build_tokenizer(fbb, meta.tokenizer);
  auto chat = fb::CreateChatTemplate(fbb, (fb::ChatKind)meta.chat.kind,
                                     fbb.CreateString(meta.chat.jinja));
  const GenerationDefaults& g = meta.generation;
  auto gen = fb::CreateGenerationDefaults(fbb, g.do_sample, g.temperature, g.top_k, g.top_p,
                                          g.min_p, g.repetition_penalty, g.max_new_tokens,
                                          g.max_length, fbb.CreateVector(g.eos_ids));
  const Provenance& p = meta.provenance;
  auto prov = fb::CreateProvenance(fbb, fbb.CreateString(p.source),
                                   fbb.CreateString(p.source_format),
                                   fbb.CreateString(p.converter_version),
                                   fbb.CreateString(p.quant_recipe));
  std::vector<flatbuffers::Offset<fb::Tensor>> ts;
  ts.reserve(tensors.size());
  for (const TensorEntry& t : tensors) {
    ts.push_back(fb::CreateTensor(fbb, fbb.CreateString(t.name), (fb::DType)t.dtype,
                                  fbb.CreateVector(t.shape), t.group, t.offset, t.size,
                                  t.checksum));
  }
  auto tv = fbb.CreateVectorOfSortedTables(&ts);
  fb::ModelBuilder b(fbb);
  b.add_format_major(kFormatMajor);
  b.add_format_minor(kFormatMinor);
  b.add_config(config);
  b.add_tokenizer(tok);
  b.add_chat_template(chat);
  b.add_generation(gen);
  b.add_provenance(prov);
  b.add_tensors(tv);
  fbb.Finish(b.Finish(), "CRIA");
}

ModelConfig config_from_fb(const fb::Config& c) {
  ModelConfig m;
  m.arch = (Arch)c.arch();
  m.hf_architecture = str(c.hf_architecture());
  m.vocab_size = c.vocab_size();
  m.hidden_size = c.hidden_size();
  m.intermediate_size = c.intermediate_size();
  m.num_layers = c.num_layers();
  m.num_heads = c.num_heads();
  m.num_kv_heads = c.num_kv_heads();
  m.head_dim = c.head_dim();
  m.max_position_embeddings = c.max_position_embeddings();
  m.norm = (NormKind)c.norm();
  m.norm_eps = c.norm_eps();
  m.block = (BlockKind)c.block();
  m.position = (PositionKind)c.position();
  m.rope_theta = c.rope_theta();
  if (const fb::RopeScaling* r = c.rope_scaling()) {
    m.rope_scaling.kind = (RopeScalingKind)r->kind();
    m.rope_scaling.factor = r->factor();
    m.rope_scaling.low_freq_factor = r->low_freq_factor();
    m.rope_scaling.high_freq_factor = r->high_freq_factor();
    m.rope_scaling.original_max_position_embeddings = r->original_max_position_embeddings();
  }
  m.mlp = (MlpKind)c.mlp();
  m.qkv_bias = c.qkv_bias();
  m.attn_out_bias = c.attn_out_bias();
  m.mlp_bias = c.mlp_bias();
  m.tie_word_embeddings = c.tie_word_embeddings();
  return m;
}

ModelMeta meta_from_fb(const fb::Model& m) {
  ModelMeta out;
  if (m.config()) out.config = config_from_fb(*m.config());
  if (const fb::Tokenizer* t = m.tokenizer()) {
    TokenizerData& d = out.tokenizer;
    const auto* bytes = t->token_bytes();
    const auto* offs = t->token_offsets();
    if (bytes && offs && offs->size() > 0) {
      d.vocab.reserve(offs->size() - 1);
      for (uint32_t i = 0; i + 1 < offs->size(); ++i) {
        d.vocab.emplace_back(reinterpret_cast<const char*>(bytes->data()) + offs->Get(i),
                             offs->Get(i + 1) - offs->Get(i));
      }
    }
    if (const auto* mg = t->merges()) {
      d.merges.reserve(mg->size() / 2);
      for (uint32_t i = 0; i + 1 < mg->size(); i += 2) d.merges.emplace_back(mg->Get(i), mg->Get(i + 1));
    }
    d.ignore_merges = t->ignore_merges();
    if (const auto* steps = t->pre_tokenizer()) {
      for (const fb::PreTokStep* s : *steps) {
        d.pre_tokenizer.push_back({(PreTokKind)s->kind(), s->use_regex(), s->add_prefix_space(),
                                   s->individual_digits()});
      }
    }
    if (const auto* added = t->added_tokens()) {
      for (const fb::AddedToken* a : *added) {
        d.added_tokens.push_back({a->id(), str(a->content()), a->special(), a->lstrip(), a->rstrip(),
                                  a->single_word(), a->normalized()});
      }
    }
    d.add_bos = t->add_bos();
    d.bos_id = t->bos_id();
    d.eos_ids = vec(t->eos_ids());
    d.pad_id = t->pad_id();
    d.pre_tokenizer_json = str(t->pre_tokenizer_json());
  }
  if (const fb::ChatTemplate* c = m.chat_template()) {
    out.chat.kind = (ChatKind)c->kind();
    out.chat.jinja = str(c->jinja());
  }
  if (const fb::GenerationDefaults* g = m.generation()) {
    GenerationDefaults& d = out.generation;
    d.do_sample = g->do_sample();
    d.temperature = g->temperature();
    d.top_k = g->top_k();
    d.top_p = g->top_p();
    d.min_p = g->min_p();
    d.repetition_penalty = g->repetition_penalty();
    d.max_new_tokens = g->max_new_tokens();
    d.max_length = g->max_length();
    d.eos_ids = vec(g->eos_ids());
  }
  if (const fb::Provenance* p = m.provenance()) {
    out.provenance = {str(p->source()), str(p->source_format()), str(p->converter_version()),
                      str(p->quant_recipe())};
  }
  return out;
}

Status validate_tokenizer_fb(const fb::Tokenizer& t, uint32_t vocab_size) {
  auto bad = [](const std::string& what) { return Error(Code::kCorrupt, "bad tokenizer: " + what); };
  if ((int)t.model() != (int)fb::TokenizerModel::ByteLevelBPE) return bad("unknown model type");
  const auto* bytes = t.token_bytes();
  const auto* offs = t.token_offsets();
  if (!bytes || !offs || offs->size() < 2) return bad("no vocabulary");
  const uint32_t n = offs->size() - 1;
  if (n > vocab_size)
    return bad("vocabulary has " + std::to_string(n) + " tokens but the model's vocab_size is " +
               std::to_string(vocab_size));
  uint32_t prev = 0;
  for (uint32_t i = 0; i <= n; ++i) {
    uint32_t o = offs->Get(i);
    if (o < prev || o > bytes->size()) return bad("token offsets out of order or out of range");
    prev = o;
  }
  if (const auto* m = t.merges()) {
    if (m->size() % 2) return bad("odd number of merge ids");
    for (uint32_t id : *m)
      if (id >= n) return bad("merge refers to token " + std::to_string(id) + " beyond the vocabulary");
  }
  if (const auto* steps = t.pre_tokenizer()) {
    for (const fb::PreTokStep* s : *steps)
      if ((int)s->kind() > (int)fb::PreTokKind::MAX) return bad("unknown pre-tokenizer step");
  }
  if (const auto* added = t.added_tokens()) {
    for (const fb::AddedToken* a : *added) {
      if (a->id() >= n) return bad("added token id " + std::to_string(a->id()) + " beyond the vocabulary");
      if (!a->content() || a->content()->size() == 0) return bad("added token with empty content");
    }
  }
  if (t.bos_id() >= (int)n || t.bos_id() < -1) return bad("bos id out of range");
  if (t.pad_id() >= (int)n || t.pad_id() < -1) return bad("pad id out of range");
  if (const auto* e = t.eos_ids())
    for (uint32_t id : *e)
      if (id >= n) return bad("eos id " + std::to_string(id) + " out of range");
  return Status::Ok();
}

}  // namespace cria
