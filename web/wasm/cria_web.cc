// The WebAssembly entry points behind the JS library (web/src/worker.js).
// Only the public C API is used. Requests and results cross the boundary as
// JSON, so the JS side never mirrors C struct layouts; text pieces go out
// through two imports defined in library_cria.js:
//   crw_host_piece(seq, ptr, len, token) -> non-zero to stop
//   crw_host_yield() -> non-zero to stop; may suspend the call (JSPI) so the
//                       single-threaded build can see a cancel message
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

}  // namespace

extern "C" {

// Memory for a model file of n bytes: 64-byte aligned (the tensors are
// aligned to 64 within the file). Returns 0 when the wasm32 heap cannot
// hold it.
EMSCRIPTEN_KEEPALIVE void* crw_alloc(double n) {
  if (!(n > 0) || n > 4294967295.0) return nullptr;
  const size_t size = ((size_t)n + 63) & ~(size_t)63;
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
