// `cria serve`: one model behind an HTTP server that speaks OpenAI's
// /v1/chat/completions, /v1/completions and /v1/models, and Replicate's
// predictions API (urls.stream server-sent events), on top of a Scheduler.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "formats/model_meta.h"
#include "formats/status.h"
#include "runtime/server/scheduler.h"
#include "runtime/tokenizer/chat.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace cria::server {

struct ServeOptions {
  std::string model_path;
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port (printed)
  int64_t parallel = 4;          // slots decoded together
  int64_t ctx = 0;               // per slot; 0: the model's, capped at 4096
  int64_t threads = 0;
  std::string backend = "auto";  // where linear layers run (placement.h)
  int64_t gpu_layers = -1;       // with a device backend: the first N blocks there
  std::string weights = "auto";  // where the CPU reads weights from (weight_copy.h)
  std::string kv = "f16";        // KV cache type of every slot: f16 | q8 | q4
  int64_t max_queue = 64;        // waiting requests beyond the slots; more get 429
  double timeout_s = 600;        // per-request deadline
  size_t body_limit = 1 << 20;   // bytes of a request body
  std::vector<std::string> aliases;
  std::string api_key;
};

struct Prediction;  // Replicate's; api_replicate.cc

class Server {
 public:
  static Result<std::unique_ptr<Server>> create(const ServeOptions& opt);
  ~Server();

  // Binds the port (the chosen one when opt.port is 0).
  Status bind();
  int port() const { return port_; }
  // Serves until stop(); then ends open streams and returns.
  void run();
  void stop();

  // For the API handlers.
  const ServeOptions& options() const { return opt_; }
  Scheduler& scheduler() { return *sched_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  const ModelMeta& meta() const { return meta_; }
  const std::string& model_name() const { return name_; }
  bool known_model(const std::string& name) const;
  std::vector<std::string> model_names() const;
  bool stopping() const { return stopping_.load(); }
  // Held by a streamed response until its last byte is written: stop()
  // waits (bounded) for these, because the listener's stop ends every
  // chunked stream at once, without its terminating chunk.
  std::shared_ptr<void> open_stream();
  // Chat messages or a plain prompt, templated and tokenized; fails when it
  // does not fit the context with room for one token.
  Result<std::vector<int32_t>> chat_prompt(const std::vector<ChatMessage>& messages) const;
  Result<std::vector<int32_t>> text_prompt(const std::string& text) const;
  // The model's end ids plus the template's stop strings.
  void default_stops(SlotRequest* r, bool chat) const;
  // A fresh random seed for requests that give none.
  uint64_t random_seed();
  std::mutex& predictions_mu() { return pred_mu_; }
  std::map<std::string, std::shared_ptr<Prediction>>& predictions() { return preds_; }

 private:
  Server() = default;
  void routes();

  ServeOptions opt_;
  ModelMeta meta_;
  std::shared_ptr<const Tokenizer> tok_;
  std::unique_ptr<Scheduler> sched_;
  std::unique_ptr<httplib::Server> http_;
  std::string name_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex seed_mu_, pred_mu_;
  uint64_t seed_state_ = 0;
  std::map<std::string, std::shared_ptr<Prediction>> preds_;
  std::atomic<int64_t> http_requests_{0}, http_errors_{0};
  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  int64_t open_streams_ = 0;

  friend void register_openai(Server& s, httplib::Server& http);
  friend void register_replicate(Server& s, httplib::Server& http);
};

void register_openai(Server& s, httplib::Server& http);
void register_replicate(Server& s, httplib::Server& http);

}  // namespace cria::server
