// The WebAssembly entry points behind the JS library (web/src/worker.js).
// Only the public C API is used. Requests and results cross the boundary as
// JSON, so the JS side never mirrors C struct layouts; text pieces go out
// through two imports defined in library_cria.js:
//   crw_host_piece(seq, ptr, len, token) -> non-zero to stop
//   crw_host_yield() -> non-zero to stop; may suspend the call (JSPI) so the
//                       single-threaded build can see a cancel message
// A model split across instances (workers) adds the pipeline imports
// crw_host_open / _forward / _copy / _close: the first instance's messages
// down the chain of workers, each returning 0 or a malloc'd error text.
#include <emscripten/emscripten.h>
#include <emscripten/heap.h>
#include <malloc.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cria/cria.h"

extern "C" {
int crw_host_piece(int32_t seq, const char* text, size_t len, int32_t token);
int crw_host_yield(void);
char* crw_host_open(int32_t sid, int32_t n_seq, int32_t n_ctx, const char* kv, int32_t max_tokens);
char* crw_host_forward(int32_t sid, const cria_batch_entry* batch, int32_t n, const float* hidden, int32_t hidden_size,
                       float* logits, int32_t n_logits, int32_t vocab_size);
char* crw_host_copy(int32_t sid, int32_t src, int32_t dst, int32_t n_pos);
void crw_host_close(int32_t sid);
}

namespace {

using json = nlohmann::json;

std::string g_out;    // the last JSON result (valid until the next call)
std::string g_error;  // the last error of this module's own checks

int on_piece(void*, int32_t seq, const char* text, size_t len, int32_t token) {
  if (crw_host_piece(seq, text, len, token)) return 1;
  return crw_host_yield();
}

// Typed getters that never throw: a wrong type is an error message.
bool get_num(const json& j, const char* key, double* out, std::string* err) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_number()) {
    *err = std::string("'") + key + "' must be a number";
    return false;
  }
  *out = it->get<double>();
  return true;
}

bool get_str(const json& j, const char* key, std::string* out, bool* present, std::string* err) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) {
    *err = std::string("'") + key + "' must be a string";
    return false;
  }
  *out = it->get<std::string>();
  *present = true;
  return true;
}

bool get_bool(const json& j, const char* key, int* out, std::string* err) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_boolean()) {
    *err = std::string("'") + key + "' must be true or false";
    return false;
  }
  *out = it->get<bool>() ? 1 : 0;
  return true;
}

const char* stop_name(cria_stop_reason r) {
  switch (r) {
    case CRIA_STOP_EOS: return "eos";
    case CRIA_STOP_MAX_TOKENS: return "max_tokens";
    case CRIA_STOP_STRING: return "stop_string";
    case CRIA_STOP_CONTEXT_FULL: return "context_full";
    case CRIA_STOP_CANCELLED: return "cancelled";
    case CRIA_STOP_CALLBACK: return "cancelled";  // the callback stops only on cancel
    default: return "none";
  }
}

// The request, decoded; owns the strings the C params point into.
struct Request {
  std::vector<std::string> roles, contents, stops;
  std::vector<int32_t> prompt_ids, eos_ids;
  std::vector<cria_message> messages;
  std::vector<const char*> stop_ptrs;
  std::string prompt, system;
  bool has_prompt = false, has_system = false;
};

bool parse_request(const cria_model* model, const char* text, Request* r, cria_generate_params* p,
                   std::string* err) {
  if (!text) {
    *err = "no request";
    return false;
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *err = "the request is not a JSON object";
    return false;
  }
  cria_generate_params_init(model, p);
  if (auto it = j.find("messages"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->empty()) {
      *err = "'messages' must be a non-empty array of {role, content}";
      return false;
    }
    for (const json& m : *it) {
      auto role = m.is_object() ? m.find("role") : m.end();
      auto content = m.is_object() ? m.find("content") : m.end();
      if (!m.is_object() || role == m.end() || content == m.end() || !role->is_string() || !content->is_string()) {
        *err = "each message must be {role: string, content: string}";
        return false;
      }
      r->roles.push_back(role->get<std::string>());
      r->contents.push_back(content->get<std::string>());
    }
    for (size_t i = 0; i < r->roles.size(); ++i) r->messages.push_back({r->roles[i].c_str(), r->contents[i].c_str()});
    p->messages = r->messages.data();
    p->n_messages = r->messages.size();
  }
  // Token id lists: prompt_ids (used as is, no BOS added) and eos_ids
  // (replace the model's end-of-sequence ids).
  auto ids = [&](const char* key, std::vector<int32_t>* out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return true;
    if (!it->is_array()) {
      *err = std::string("'") + key + "' must be an array of token ids";
      return false;
    }
    for (const json& v : *it) {
      if (!v.is_number_integer()) {
        *err = std::string("'") + key + "' must be an array of token ids";
        return false;
      }
      out->push_back(v.get<int32_t>());
    }
    return true;
  };
  if (!ids("prompt_ids", &r->prompt_ids) || !ids("eos_ids", &r->eos_ids)) return false;
  if (!r->prompt_ids.empty()) {
    p->prompt_ids = r->prompt_ids.data();
    p->n_prompt_ids = r->prompt_ids.size();
  }
  if (!r->eos_ids.empty()) {
    p->eos_ids = r->eos_ids.data();
    p->n_eos_ids = r->eos_ids.size();
  }
  if (!get_str(j, "prompt", &r->prompt, &r->has_prompt, err)) return false;
  if (!get_str(j, "system", &r->system, &r->has_system, err)) return false;
  if (!p->n_messages && !r->has_prompt && !p->n_prompt_ids) {
    *err = "a request needs 'messages', 'prompt' or 'prompt_ids'";
    return false;
  }
  if (r->has_prompt) p->prompt = r->prompt.c_str();
  if (r->has_system) p->system = r->system.c_str();
  if (!get_bool(j, "chat", &p->use_chat_template, err)) return false;
  if (!get_bool(j, "truncate", &p->truncate, err)) return false;
  double v = NAN;
  int greedy = -1;
  if (!get_bool(j, "greedy", &greedy, err)) return false;
  bool sampling_given = false;
  auto num = [&](const char* key, auto setter) {
    v = NAN;
    if (!get_num(j, key, &v, err)) return false;
    if (!std::isnan(v)) setter(v);
    return true;
  };
  if (!num("max_new_tokens", [&](double x) { p->max_new_tokens = (int32_t)x; })) return false;
  if (!num("max_length", [&](double x) { p->max_length = (int32_t)x; })) return false;
  if (!num("temperature", [&](double x) {
        p->temperature = (float)x;
        sampling_given = true;
      }))
    return false;
  if (!num("top_k", [&](double x) {
        p->top_k = (int32_t)x;
        sampling_given = true;
      }))
    return false;
  if (!num("top_p", [&](double x) {
        p->top_p = (float)x;
        sampling_given = true;
      }))
    return false;
  if (!num("min_p", [&](double x) {
        p->min_p = (float)x;
        sampling_given = true;
      }))
    return false;
  if (!num("repetition_penalty", [&](double x) { p->repetition_penalty = (float)x; })) return false;
  if (!num("seed", [&](double x) { p->seed = (uint64_t)x; })) return false;
  if (!num("add_bos", [&](double x) { p->add_bos = (int)x; })) return false;
  // transformers semantics: any sampling setting samples, temperature 0 or
  // greedy: true takes the most likely token.
  if (sampling_given) p->do_sample = 1;
  if (greedy == 1 || (sampling_given && p->temperature == 0.0f)) {
    p->do_sample = 0;
    if (p->temperature == 0.0f) p->temperature = 1.0f;
  }
  if (greedy == 0) p->do_sample = 1;
  if (auto it = j.find("stop"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) {
      *err = "'stop' must be an array of strings";
      return false;
    }
    for (const json& s : *it) {
      if (!s.is_string()) {
        *err = "'stop' must be an array of strings";
        return false;
      }
      r->stops.push_back(s.get<std::string>());
    }
    for (const std::string& s : r->stops) r->stop_ptrs.push_back(s.c_str());
    p->stop_strings = r->stop_ptrs.data();
    p->n_stop_strings = r->stop_ptrs.size();
  }
  return true;
}

// The pipeline host's answers: a malloc'd error text from JS (or null),
// kept until the next call as cria_pipeline_host asks.
std::string g_host_error;
const char* host_answer(char* err) {
  if (!err) return nullptr;
  g_host_error = err;
  free(err);
  return g_host_error.c_str();
}

const char* host_open(void*, int32_t sid, int32_t n_seq, int32_t n_ctx, const char* kv, int32_t max_tokens) {
  return host_answer(crw_host_open(sid, n_seq, n_ctx, kv, max_tokens));
}
const char* host_forward(void*, int32_t sid, const cria_batch_entry* batch, int32_t n, const float* hidden,
                         int32_t hidden_size, float* logits, int32_t n_logits, int32_t vocab_size) {
  return host_answer(crw_host_forward(sid, batch, n, hidden, hidden_size, logits, n_logits, vocab_size));
}
const char* host_copy(void*, int32_t sid, int32_t src, int32_t dst, int32_t n_pos) {
  return host_answer(crw_host_copy(sid, src, dst, n_pos));
}
void host_close(void*, int32_t sid) { crw_host_close(sid); }

}  // namespace

extern "C" {

// Memory for a model file of n bytes: 64-byte aligned (the tensors are
// aligned to 64 within the file). Returns 0 when the wasm32 heap cannot
// hold it.
EMSCRIPTEN_KEEPALIVE void* crw_alloc(double n) {
  if (!(n > 0) || n > 4294967295.0) return nullptr;
  const size_t size = ((size_t)n + 63) & ~(size_t)63;
  // dlmalloc never asks sbrk for 2 GiB or more at once (HALF_MAX_SIZE_T on
  // wasm32), so a first block that large fails however much room is left
  // (measured: 2.1 GiB failed on a fresh heap, 3.5 GiB succeeded after 1.5
  // GiB had been allocated and freed). Grow the heap's free top in two
  // steps: a block of half the size, freed at once, then the whole.
  if (size >= ((size_t)1 << 31) - ((size_t)64 << 20)) {
    // Through a volatile: the compiler removes a malloc/free pair whose
    // block is never used.
    static void* volatile half;
    half = malloc(size / 2);
    if (!half) return nullptr;
    free(half);
  }
  return aligned_alloc(64, size);
}

EMSCRIPTEN_KEEPALIVE void crw_free(void* p) { free(p); }

// Bytes the heap may still grow by, plus what malloc holds free.
EMSCRIPTEN_KEEPALIVE double crw_heap_free(void) {
  const struct mallinfo mi = mallinfo();
  return (double)emscripten_get_heap_max() - (double)emscripten_get_heap_size() + (double)mi.fordblks;
}

EMSCRIPTEN_KEEPALIVE double crw_heap_max(void) { return (double)emscripten_get_heap_max(); }

EMSCRIPTEN_KEEPALIVE const char* crw_last_error(void) {
  return g_error.empty() ? cria_last_error() : g_error.c_str();
}

EMSCRIPTEN_KEEPALIVE cria_model* crw_model_load(const void* data, double size, const char* name) {
  g_error.clear();
  cria_model* m = nullptr;
  if (cria_model_load_from_memory(data, (size_t)size, name, &m) != CRIA_OK) return nullptr;
  return m;
}

EMSCRIPTEN_KEEPALIVE void crw_model_free(cria_model* m) { cria_model_free(m); }

// Tensor checksums while the file streams in (cria_verifier_*): begin once
// the header is in memory, update after each chunk, end after the last.
// 0 / null on failure, with the message in crw_last_error.
EMSCRIPTEN_KEEPALIVE cria_verifier* crw_verify_begin(const void* file, double have, double size, const char* name) {
  g_error.clear();
  cria_verifier* v = nullptr;
  if (cria_verifier_create(file, (uint64_t)have, (uint64_t)size, name, &v) != CRIA_OK) return nullptr;
  return v;
}

EMSCRIPTEN_KEEPALIVE int crw_verify_update(cria_verifier* v, const void* file, double have) {
  g_error.clear();
  return cria_verifier_update(v, file, (uint64_t)have) == CRIA_OK;
}

EMSCRIPTEN_KEEPALIVE int crw_verify_end(cria_verifier* v) {
  g_error.clear();
  const int ok = cria_verifier_finish(v) == CRIA_OK;
  cria_verifier_free(v);
  return ok;
}

// ---- a model split across instances (cria.h) ---------------------------

// {"stages": [{"layers": [begin, end], "bytes": n, "ranges": [[offset,
// size], ...]}, ...]}: n_stages stages of the file whose first head_size
// bytes are at head. Null on error.
EMSCRIPTEN_KEEPALIVE const char* crw_split_plan(const void* head, double head_size, double file_size, const char* name,
                                                int n_stages) {
  g_error.clear();
  if (n_stages < 1 || n_stages > 256) {
    g_error = "the number of instances must be 1..256";
    return nullptr;
  }
  std::vector<cria_split_stage> stages((size_t)n_stages);
  std::vector<cria_byte_range> ranges(16 * (size_t)n_stages);
  size_t n = 0;
  if (cria_file_split(head, (uint64_t)head_size, (uint64_t)file_size, name, n_stages, stages.data(), ranges.data(),
                      ranges.size(), &n) != CRIA_OK)
    return nullptr;
  if (n > ranges.size()) {
    ranges.resize(n);
    if (cria_file_split(head, (uint64_t)head_size, (uint64_t)file_size, name, n_stages, stages.data(), ranges.data(),
                        ranges.size(), &n) != CRIA_OK)
      return nullptr;
  }
  json out = json::array();
  for (const cria_split_stage& s : stages) {
    json r = json::array();
    for (uint32_t i = 0; i < s.n_ranges; ++i) {
      const cria_byte_range& b = ranges[s.first_range + i];
      r.push_back({(double)b.offset, (double)b.size});
    }
    out.push_back({{"layers", {s.layer_begin, s.layer_end}}, {"bytes", (double)s.bytes}, {"ranges", r}});
  }
  g_out = json{{"stages", out}}.dump();
  return g_out.c_str();
}

// A verifier of the byte range [offset, offset + size) (crw_verify_update
// then takes the range's own buffer and the bytes of it that are in).
EMSCRIPTEN_KEEPALIVE cria_verifier* crw_verify_range_begin(const void* head, double head_size, double file_size,
                                                           double offset, double size, const char* name) {
  g_error.clear();
  const cria_byte_range r{(uint64_t)offset, (uint64_t)size};
  cria_verifier* v = nullptr;
  if (cria_verifier_create_range(head, (uint64_t)head_size, (uint64_t)file_size, &r, name, &v) != CRIA_OK)
    return nullptr;
  return v;
}

// Layers [layer_begin, layer_end) from the header and `ranges`, a JSON
// array of [offset, size, pointer] (the range's bytes at pointer).
EMSCRIPTEN_KEEPALIVE cria_model* crw_model_load_ranges(const void* head, double head_size, double file_size,
                                                       const char* ranges, int layer_begin, int layer_end,
                                                       const char* name) {
  g_error.clear();
  json j = json::parse(ranges ? ranges : "", nullptr, /*allow_exceptions=*/false);
  std::vector<cria_byte_range> r;
  std::vector<const void*> data;
  if (!j.is_array()) {
    g_error = "the ranges are not a JSON array";
    return nullptr;
  }
  for (const json& e : j) {
    if (!e.is_array() || e.size() != 3 || !e[0].is_number() || !e[1].is_number() || !e[2].is_number()) {
      g_error = "each range must be [offset, size, pointer]";
      return nullptr;
    }
    r.push_back({(uint64_t)e[0].get<double>(), (uint64_t)e[1].get<double>()});
    data.push_back(reinterpret_cast<const void*>((uintptr_t)e[2].get<double>()));
  }
  cria_model* m = nullptr;
  if (cria_model_load_ranges(head, (uint64_t)head_size, (uint64_t)file_size, r.data(), data.data(), r.size(),
                             layer_begin, layer_end, name, &m) != CRIA_OK)
    return nullptr;
  return m;
}

// Routes the first instance's later layers through the crw_host_* imports.
EMSCRIPTEN_KEEPALIVE void crw_pipeline_host(int on) {
  static const cria_pipeline_host host{nullptr, host_open, host_forward, host_copy, host_close};
  cria_set_pipeline_host(on ? &host : nullptr);
}

EMSCRIPTEN_KEEPALIVE cria_stage* crw_stage_create(const cria_model* m, int threads, int n_seq, int n_ctx, const char* kv,
                                                  int max_tokens) {
  g_error.clear();
  cria_stage* s = nullptr;
  if (cria_stage_create(m, threads, n_seq, n_ctx, kv, max_tokens, &s) != CRIA_OK) return nullptr;
  return s;
}

EMSCRIPTEN_KEEPALIVE int crw_stage_forward(cria_stage* s, const cria_batch_entry* batch, int n, const float* hidden,
                                           float* out) {
  g_error.clear();
  return cria_stage_forward(s, batch, n, hidden, out) == CRIA_OK;
}

EMSCRIPTEN_KEEPALIVE int crw_stage_copy_rows(cria_stage* s, int src, int dst, int n_pos) {
  g_error.clear();
  return cria_stage_copy_rows(s, src, dst, n_pos) == CRIA_OK;
}

EMSCRIPTEN_KEEPALIVE void crw_stage_free(cria_stage* s) { cria_stage_free(s); }

// {architecture, ..., kv_bytes_per_token}: the model's description as JSON.
EMSCRIPTEN_KEEPALIVE const char* crw_model_info(const cria_model* m) {
  cria_model_info i;
  if (cria_model_get_info(m, &i) != CRIA_OK) return nullptr;
  // f16 K and V rows for every layer and KV head.
  const double head_dim = i.head_dim;
  json j = {{"architecture", i.architecture},
            {"hf_architecture", i.hf_architecture},
            {"chat_template", i.chat_template},
            {"vocab_size", i.vocab_size},
            {"hidden_size", i.hidden_size},
            {"num_layers", i.num_layers},
            {"num_heads", i.num_heads},
            {"num_kv_heads", i.num_kv_heads},
            {"head_dim", i.head_dim},
            {"context_length", i.context_length},
            {"file_size", (double)i.file_size},
            {"parameters", (double)i.parameters},
            {"bits_per_weight", i.bits_per_weight},
            {"kv_bytes_per_token", 2.0 * 2.0 * i.num_layers * i.num_kv_heads * head_dim}};
  g_out = j.dump();
  return g_out.c_str();
}

EMSCRIPTEN_KEEPALIVE cria_session* crw_session_create(cria_model* m, int threads, int n_ctx, const char* kv) {
  g_error.clear();
  cria_session_options o;
  cria_session_options_init(&o);
  o.threads = threads;
  o.n_ctx = n_ctx;
  o.kv_type = kv;
  cria_session* s = nullptr;
  if (cria_session_create(m, &o, &s) != CRIA_OK) return nullptr;
  return s;
}

EMSCRIPTEN_KEEPALIVE void crw_session_free(cria_session* s) { cria_session_free(s); }

EMSCRIPTEN_KEEPALIVE int crw_session_n_ctx(const cria_session* s) { return cria_session_n_ctx(s); }

// Runs one request (JSON, see web/src/cria.d.ts) and returns a cria_status;
// the statistics are then in crw_result().
EMSCRIPTEN_KEEPALIVE int crw_generate(cria_session* s, const cria_model* m, const char* request) {
  g_error.clear();
  Request r;
  cria_generate_params p;
  std::string err;
  if (!parse_request(m, request, &r, &p, &err)) {
    g_error = err;
    return CRIA_ERR_INVALID_ARGUMENT;
  }
  cria_generate_result res{};
  const cria_status st = cria_generate(s, &p, on_piece, nullptr, &res);
  if (st != CRIA_OK) return st;
  json j = {{"prompt_tokens", res.prompt_tokens},
            {"reused_prompt_tokens", res.reused_prompt_tokens},
            {"generated_tokens", res.generated_tokens},
            {"prefill_seconds", res.prefill_seconds},
            {"decode_seconds", res.decode_seconds},
            {"time_to_first_token", res.time_to_first_token},
            {"stop_reason", stop_name(res.stop_reason)}};
  g_out = j.dump();
  return CRIA_OK;
}

EMSCRIPTEN_KEEPALIVE const char* crw_result(void) { return g_out.c_str(); }

// The exact prompt text a request renders to (template applied).
EMSCRIPTEN_KEEPALIVE const char* crw_render_prompt(const cria_model* m, const char* request) {
  g_error.clear();
  Request r;
  cria_generate_params p;
  std::string err;
  if (!parse_request(m, request, &r, &p, &err)) {
    g_error = err;
    return nullptr;
  }
  size_t len = 0;
  if (cria_render_prompt(m, &p, nullptr, 0, &len) != CRIA_OK) return nullptr;
  g_out.assign(len, '\0');
  cria_render_prompt(m, &p, g_out.data(), g_out.size() + 1, &len);
  return g_out.c_str();
}

}  // extern "C"
