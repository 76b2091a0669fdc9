// The C API of a model split by layers across instances that the host
// connects itself (cria.h, "a model split by layers across instances"):
// the browser's workers, each with its own wasm32 memory. The layer seam
// is the one runtime/dist uses for MPI ranks: ModelOptions' layer range,
// forward() over a LayerSpan, a KvCache of a layer range, and a
// LayerPipeline installed for the process on the first instance.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cria/cria.h"
#include "formats/layer_stages.h"
#include "runtime/api/c_api_internal.h"
#include "runtime/engine/pipeline.h"
#include "runtime/kernels/kv_rows.h"
#include "runtime/kernels/threadpool.h"
#include "runtime/model/transformer.h"

using cria::api::fail;

struct cria_stage {
  std::shared_ptr<const cria::Model> model;
  const cria::kernels::KernelTable* k = nullptr;
  std::unique_ptr<cria::kernels::ThreadPool> pool;
  cria::KvCache cache;
  cria::ForwardScratch scratch;
  std::vector<cria::BatchEntry> batch;
};

namespace {

std::string name_or(const char* name) { return name ? name : "<memory>"; }

cria::Result<std::unique_ptr<cria::ModelFile>> header_only(const void* head, uint64_t head_size, uint64_t file_size,
                                                           const char* name) {
  return cria::ModelFile::from_extents(static_cast<const uint8_t*>(head), head_size, file_size, {}, name_or(name));
}

void to_entries(const cria_batch_entry* in, int64_t n, std::vector<cria::BatchEntry>* out) {
  out->resize((size_t)n);
  for (int64_t i = 0; i < n; ++i) (*out)[i] = {in[i].token, in[i].pos, in[i].seq, in[i].logits != 0};
}

// The first instance's share of the pipeline: its own layers here, then
// one host call that carries the hidden state through the other instances
// and brings the logits back.
class HostSession : public cria::PipelineSession {
 public:
  HostSession(const cria_pipeline_host& h, int32_t sid, int64_t local_end) : h_(h), sid_(sid), local_end_(local_end) {}
  ~HostSession() override {
    if (h_.close) h_.close(h_.user, sid_);
  }

  cria::Status forward(const cria::LocalStage& st, const cria::BatchEntry* batch, int64_t n, float* logits) override {
    const cria::ModelConfig& c = st.model->config();
    hidden_.resize((size_t)(n * c.hidden_size));
    cria::LayerSpan span;
    span.end = local_end_;
    span.hidden_out = hidden_.data();
    CRIA_RETURN_IF_ERROR(cria::forward(*st.model, *st.k, *st.pool, *st.cache, *st.scratch, batch, n, nullptr, span));
    entries_.resize((size_t)n);
    int32_t want = 0;
    for (int64_t i = 0; i < n; ++i) {
      entries_[i] = {batch[i].token, batch[i].pos, batch[i].seq, batch[i].logits ? 1 : 0};
      want += batch[i].logits ? 1 : 0;
    }
    const char* err = h_.forward(h_.user, sid_, entries_.data(), (int32_t)n, hidden_.data(), (int32_t)c.hidden_size,
                                 logits, want, (int32_t)c.vocab_size);
    if (err) return cria::Error(cria::Code::kIo, err);
    return cria::Status::Ok();
  }

  cria::Status copy_rows(const cria::LocalStage& st, int64_t src, int64_t dst, int64_t n_pos) override {
    st.cache->copy_rows(src, dst, n_pos);
    const char* err = h_.copy_rows(h_.user, sid_, (int32_t)src, (int32_t)dst, (int32_t)n_pos);
    if (err) return cria::Error(cria::Code::kIo, err);
    return cria::Status::Ok();
  }

 private:
  cria_pipeline_host h_;
  int32_t sid_;
  int64_t local_end_;
  std::vector<float> hidden_;
  std::vector<cria_batch_entry> entries_;
};

class HostPipeline : public cria::LayerPipeline {
 public:
  explicit HostPipeline(const cria_pipeline_host& h) : h_(h) {}

  // The layer range was chosen by the host (cria_model_load_ranges): the
  // first stage, which embeds, and which must leave layers to the others.
  cria::Status attach(const cria::ModelFile& f, cria::ModelOptions* opt) override {
    const int64_t end = opt->layer_end < 0 ? (int64_t)f.config().num_layers : opt->layer_end;
    if (opt->layer_begin != 0 || end >= (int64_t)f.config().num_layers)
      return cria::Error(cria::Code::kInvalidArgument,
                         f.path() + ": the first instance of a split model holds layers [0, n) with n below the "
                                    "model's " + std::to_string(f.config().num_layers));
    local_end_ = end;
    return cria::Status::Ok();
  }

  cria::Result<std::unique_ptr<cria::PipelineSession>> open_session(const cria::ModelConfig&, int64_t n_seq,
                                                                     int64_t n_ctx, cria::kernels::KvType kv,
                                                                     int64_t max_tokens) override {
    const int32_t sid = next_sid_++;
    const char* err = h_.open(h_.user, sid, (int32_t)n_seq, (int32_t)n_ctx, cria::kernels::kv_type_name(kv),
                              (int32_t)max_tokens);
    if (err) return cria::Error(cria::Code::kIo, err);
    return std::unique_ptr<cria::PipelineSession>(new HostSession(h_, sid, local_end_));
  }

 private:
  cria_pipeline_host h_;
  int64_t local_end_ = 0;
  int32_t next_sid_ = 1;
};

std::unique_ptr<HostPipeline> g_host;

}  // namespace

extern "C" {

cria_status cria_file_split(const void* head, uint64_t head_size, uint64_t file_size, const char* name,
                            int32_t n_stages, cria_split_stage* stages, cria_byte_range* ranges, size_t ranges_cap,
                            size_t* n_ranges_out) {
  if (!head || !stages || !n_ranges_out)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_file_split: head, stages and n_ranges_out are required");
  auto f = header_only(head, head_size, file_size, name);
  if (!f.ok()) return fail(f.status());
  auto plan = cria::plan_layer_stages(**f, n_stages);
  if (!plan.ok()) return fail(plan.status());
  size_t k = 0;
  for (size_t i = 0; i < plan->size(); ++i) {
    const cria::LayerStage& s = (*plan)[i];
    stages[i] = {s.layer_begin, s.layer_end, s.bytes, (uint32_t)k, (uint32_t)s.ranges.size()};
    for (const cria::ByteRange& r : s.ranges) {
      if (ranges && k < ranges_cap) ranges[k] = {r.offset, r.size};
      ++k;
    }
  }
  *n_ranges_out = k;
  return CRIA_OK;
}

cria_status cria_verifier_create_range(const void* head, uint64_t head_size, uint64_t file_size,
                                       const cria_byte_range* range, const char* name, cria_verifier** out) {
  if (!head || !range || !out)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_verifier_create_range: head, range and out are required");
  // Validates the header (it must all be in head) before trusting its table.
  auto f = header_only(head, head_size, file_size, name);
  if (!f.ok()) return fail(f.status());
  if (range->offset > file_size || range->size > file_size - range->offset)
    return fail(CRIA_ERR_INVALID_ARGUMENT, name_or(name) + ": a byte range lies outside the file");
  auto s = cria::ChecksumStream::for_range(static_cast<const uint8_t*>(head), file_size, name_or(name), range->offset,
                                           range->offset + range->size);
  if (!s.ok()) return fail(s.status());
  auto* v = new cria_verifier();
  v->stream = std::move(s).value();
  *out = v;
  return CRIA_OK;
}

cria_status cria_model_load_ranges(const void* head, uint64_t head_size, uint64_t file_size,
                                   const cria_byte_range* ranges, const void* const* data, size_t n_ranges,
                                   int64_t layer_begin, int64_t layer_end, const char* name, cria_model** out) {
  if (!head || !out || (n_ranges && (!ranges || !data)))
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_model_load_ranges: head, ranges, data and out are required");
  std::vector<cria::ModelFile::Extent> ext;
  for (size_t i = 0; i < n_ranges; ++i)
    ext.push_back({ranges[i].offset, ranges[i].size, static_cast<const uint8_t*>(data[i])});
  auto f = cria::ModelFile::from_extents(static_cast<const uint8_t*>(head), head_size, file_size, std::move(ext),
                                         name_or(name));
  if (!f.ok()) return fail(f.status());
  cria::ModelOptions opt;
  opt.layer_begin = layer_begin;
  opt.layer_end = layer_end;
  return cria::api::finish_load(std::move(f).value(), opt, out);
}

void cria_set_pipeline_host(const cria_pipeline_host* host) {
  g_host = host ? std::make_unique<HostPipeline>(*host) : nullptr;
  cria::set_process_pipeline(g_host.get());
}

cria_status cria_stage_create(const cria_model* m, int32_t threads, int32_t n_seq, int32_t n_ctx, const char* kv_type,
                              int32_t max_tokens, cria_stage** out) {
  if (!m || !out) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_stage_create: model and out are required");
  cria::kernels::KvType kv = cria::kernels::KvType::kF16;
  if (kv_type && *kv_type && !cria::kernels::parse_kv_type(kv_type, &kv))
    return fail(CRIA_ERR_INVALID_ARGUMENT, std::string("unknown KV cache type '") + kv_type + "'");
  if (n_seq < 1 || n_ctx < 1 || max_tokens < 1)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_stage_create: n_seq, n_ctx and max_tokens must be positive");
  std::string err;
  auto s = std::make_unique<cria_stage>();
  s->k = cria::kernels::requested_table(&err);
  if (!s->k) return fail(CRIA_ERR_INVALID_ARGUMENT, err);
  s->model = m->model;
  const cria::Model& model = *s->model;
  cria::Status st = s->cache.init(model.config(), n_seq, n_ctx, kv, model.layer_begin(), model.layer_end());
  if (!st.ok()) return fail(st);
  s->pool = std::make_unique<cria::kernels::ThreadPool>(threads > 0 ? threads : 1);
  s->scratch.init(model, max_tokens, s->pool->threads());
  *out = s.release();
  return CRIA_OK;
}

cria_status cria_stage_forward(cria_stage* s, const cria_batch_entry* batch, int32_t n, const float* hidden_in,
                               float* out) {
  if (!s || !batch || !hidden_in || !out)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_stage_forward: stage, batch, hidden_in and out are required");
  if (n < 1 || n > s->scratch.max_tokens)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_stage_forward: " + std::to_string(n) + " entries, the stage takes 1.." +
                                               std::to_string(s->scratch.max_tokens));
  const cria::Model& m = *s->model;
  to_entries(batch, n, &s->batch);
  cria::LayerSpan span;
  span.begin = m.layer_begin();
  span.end = m.layer_end();
  span.hidden_in = hidden_in;
  const bool last = m.layer_end() == (int64_t)m.config().num_layers;
  if (!last) span.hidden_out = out;
  cria::Status st =
      cria::forward(m, *s->k, *s->pool, s->cache, s->scratch, s->batch.data(), n, last ? out : nullptr, span);
  return st.ok() ? CRIA_OK : fail(st);
}

cria_status cria_stage_copy_rows(cria_stage* s, int32_t src, int32_t dst, int32_t n_pos) {
  if (!s) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_stage_copy_rows: stage is required");
  if (src < 0 || dst < 0 || src >= s->cache.n_seq || dst >= s->cache.n_seq || n_pos < 0 || n_pos > s->cache.n_ctx)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_stage_copy_rows: rows outside the cache");
  s->cache.copy_rows(src, dst, n_pos);
  return CRIA_OK;
}

void cria_stage_free(cria_stage* s) { delete s; }

}  // extern "C"
