// The C API: handles around Model / Tokenizer / Session, and the glue that
// turns a request (prompt or messages, transformers-style options) into
// token ids, stop conditions and sampling parameters.
#include "cria/cria.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "formats/checksum_stream.h"
#include "runtime/api/c_api_internal.h"
#ifdef CRIA_HAVE_CONVERTER
#include "formats/convert.h"
#endif
#include "runtime/engine/session.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/chat.h"
#include "runtime/tokenizer/tokenizer.h"

struct cria_session {
  cria_model* model = nullptr;
  std::unique_ptr<cria::Session> s;
};

namespace cria::api {

thread_local std::string g_error;

// The C enums are the ABI: their values are fixed in cria.h and mapped here
// case by case, never cast, so renumbering a C++ enum cannot change them.
cria_status to_c(cria::Code c) {
  switch (c) {
    case cria::Code::kOk: return CRIA_OK;
    case cria::Code::kInvalidArgument: return CRIA_ERR_INVALID_ARGUMENT;
    case cria::Code::kNotFound: return CRIA_ERR_NOT_FOUND;
    case cria::Code::kIo: return CRIA_ERR_IO;
    case cria::Code::kCorrupt: return CRIA_ERR_CORRUPT;
    case cria::Code::kUnsupported: return CRIA_ERR_UNSUPPORTED;
    case cria::Code::kOutOfRange: return CRIA_ERR_OUT_OF_RANGE;
    case cria::Code::kCancelled: return CRIA_ERR_CANCELLED;
    case cria::Code::kOutOfMemory: return CRIA_ERR_OUT_OF_MEMORY;
    case cria::Code::kInternal: return CRIA_ERR_INTERNAL;
  }
  return CRIA_ERR_INTERNAL;
}

cria_stop_reason to_c(cria::StopReason r) {
  switch (r) {
    case cria::StopReason::kNone: return CRIA_STOP_NONE;
    case cria::StopReason::kEos: return CRIA_STOP_EOS;
    case cria::StopReason::kMaxTokens: return CRIA_STOP_MAX_TOKENS;
    case cria::StopReason::kStopString: return CRIA_STOP_STRING;
    case cria::StopReason::kContextFull: return CRIA_STOP_CONTEXT_FULL;
    case cria::StopReason::kCancelled: return CRIA_STOP_CANCELLED;
    case cria::StopReason::kCallback: return CRIA_STOP_CALLBACK;
  }
  return CRIA_STOP_NONE;
}

cria_status fail(const cria::Status& s) {
  g_error = s.message();
  return to_c(s.code());
}

cria_status fail(cria_status code, const std::string& msg) {
  g_error = msg;
  return code;
}

cria_status finish_load(std::unique_ptr<cria::ModelFile> file, cria::ModelOptions opt, cria_model** out) {
  // Under MPI (runtime/dist) this process holds only its share of the layers.
  if (cria::LayerPipeline* p = cria::process_pipeline()) {
    cria::Status st = p->attach(*file, &opt);
    if (!st.ok()) return fail(st);
  }
  cria::ModelMeta meta = file->meta();
  uint64_t params = 0, bytes = 0;
  for (const cria::TensorRef& t : file->tensors()) {
    params += t.numel();
    bytes += t.size;
  }
  auto model = cria::Model::create(std::move(file), opt);
  if (!model.ok()) return fail(model.status());
  // auto's fallbacks (a backend that could not start), one line each.
  for (const std::string& note : (*model)->placement().notes()) std::fprintf(stderr, "cria: %s\n", note.c_str());
  auto tok = cria::Tokenizer::create(meta.tokenizer);
  if (!tok.ok()) return fail(tok.status().with_prefix((*model)->file().path()));
  auto* m = new cria_model();
  m->model = std::shared_ptr<const cria::Model>(std::move(model).value());
  m->tok = std::shared_ptr<const cria::Tokenizer>(std::move(tok).value());
  m->chat = meta.chat;
  m->gen = meta.generation;
  m->arch = cria::arch_name(meta.config.arch);
  m->hf_arch = meta.config.hf_architecture;
  m->chat_name = cria::chat_kind_name(meta.chat.kind);
  m->parameters = params;
  m->tensor_bytes = bytes;
  *out = m;
  return CRIA_OK;
}

}  // namespace cria::api

using cria::api::fail;
using cria::api::finish_load;
using cria::api::g_error;
using cria::api::to_c;

namespace {

template <typename T>
cria_status copy_out(const T* src, size_t n, T* dst, size_t cap, size_t* n_out) {
  if (n_out) *n_out = n;
  if (dst && cap) std::memcpy(dst, src, std::min(n, cap) * sizeof(T));
  return CRIA_OK;
}

std::vector<int32_t> default_stop_ids(const cria_model* m) {
  std::vector<int32_t> ids = m->tok->eos_ids();
  for (uint32_t e : m->gen.eos_ids)
    if (std::find(ids.begin(), ids.end(), (int32_t)e) == ids.end()) ids.push_back((int32_t)e);
  return ids;
}

// The prompt text and whether it carries its own BOS (templates do).
cria::Result<std::string> prompt_text(const cria_model* m, const cria_generate_params* p, bool* templated) {
  std::vector<cria::ChatMessage> msgs;
  if (p->messages && p->n_messages) {
    for (size_t i = 0; i < p->n_messages; ++i) {
      if (!p->messages[i].role || !p->messages[i].content)
        return cria::Error(cria::Code::kInvalidArgument, "message " + std::to_string(i) + " has no role or content");
      msgs.push_back({p->messages[i].role, p->messages[i].content});
    }
  } else if (p->use_chat_template) {
    if (!p->prompt) return cria::Error(cria::Code::kInvalidArgument, "no prompt");
    if (p->system) msgs.push_back({"system", p->system});
    msgs.push_back({"user", p->prompt});
  } else {
    if (!p->prompt) return cria::Error(cria::Code::kInvalidArgument, "no prompt");
    *templated = false;
    return std::string(p->prompt);
  }
  if (m->chat.kind == cria::ChatKind::kNone)
    return cria::Error(cria::Code::kUnsupported, "this model has no chat template (it is a base model: use a plain prompt)");
  *templated = true;
  std::string bos;
  if (m->tok->bos_id() >= 0) bos = std::string(m->tok->token_bytes(m->tok->bos_id()));
  return cria::render_chat(m->chat.kind, msgs, /*add_generation_prompt=*/true, bos);
}

// Token ids of the request's prompt (ids as given, or text templated and
// tokenized), truncated or refused when it does not fit the context.
cria::Status prompt_ids(const cria_model* m, const cria_generate_params* p, int64_t n_ctx, int64_t max_new,
                        std::vector<int32_t>* ids) {
  bool templated = false, add_bos = false;
  if (p->prompt_ids && p->n_prompt_ids) {
    ids->assign(p->prompt_ids, p->prompt_ids + p->n_prompt_ids);
  } else {
    auto text = prompt_text(m, p, &templated);
    if (!text.ok()) return text.status();
    add_bos = templated ? false : (p->add_bos < 0 ? m->tok->add_bos() : p->add_bos != 0);
    if (add_bos && m->tok->bos_id() < 0) return cria::Error(cria::Code::kInvalidArgument, "this model has no BOS token");
    CRIA_RETURN_IF_ERROR(m->tok->encode(*text, add_bos, /*parse_special=*/true, ids));
  }
  if (ids->empty()) return cria::Error(cria::Code::kInvalidArgument, "the prompt is empty");
  if (p->truncate && (int64_t)ids->size() >= n_ctx) {
    const int64_t room = std::min<int64_t>(max_new > 0 ? max_new : n_ctx / 4, n_ctx / 2);
    const int64_t keep = n_ctx - room;
    const bool bos = add_bos || (templated && (*ids)[0] == m->tok->bos_id());
    const int64_t drop = (int64_t)ids->size() - keep;
    ids->erase(ids->begin() + (bos ? 1 : 0), ids->begin() + (bos ? 1 : 0) + drop);
  }
  if ((int64_t)ids->size() >= n_ctx)
    return cria::Error(cria::Code::kOutOfRange, "the prompt has " + std::to_string(ids->size()) +
                                                    " tokens but the context holds " + std::to_string(n_ctx) +
                                                    " (use a larger context, a shorter prompt, or truncation)");
  return cria::Status::Ok();
}

}  // namespace

extern "C" {

const char* cria_last_error(void) { return g_error.c_str(); }

const char* cria_status_name(cria_status s) {
  for (int c = (int)cria::Code::kOk; c <= (int)cria::Code::kInternal; ++c)
    if (to_c((cria::Code)c) == s) return cria::code_name((cria::Code)c);
  return "unknown status";
}

const char* cria_version(void) { return CRIA_VERSION; }

void cria_model_params_init(cria_model_params* params) {
  if (params) {
    params->backend = "auto";
    params->gpu_layers = -1;
    params->weights = "auto";
  }
}

cria_status cria_model_load(const char* path, const cria_model_params* params, cria_model** out) {
  if (!path || !out) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_model_load: path and out are required");
  cria::ModelOptions opt;
  if (params && params->backend) opt.backend = params->backend;
  if (params) opt.gpu_layers = params->gpu_layers;
  if (params && params->weights) {
    auto w = cria::parse_weight_memory(params->weights);
    if (!w.ok()) return fail(w.status());
    opt.weights = *w;
  }
  auto f = cria::ModelFile::open(path);
  if (!f.ok()) return fail(f.status());
  return finish_load(std::move(f).value(), opt, out);
}

cria_status cria_model_load_from_memory(const void* data, size_t size, const char* name, cria_model** out) {
  if (!data || !out) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_model_load_from_memory: data and out are required");
  auto f = cria::ModelFile::from_memory(static_cast<const uint8_t*>(data), size, name ? name : "<memory>");
  if (!f.ok()) return fail(f.status());
  return finish_load(std::move(f).value(), cria::ModelOptions(), out);
}

void cria_model_free(cria_model* model) { delete model; }

cria_status cria_verifier_create(const void* file, uint64_t have, uint64_t file_size, const char* name,
                                 cria_verifier** out) {
  if (!file || !out) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_verifier_create: file and out are required");
  const std::string fname = name ? name : "<memory>";
  const auto* bytes = static_cast<const uint8_t*>(file);
  cria::Preamble p;
  if (have < cria::kPreambleSize) return fail(CRIA_ERR_INVALID_ARGUMENT, fname + ": the preamble has not arrived yet");
  std::memcpy(&p, bytes, sizeof(p));
  if (p.header_offset > file_size || p.header_size > file_size - p.header_offset ||
      have < p.header_offset + p.header_size) {
    // Let the header check name what is wrong with an impossible preamble.
    if (have >= file_size) return fail(cria::verify_header(bytes, file_size, &p).status().with_prefix(fname));
    return fail(CRIA_ERR_INVALID_ARGUMENT, fname + ": the header has not arrived yet");
  }
  auto s = cria::ChecksumStream::for_header(bytes, file_size, fname);
  if (!s.ok()) return fail(s.status());
  auto* v = new cria_verifier();
  v->stream = std::move(s).value();
  cria::Status st = v->stream->advance(bytes, have);
  if (!st.ok()) {
    delete v;
    return fail(st);
  }
  *out = v;
  return CRIA_OK;
}

cria_status cria_verifier_update(cria_verifier* v, const void* file, uint64_t have) {
  if (!v || !file) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_verifier_update: verifier and file are required");
  cria::Status st = v->stream->advance(static_cast<const uint8_t*>(file), have);
  return st.ok() ? CRIA_OK : fail(st);
}

cria_status cria_verifier_finish(const cria_verifier* v) {
  if (!v) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_verifier_finish: verifier is required");
  cria::Status st = v->stream->finish();
  return st.ok() ? CRIA_OK : fail(st);
}

void cria_verifier_free(cria_verifier* v) { delete v; }

cria_status cria_model_placement(const cria_model* m, char* buf, size_t cap, size_t* len_out) {
  if (!m) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_model_placement: model is required");
  const std::string s = m->model->placement().describe();
  if (len_out) *len_out = s.size();
  if (buf && cap) {
    const size_t n = std::min(s.size(), cap - 1);
    std::memcpy(buf, s.data(), n);
    buf[n] = '\0';
  }
  return CRIA_OK;
}

cria_status cria_model_get_info(const cria_model* m, cria_model_info* out) {
  if (!m || !out) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_model_get_info: model and out are required");
  // The whole model's shape, also on a rank that holds a tensor shard.
  const cria::ModelConfig& c = m->model->file().config();
  out->architecture = m->arch.c_str();
  out->hf_architecture = m->hf_arch.c_str();
  out->chat_template = m->chat_name.c_str();
  out->vocab_size = (int32_t)c.vocab_size;
  out->hidden_size = (int32_t)c.hidden_size;
  out->num_layers = (int32_t)c.num_layers;
  out->num_heads = (int32_t)c.num_heads;
  out->num_kv_heads = (int32_t)c.num_kv_heads;
  out->head_dim = (int32_t)c.head_dim;
  out->context_length = (int32_t)c.max_position_embeddings;
  out->bos_id = m->tok->bos_id();
  out->add_bos = m->tok->add_bos();
  out->file_size = m->model->file().file_size();
  out->parameters = m->parameters;
  out->bits_per_weight = m->parameters ? 8.0 * (double)m->tensor_bytes / (double)m->parameters : 0;
  return CRIA_OK;
}

cria_status cria_model_eos_ids(const cria_model* m, int32_t* ids, size_t cap, size_t* n_out) {
  if (!m) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_model_eos_ids: model is required");
  std::vector<int32_t> v = default_stop_ids(m);
  return copy_out(v.data(), v.size(), ids, cap, n_out);
}

cria_status cria_tokenize(const cria_model* m, const char* text, size_t len, int add_bos, int parse_special,
                          int32_t* ids, size_t cap, size_t* n_out) {
  if (!m || (!text && len)) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_tokenize: model and text are required");
  std::vector<int32_t> v;
  cria::Status s = m->tok->encode(std::string_view(text ? text : "", len), add_bos != 0, parse_special != 0, &v);
  if (!s.ok()) return fail(s);
  return copy_out(v.data(), v.size(), ids, cap, n_out);
}

cria_status cria_detokenize(const cria_model* m, const int32_t* ids, size_t n, char* out, size_t cap, size_t* len_out) {
  if (!m || (!ids && n)) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_detokenize: model and ids are required");
  std::string s = m->tok->decode(std::span<const int32_t>(ids, n));
  return copy_out(s.data(), s.size(), out, cap, len_out);
}

void cria_session_options_init(cria_session_options* o) {
  o->n_ctx = 0;
  o->n_seq = 1;
  o->threads = 0;
  o->batch = 256;
  o->kv_type = nullptr;
}

cria_status cria_session_create(cria_model* m, const cria_session_options* o, cria_session** out) {
  if (!m || !out) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_session_create: model and out are required");
  cria_session_options def;
  cria_session_options_init(&def);
  if (!o) o = &def;
  cria::SessionOptions so;
  so.n_ctx = o->n_ctx;
  so.n_seq = o->n_seq ? o->n_seq : 1;
  so.threads = o->threads;
  so.batch = o->batch ? o->batch : 256;
  so.pipeline = cria::process_pipeline();
  if (o->kv_type && *o->kv_type && !cria::kernels::parse_kv_type(o->kv_type, &so.kv))
    return fail(CRIA_ERR_INVALID_ARGUMENT, std::string("unknown KV cache type '") + o->kv_type +
                                               "' (expected f16, q8, q4 or f32)");
  auto s = cria::Session::create(m->model, m->tok, so);
  if (!s.ok()) return fail(s.status());
  auto* cs = new cria_session();
  cs->model = m;
  cs->s = std::move(s).value();
  *out = cs;
  return CRIA_OK;
}

void cria_session_free(cria_session* s) { delete s; }

int32_t cria_session_n_ctx(const cria_session* s) { return s ? (int32_t)s->s->n_ctx() : 0; }

int32_t cria_session_threads(const cria_session* s) { return s ? (int32_t)s->s->threads() : 0; }

void cria_session_pool_runs(const cria_session* s, uint64_t* runs, uint64_t* solo_runs) {
  if (runs) *runs = s ? s->s->pool().runs() : 0;
  if (solo_runs) *solo_runs = s ? s->s->pool().solo_runs() : 0;
}

void cria_session_cancel(cria_session* s) {
  if (s) s->s->cancel();
}

void cria_generate_params_init(const cria_model* m, cria_generate_params* p) {
  std::memset(p, 0, sizeof(*p));
  p->add_bos = -1;
  p->max_new_tokens = 256;
  p->num_return_sequences = 1;
  p->temperature = 1.0f;
  p->top_p = 1.0f;
  p->repetition_penalty = 1.0f;
  if (m) {
    const cria::GenerationDefaults& g = m->gen;
    p->do_sample = g.do_sample;
    p->temperature = g.temperature;
    p->top_k = g.top_k;
    p->top_p = g.top_p;
    p->min_p = g.min_p;
    p->repetition_penalty = g.repetition_penalty;
  }
}

cria_status cria_render_prompt(const cria_model* m, const cria_generate_params* p, char* out, size_t cap,
                               size_t* len_out) {
  if (!m || !p) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_render_prompt: model and params are required");
  bool templated = false;
  auto text = prompt_text(m, p, &templated);
  if (!text.ok()) return fail(text.status());
  if (len_out) *len_out = text->size();
  if (out && cap) {
    std::memcpy(out, text->data(), std::min(cap, text->size()));
    if (text->size() < cap) out[text->size()] = '\0';
  }
  return CRIA_OK;
}

cria_status cria_generate(cria_session* s, const cria_generate_params* p, cria_token_callback cb, void* user,
                          cria_generate_result* result) {
  if (!s || !p) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_generate: session and params are required");
  const cria_model* m = s->model;
  if (p->max_new_tokens == 0 || p->max_new_tokens < -1)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "max_new_tokens must be at least 1 (or -1 for no limit)");
  if (p->max_length < 0) return fail(CRIA_ERR_INVALID_ARGUMENT, "max_length must not be negative");
  if (p->temperature < 0 || p->top_p <= 0 || p->top_p > 1 || p->min_p < 0 || p->min_p > 1 || p->top_k < 0 ||
      p->repetition_penalty <= 0)
    return fail(CRIA_ERR_INVALID_ARGUMENT,
                "sampling settings out of range (temperature >= 0, 0 < top_p <= 1, 0 <= min_p <= 1, top_k >= 0, "
                "repetition_penalty > 0)");
  cria::GenerateRequest req;
  const int64_t n_ctx = s->s->n_ctx();
  int64_t max_new = p->max_new_tokens;
  size_t longest = 0;
  if (p->prompts && p->n_prompts) {
    // A batch of prompts: each is templated and tokenized like `prompt`.
    for (size_t i = 0; i < p->n_prompts; ++i) {
      cria_generate_params one = *p;
      one.prompts = nullptr;
      one.n_prompts = 0;
      one.prompt = p->prompts[i];
      one.messages = nullptr;
      one.n_messages = 0;
      one.prompt_ids = nullptr;
      std::vector<int32_t> ids;
      cria::Status st = prompt_ids(m, &one, n_ctx, max_new, &ids);
      if (!st.ok()) return fail(st.with_prefix("prompt " + std::to_string(i + 1)));
      longest = std::max(longest, ids.size());
      req.prompts.push_back(std::move(ids));
    }
  } else {
    cria::Status st = prompt_ids(m, p, n_ctx, max_new, &req.prompt);
    if (!st.ok()) return fail(st);
    longest = req.prompt.size();
  }
  if (p->max_length > 0) {
    const int64_t left = (int64_t)p->max_length - (int64_t)longest;
    if (left <= 0)
      return fail(CRIA_ERR_INVALID_ARGUMENT, "max_length " + std::to_string(p->max_length) +
                                                 " leaves no room after the prompt's " + std::to_string(longest) +
                                                 " tokens");
    max_new = max_new > 0 ? std::min(max_new, left) : left;
  }
  req.max_new_tokens = max_new;
  req.num_return_sequences = p->num_return_sequences ? p->num_return_sequences : 1;
  req.sampling.greedy = !p->do_sample;
  req.sampling.temperature = p->temperature;
  req.sampling.top_k = p->top_k;
  req.sampling.top_p = p->top_p;
  req.sampling.min_p = p->min_p;
  req.sampling.repetition_penalty = p->repetition_penalty;
  req.sampling.seed = p->seed;
  if (p->eos_ids && p->n_eos_ids) {
    req.stop_ids.assign(p->eos_ids, p->eos_ids + p->n_eos_ids);
  } else {
    req.stop_ids = default_stop_ids(m);
  }
  for (size_t i = 0; i < p->n_stop_strings; ++i)
    if (p->stop_strings[i] && *p->stop_strings[i]) req.stop_strings.push_back(p->stop_strings[i]);
  const bool templated = !(p->prompt_ids && p->n_prompt_ids) && ((p->messages && p->n_messages) || p->use_chat_template);
  if (templated)
    for (const std::string& ss : cria::chat_stop_strings(m->chat.kind)) req.stop_strings.push_back(ss);

  std::vector<cria::SequenceResult> out;
  cria::GenerateStats stats;
  cria::Status st;
  cria::TokenCallback fn;
  if (cb)
    fn = [&](int64_t seq, std::string_view piece, int32_t tok) {
      return cb(user, (int32_t)seq, piece.data(), piece.size(), tok) == 0;
    };
  st = s->s->generate(req, fn, &out, &stats);
  if (!st.ok()) return fail(st);
  if (result) {
    result->prompt_tokens = (int32_t)stats.prompt_tokens;
    result->reused_prompt_tokens = (int32_t)stats.reused_tokens;
    result->generated_tokens = (int32_t)stats.generated_tokens;
    result->prefill_seconds = stats.prefill_s;
    result->decode_seconds = stats.decode_s;
    result->time_to_first_token = stats.first_token_s;
    result->stop_reason = out.empty() ? CRIA_STOP_NONE : to_c(out[0].reason);
  }
  return CRIA_OK;
}

cria_status cria_score(cria_session* s, const int32_t* ids, size_t n, size_t first, double* logprobs) {
  if (!s || !ids || !logprobs) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_score: session, ids and logprobs are required");
  cria::Status st = s->s->score(ids, (int64_t)n, (int64_t)first, logprobs);
  if (!st.ok()) return fail(st);
  return CRIA_OK;
}

void cria_convert_options_init(cria_convert_options* o) {
  o->quant = nullptr;
  o->group = 32;
  o->threads = 2;
  o->search = 1;
  o->chat_template = nullptr;
}

cria_status cria_convert(const char* src, const char* dst, const cria_convert_options* o, cria_convert_callback cb,
                         void* user) {
#ifdef CRIA_HAVE_CONVERTER
  if (!src || !dst || !*src || !*dst) return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_convert: src and dst are required");
  cria_convert_options def;
  cria_convert_options_init(&def);
  if (!o) o = &def;
  if (o->group != 32 && o->group != 128)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_convert: group must be 32 or 128, got " + std::to_string(o->group));
  if (o->threads < 1 || o->threads > 256)
    return fail(CRIA_ERR_INVALID_ARGUMENT, "cria_convert: threads must be between 1 and 256");
  cria::ConvertOptions opt;
  opt.recipe = o->quant ? o->quant : "";
  opt.group = (uint32_t)o->group;
  opt.threads = o->threads;
  opt.search = o->search != 0;
  opt.chat_template = o->chat_template ? o->chat_template : "";
  // The converter polls a flag between chunks; a callback's "stop" sets it.
  std::atomic<bool> cancel{false};
  opt.cancel = &cancel;
  if (cb)
    opt.progress = [&](const cria::ConvertProgress& p) {
      cria_convert_progress cp{p.tensor.c_str(), p.index, p.count, p.bytes_done, p.bytes_total, p.tensor_done ? 1 : 0};
      if (cb(user, &cp) != 0) cancel.store(true);
    };
  cria::Status st = cria::convert_model(src, dst, opt);
  if (!st.ok()) return fail(st);
  return CRIA_OK;
#else
  (void)src, (void)dst, (void)o, (void)cb, (void)user;
  return fail(CRIA_ERR_UNSUPPORTED, "cria_convert: this build of libcria has no converter (built without CRIA_TOOLS)");
#endif
}

}  // extern "C"
