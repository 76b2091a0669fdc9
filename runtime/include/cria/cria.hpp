// C++ wrapper over the C API (cria.h): RAII handles, exception-free
// results, std::string / std::function at the edges. Namespace cria::cpp
// (the library's internals use namespace cria).
//
//   auto model = cria::cpp::Model::load("llama.cria");
//   if (!model) { std::cerr << model.error() << "\n"; return 1; }
//   cria::cpp::Session session(*model);
//   cria::cpp::GenerateOptions opt;
//   opt.chat = true;
//   session.generate("Tell me a fortune.", opt, [](std::string_view piece) {
//     std::cout << piece << std::flush;
//     return true;  // false stops
//   });
#ifndef CRIA_CRIA_HPP_
#define CRIA_CRIA_HPP_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cria/cria.h"

namespace cria::cpp {

// A value or the error message of the call that failed.
template <typename T>
class Expected {
 public:
  Expected(T value) : value_(std::move(value)), ok_(true) {}  // NOLINT: implicit by design
  static Expected failure(cria_status s) { return Expected(s, cria_last_error()); }
  explicit operator bool() const { return ok_; }
  T& operator*() { return value_; }
  T* operator->() { return &value_; }
  const std::string& error() const { return error_; }
  cria_status status() const { return status_; }

 private:
  Expected(cria_status s, std::string e) : status_(s), error_(std::move(e)) {}
  T value_{};
  bool ok_ = false;
  cria_status status_ = CRIA_OK;
  std::string error_;
};

class Model {
 public:
  static Expected<Model> load(const std::string& path, const std::string& backend = "auto", int gpu_layers = -1) {
    cria_model_params p;
    cria_model_params_init(&p);
    p.backend = backend.c_str();
    p.gpu_layers = gpu_layers;
    cria_model* m = nullptr;
    cria_status s = cria_model_load(path.c_str(), &p, &m);
    if (s != CRIA_OK) return Expected<Model>::failure(s);
    return Model(m);
  }

  Model() = default;
  cria_model* get() const { return m_.get(); }

  std::string placement() const {
    size_t n = 0;
    cria_model_placement(m_.get(), nullptr, 0, &n);
    std::string s(n + 1, '\0');
    cria_model_placement(m_.get(), s.data(), s.size(), &n);
    s.resize(n);
    return s;
  }

  cria_model_info info() const {
    cria_model_info i{};
    cria_model_get_info(m_.get(), &i);
    return i;
  }

  Expected<std::vector<int32_t>> tokenize(std::string_view text, bool add_bos = false, bool parse_special = true) const {
    std::vector<int32_t> ids(text.size() + 8);
    size_t n = 0;
    cria_status s = cria_tokenize(m_.get(), text.data(), text.size(), add_bos, parse_special, ids.data(), ids.size(), &n);
    if (s != CRIA_OK) return Expected<std::vector<int32_t>>::failure(s);
    ids.resize(n);
    return ids;
  }

  std::string detokenize(const std::vector<int32_t>& ids) const {
    size_t len = 0;
    cria_detokenize(m_.get(), ids.data(), ids.size(), nullptr, 0, &len);
    std::string out(len, '\0');
    cria_detokenize(m_.get(), ids.data(), ids.size(), out.data(), out.size(), &len);
    return out;
  }

 private:
  explicit Model(cria_model* m) : m_(m, cria_model_free) {}
  std::shared_ptr<cria_model> m_;
};

struct GenerateOptions {
  bool chat = false;         // wrap the prompt in the model's chat template
  std::string system;        // with chat
  int32_t max_new_tokens = 256;
  bool do_sample = false;
  float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

class Session {
 public:
  explicit Session(const Model& model, const cria_session_options* opt = nullptr) : model_(model) {
    cria_session* s = nullptr;
    status_ = cria_session_create(model.get(), opt, &s);
    if (status_ == CRIA_OK) s_.reset(s);
    else error_ = cria_last_error();
  }

  explicit operator bool() const { return s_ != nullptr; }
  const std::string& error() const { return error_; }
  void cancel() { cria_session_cancel(s_.get()); }
  cria_session* get() const { return s_.get(); }

  // Streams pieces of text to `on_piece` (return false to stop). Returns
  // the result, or the error.
  Expected<cria_generate_result> generate(const std::string& prompt, const GenerateOptions& o,
                                          const std::function<bool(std::string_view)>& on_piece) {
    if (!s_) return Expected<cria_generate_result>::failure(status_);
    cria_generate_params p;
    cria_generate_params_init(model_.get(), &p);
    p.prompt = prompt.c_str();
    p.use_chat_template = o.chat;
    p.system = o.system.empty() ? nullptr : o.system.c_str();
    p.max_new_tokens = o.max_new_tokens;
    p.do_sample = o.do_sample;
    p.temperature = o.temperature;
    p.top_p = o.top_p;
    p.min_p = o.min_p;
    p.top_k = o.top_k;
    p.repetition_penalty = o.repetition_penalty;
    p.seed = o.seed;
    std::vector<const char*> stops;
    for (const std::string& s : o.stop) stops.push_back(s.c_str());
    p.stop_strings = stops.data();
    p.n_stop_strings = stops.size();
    cria_generate_result r{};
    auto cb = [](void* user, int32_t, const char* text, size_t len, int32_t) {
      auto* f = static_cast<const std::function<bool(std::string_view)>*>(user);
      return (*f)(std::string_view(text, len)) ? 0 : 1;
    };
    cria_status s = cria_generate(s_.get(), &p, on_piece ? +cb : nullptr,
                                  const_cast<std::function<bool(std::string_view)>*>(&on_piece), &r);
    if (s != CRIA_OK) return Expected<cria_generate_result>::failure(s);
    return r;
  }

 private:
  struct Free {
    void operator()(cria_session* s) const { cria_session_free(s); }
  };
  Model model_;  // keeps the model alive as long as the session
  std::unique_ptr<cria_session, Free> s_;
  cria_status status_ = CRIA_OK;
  std::string error_;
};

}  // namespace cria::cpp

#endif  // CRIA_CRIA_HPP_
