#include "runtime/server/server.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "runtime/engine/pipeline.h"
#include "runtime/model/model.h"
#include "runtime/server/http_util.h"
#include "runtime/tokenizer/chat.h"

namespace cria::server {

namespace {

// How long stop() waits for open streams to write their last chunk.
constexpr std::chrono::seconds kStreamDrain{5};

bool loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Compares every byte whatever the first difference, so the time taken does
// not tell a guesser how much of the key it got right.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() != b.size();
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? (unsigned char)a[i] : 0;
    const unsigned char y = i < b.size() ? (unsigned char)b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

std::string base_name(const std::string& path) {
  std::string n = path.substr(path.find_last_of('/') + 1);
  if (n.size() > 5 && n.compare(n.size() - 5, 5, ".cria") == 0) n.resize(n.size() - 5);
  return n;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::create(const ServeOptions& opt) {
  if (!loopback(opt.host) && opt.api_key.empty())
    return Error(Code::kInvalidArgument, "--host " + opt.host +
                                             " is reachable from other machines: give --api-key KEY (clients send "
                                             "'Authorization: Bearer KEY')");
  if (opt.parallel < 1 || opt.parallel > 64) return Error(Code::kInvalidArgument, "--parallel must be 1..64");
  if (opt.max_queue < 0) return Error(Code::kInvalidArgument, "--queue must not be negative");
  if (opt.port < 0 || opt.port > 65535) return Error(Code::kInvalidArgument, "--port must be 0..65535");
  auto file = ModelFile::open(opt.model_path);
  if (!file.ok()) return file.status();
  ModelOptions mo;
  // Under mpirun (runtime/dist) this rank holds its share of the model and
  // each batch runs through the other ranks.
  LayerPipeline* pipeline = process_pipeline();
  if (pipeline) CRIA_RETURN_IF_ERROR(pipeline->attach(**file, &mo));
  std::unique_ptr<Server> s(new Server());
  s->opt_ = opt;
  s->meta_ = (*file)->meta();
  mo.backend = opt.backend;
  mo.gpu_layers = opt.gpu_layers;
  CRIA_ASSIGN_OR_RETURN(mo.weights, parse_weight_memory(opt.weights));
  auto model = Model::create(std::move(file).value(), mo);
  if (!model.ok()) return model.status();
  for (const std::string& note : (*model)->placement().notes()) std::fprintf(stderr, "cria: %s\n", note.c_str());
  auto tok = Tokenizer::create(s->meta_.tokenizer);
  if (!tok.ok()) return tok.status().with_prefix(opt.model_path);
  s->tok_ = std::shared_ptr<const Tokenizer>(std::move(tok).value());
  SessionOptions so;
  so.n_seq = opt.parallel;
  so.n_ctx = opt.ctx;
  so.pipeline = pipeline;
  so.threads = (int)opt.threads;
  if (!kernels::parse_kv_type(opt.kv, &so.kv))
    return Error(Code::kInvalidArgument, "unknown KV cache type '" + opt.kv + "' (expected f16, q8, q4 or f32)");
  auto b = Batcher::create(std::shared_ptr<const Model>(std::move(model).value()), s->tok_, so);
  if (!b.ok()) return b.status();
  s->sched_ = std::make_unique<Scheduler>(std::move(b).value(), (size_t)opt.max_queue);
  s->name_ = opt.aliases.empty() ? base_name(opt.model_path) : opt.aliases[0];
  s->seed_state_ = std::random_device{}();
  s->http_ = std::make_unique<httplib::Server>();
  s->routes();
  return s;
}

Server::~Server() {
  stop();
  if (sched_) sched_->shutdown();
}

bool Server::known_model(const std::string& name) const {
  // Without --alias any name is accepted, as a single-model server should
  // be reachable from code written for a hosted model.
  if (opt_.aliases.empty()) return true;
  if (name == base_name(opt_.model_path)) return true;
  return std::find(opt_.aliases.begin(), opt_.aliases.end(), name) != opt_.aliases.end();
}

std::vector<std::string> Server::model_names() const {
  std::vector<std::string> v = opt_.aliases;
  if (v.empty()) v.push_back(name_);
  return v;
}

Result<std::vector<int32_t>> Server::chat_prompt(const std::vector<ChatMessage>& messages) const {
  if (meta_.chat.kind == ChatKind::kNone)
    return Error(Code::kUnsupported, "this model has no chat template (it is a base model): use /v1/completions");
  std::string bos;
  if (tok_->bos_id() >= 0) bos = std::string(tok_->token_bytes(tok_->bos_id()));
  auto text = render_chat(meta_.chat.kind, messages, /*add_generation_prompt=*/true, bos);
  if (!text.ok()) return text.status();
  std::vector<int32_t> ids;
  CRIA_RETURN_IF_ERROR(tok_->encode(*text, /*add_bos=*/false, /*parse_special=*/true, &ids));
  if ((int64_t)ids.size() >= sched_->n_ctx())
    return Error(Code::kOutOfRange, "the prompt has " + std::to_string(ids.size()) + " tokens but the context holds " +
                                        std::to_string(sched_->n_ctx()));
  return ids;
}

Result<std::vector<int32_t>> Server::text_prompt(const std::string& text) const {
  std::vector<int32_t> ids;
  CRIA_RETURN_IF_ERROR(tok_->encode(text, tok_->add_bos() && tok_->bos_id() >= 0, /*parse_special=*/true, &ids));
  if (ids.empty()) return Error(Code::kInvalidArgument, "the prompt is empty");
  if ((int64_t)ids.size() >= sched_->n_ctx())
    return Error(Code::kOutOfRange, "the prompt has " + std::to_string(ids.size()) + " tokens but the context holds " +
                                        std::to_string(sched_->n_ctx()));
  return ids;
}

void Server::default_stops(SlotRequest* r, bool chat) const {
  r->stop_ids = tok_->eos_ids();
  for (uint32_t e : meta_.generation.eos_ids)
    if (std::find(r->stop_ids.begin(), r->stop_ids.end(), (int32_t)e) == r->stop_ids.end())
      r->stop_ids.push_back((int32_t)e);
  if (chat)
    for (const std::string& s : chat_stop_strings(meta_.chat.kind)) r->stop_strings.push_back(s);
}

uint64_t Server::random_seed() {
  std::lock_guard<std::mutex> l(seed_mu_);
  seed_state_ = seed_state_ * 6364136223846793005ull + 1442695040888963407ull;
  return seed_state_ >> 11;
}

void Server::routes() {
  httplib::Server& h = *http_;
  // Each open stream holds a thread: room for every slot, the queue, and
  // the short requests beside them.
  const size_t threads = (size_t)(opt_.parallel + opt_.max_queue + 16);
  h.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  h.set_payload_max_length(opt_.body_limit);
  h.set_read_timeout(30);
  h.set_write_timeout(30);
  h.set_keep_alive_timeout(5);
  // One small write per token: without TCP_NODELAY, Nagle's algorithm and
  // the client's delayed ACK hold tokens back for up to 40 ms.
  h.set_tcp_nodelay(true);
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    ++http_requests_;
    if (opt_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    // Replicate's clients send "Bearer" too; "Token" is its older scheme.
    std::string key;
    if (auth.rfind(prefix, 0) == 0) key = auth.substr(prefix.size());
    else if (auth.rfind("Token ", 0) == 0) key = auth.substr(6);
    if (!same_secret(key, opt_.api_key)) {
      send_error(res, 401, "missing or wrong API key (send 'Authorization: Bearer KEY')", "authentication_error");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  h.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    ++http_errors_;
    if (!res.body.empty()) return;  // a handler's own error
    if (res.status == 404) send_error(res, 404, "no route for " + req.method + " " + req.path, "not_found_error");
    else if (res.status == 413) send_error(res, 413, "the request body exceeds " + std::to_string(opt_.body_limit) + " bytes");
    else send_error(res, res.status, "HTTP " + std::to_string(res.status), "invalid_request_error");
  });
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, what, "server_error");
  });
  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const Metrics m = sched_->metrics();
    send_json(res, stopping() ? 503 : 200,
              {{"status", stopping() ? "stopping" : "ok"}, {"slots", m.slots}, {"slots_busy", m.busy}, {"queued", m.queued}});
  });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const Metrics m = sched_->metrics();
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double v) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " ";
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g\n", v);
      out += buf;
    };
    metric("cria_http_requests_total", "counter", "HTTP requests received.", (double)http_requests_.load());
    metric("cria_http_errors_total", "counter", "HTTP answers with a 4xx or 5xx status.", (double)http_errors_.load());
    metric("cria_requests_total", "counter", "Generation requests accepted.", (double)m.jobs);
    metric("cria_requests_rejected_total", "counter", "Generation requests refused with 429 (queue full).",
           (double)m.rejected);
    metric("cria_prompt_tokens_total", "counter", "Prompt tokens computed (reused prefixes excluded).",
           (double)m.prompt_tokens);
    metric("cria_generated_tokens_total", "counter", "Tokens generated.", (double)m.generated_tokens);
    metric("cria_steps_total", "counter", "Batched forward passes.", (double)m.steps);
    metric("cria_queue_depth", "gauge", "Requests waiting for a slot.", (double)m.queued);
    metric("cria_slots_busy", "gauge", "Slots decoding a request.", (double)m.busy);
    metric("cria_slots_total", "gauge", "Slots (--parallel).", (double)m.slots);
    metric("cria_tokens_per_second", "gauge", "Tokens generated per second over the last 5 s.", m.tokens_per_second);
    res.set_content(out, "text/plain; version=0.0.4");
  });
  register_openai(*this, h);
  register_replicate(*this, h);
}

Status Server::bind() {
  if (opt_.port == 0) {
    port_ = http_->bind_to_any_port(opt_.host);
    if (port_ <= 0) return Error(Code::kIo, "cannot bind " + opt_.host + " to a free port");
  } else {
    if (!http_->bind_to_port(opt_.host, opt_.port))
      return Error(Code::kIo, "cannot bind " + opt_.host + ":" + std::to_string(opt_.port) +
                                  " (in use, or not an address of this machine)");
    port_ = opt_.port;
  }
  return Status::Ok();
}

void Server::run() { http_->listen_after_bind(); }

std::shared_ptr<void> Server::open_stream() {
  std::lock_guard<std::mutex> l(streams_mu_);
  ++open_streams_;
  return std::shared_ptr<void>(nullptr, [this](void*) {
    std::lock_guard<std::mutex> l(streams_mu_);
    --open_streams_;
    streams_cv_.notify_all();
  });
}

void Server::stop() {
  if (stopping_.exchange(true)) return;
  // Streams end first: their jobs are ended, and their handlers write the
  // reason and the last chunk. Only then does the listener stop (it cuts
  // any chunked stream still open) and wait for the handler threads; a
  // client that stopped reading does not hold the exit beyond the bound.
  // (A server whose create() failed half-way has neither.)
  if (sched_) sched_->shutdown();
  {
    std::unique_lock<std::mutex> l(streams_mu_);
    streams_cv_.wait_for(l, kStreamDrain, [&] { return open_streams_ == 0; });
  }
  if (http_) http_->stop();
}

}  // namespace cria::server
