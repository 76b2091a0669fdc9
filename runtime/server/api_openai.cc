// OpenAI's /v1/chat/completions, /v1/completions and /v1/models: request
// fields as the API reference names them, answers as JSON or as
// server-sent events ending with `data: [DONE]`.
#include <chrono>

#include "runtime/server/http_util.h"
#include "runtime/server/server.h"

namespace cria::server {

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string message_text(const json& content, size_t i) {
  if (content.is_string()) return content.get<std::string>();
  // Content parts: only text parts can reach a text model.
  if (content.is_array()) {
    std::string s;
    for (const json& part : content) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
        throw BadField{"messages", "messages[" + std::to_string(i) + "].content: only text parts are supported"};
      s += part["text"].get<std::string>();
    }
    return s;
  }
  throw BadField{"messages", "messages[" + std::to_string(i) + "].content must be a string or an array of text parts"};
}

std::vector<ChatMessage> parse_messages(const json& body) {
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty())
    throw BadField{"messages", "'messages' must be a non-empty array"};
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw BadField{"messages", "messages[" + std::to_string(i) + "] needs a string 'role'"};
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      throw BadField{"messages", "messages[" + std::to_string(i) + "].role '" + role +
                                     "' is not supported (system, developer, user, assistant)"};
    if (!m.contains("content") || m["content"].is_null())
      throw BadField{"messages", "messages[" + std::to_string(i) + "] has no content"};
    out.push_back({role, message_text(m["content"], i)});
  }
  return out;
}

// The sampling and length fields both endpoints take.
void parse_options(Server& s, const json& body, SlotRequest* r, int64_t* n) {
  r->max_new_tokens = 256;
  if (auto v = int_field(body, "max_tokens", 1, 1 << 30)) r->max_new_tokens = *v;
  if (auto v = int_field(body, "max_completion_tokens", 1, 1 << 30)) r->max_new_tokens = *v;
  SamplingParams& p = r->sampling;
  p.temperature = (float)num_field(body, "temperature", 0, 2).value_or(1.0);
  p.greedy = p.temperature == 0;
  p.top_p = (float)num_field(body, "top_p", 0, 1).value_or(1.0);
  if (p.top_p == 0) p.greedy = true;
  p.top_k = (int32_t)int_field(body, "top_k", 0, 1 << 30).value_or(0);
  p.min_p = (float)num_field(body, "min_p", 0, 1).value_or(0.0);
  p.repetition_penalty = (float)num_field(body, "repeat_penalty", 0.01, 100).value_or(1.0);
  if (auto v = num_field(body, "repetition_penalty", 0.01, 100)) p.repetition_penalty = (float)*v;
  p.seed = s.random_seed();
  if (auto v = int_field(body, "seed", INT64_MIN, INT64_MAX)) p.seed = (uint64_t)*v;
  r->presence_penalty = (float)num_field(body, "presence_penalty", -2, 2).value_or(0.0);
  r->frequency_penalty = (float)num_field(body, "frequency_penalty", -2, 2).value_or(0.0);
  *n = int_field(body, "n", 1, s.scheduler().slots()).value_or(1);
  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      r->stop_strings.push_back(it->get<std::string>());
    } else if (it->is_array() && it->size() <= 16) {
      for (const json& x : *it) {
        if (!x.is_string()) throw BadField{"stop", "'stop' must be a string or an array of strings"};
        r->stop_strings.push_back(x.get<std::string>());
      }
    } else {
      throw BadField{"stop", "'stop' must be a string or an array of at most 16 strings"};
    }
    for (const std::string& x : r->stop_strings)
      if (x.empty()) throw BadField{"stop", "'stop' strings must not be empty"};
  }
  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) throw BadField{"logit_bias", "'logit_bias' must be an object of token id -> bias"};
    const int64_t vocab = s.tokenizer().vocab_size();
    for (const auto& [k, v] : it->items()) {
      char* end = nullptr;
      const long id = std::strtol(k.c_str(), &end, 10);
      if (k.empty() || *end || id < 0 || id >= vocab)
        throw BadField{"logit_bias", "logit_bias key '" + k + "' is not a token id of this model (0.." +
                                         std::to_string(vocab - 1) + ")"};
      if (!v.is_number() || v.get<double>() < -100 || v.get<double>() > 100)
        throw BadField{"logit_bias", "logit_bias values must be numbers in -100..100"};
      r->logit_bias.emplace_back((int32_t)id, v.get<float>());
    }
  }
}

// Queues n copies of the request (choice i sampled with seed + i); a 429
// when the queue is full.
bool submit_jobs(Server& s, const SlotRequest& r, int64_t n, httplib::Response& res,
                 std::vector<std::shared_ptr<Job>>* jobs) {
  auto ch = std::make_shared<Channel>();
  const auto deadline = Clock::now() + std::chrono::milliseconds((int64_t)(s.options().timeout_s * 1000));
  for (int64_t i = 0; i < n; ++i) {
    auto job = std::make_shared<Job>();
    job->req = r;
    job->req.sampling.seed = r.sampling.seed + (uint64_t)i;
    job->ch = ch;
    job->deadline = deadline;
    if (!s.scheduler().submit(job)) {
      for (auto& j : *jobs) j->cancel.store(true);
      res.set_header("Retry-After", "1");
      send_error(res, s.stopping() ? 503 : 429,
                 s.stopping() ? "the server is shutting down" : "all slots are busy and the queue is full; retry later",
                 "rate_limit_error");
      return false;
    }
    jobs->push_back(std::move(job));
  }
  return true;
}

json usage_json(const std::vector<std::shared_ptr<Job>>& jobs) {
  int64_t prompt = jobs[0]->prompt_tokens ? jobs[0]->prompt_tokens : (int64_t)jobs[0]->req.prompt.size(), gen = 0;
  for (const auto& j : jobs) gen += j->tokens;
  return {{"prompt_tokens", prompt}, {"completion_tokens", gen}, {"total_tokens", prompt + gen}};
}

void handle(Server& s, const httplib::Request& req, httplib::Response& res, bool chat) {
  auto body = parse_body(req, res);
  if (!body) return;
  SlotRequest r;
  int64_t n = 1;
  bool stream = false, include_usage = false;
  std::string model;
  try {
    model = str_field(*body, "model").value_or(s.model_name());
    if (!s.known_model(model)) {
      send_error(res, 404, "the model '" + model + "' does not exist (this server has: " + s.model_names()[0] + ")",
                 "invalid_request_error", "model");
      return;
    }
    stream = bool_field(*body, "stream").value_or(false);
    if (auto it = body->find("stream_options"); it != body->end() && it->is_object())
      include_usage = bool_field(*it, "include_usage").value_or(false);
    parse_options(s, *body, &r, &n);
    Result<std::vector<int32_t>> ids = Error(Code::kInvalidArgument, "");
    if (chat) {
      ids = s.chat_prompt(parse_messages(*body));
    } else {
      auto it = body->find("prompt");
      std::string prompt;
      if (it != body->end() && it->is_string()) prompt = it->get<std::string>();
      else if (it != body->end() && it->is_array() && it->size() == 1 && (*it)[0].is_string()) prompt = (*it)[0];
      else throw BadField{"prompt", "'prompt' must be a string (or an array of one string)"};
      ids = s.text_prompt(prompt);
    }
    if (!ids.ok()) {
      send_error(res, 400, ids.status().message(), "invalid_request_error", chat ? "messages" : "prompt");
      return;
    }
    r.prompt = std::move(ids).value();
    s.default_stops(&r, chat);
    // llama.cpp's extension, for benchmarks that need fixed-length answers.
    if (bool_field(*body, "ignore_eos").value_or(false)) r.stop_ids.clear();
  } catch (const BadField& e) {
    send_error(res, 400, e.message, "invalid_request_error", e.param);
    return;
  }
  std::vector<std::shared_ptr<Job>> jobs;
  if (!submit_jobs(s, r, n, res, &jobs)) return;
  const std::string id = (chat ? "chatcmpl-" : "cmpl-") + random_id(24);
  const int64_t created = unix_now();
  const char* object = chat ? "chat.completion" : "text_completion";
  if (!stream) {
    std::vector<std::string> texts(n);
    std::vector<size_t> next(n, 0);
    for (int64_t i = 0; i < n; ++i)
      while (!take_output(*jobs[i], &next[i], &texts[i], std::chrono::milliseconds(500))) {
      }
    for (const auto& j : jobs)
      if (!j->error.empty()) return send_error(res, 503, j->error, "server_error");
    json choices = json::array();
    for (int64_t i = 0; i < n; ++i) {
      json c = {{"index", i}, {"finish_reason", finish_reason(jobs[i]->reason)}, {"logprobs", nullptr}};
      if (chat) c["message"] = {{"role", "assistant"}, {"content", texts[i]}};
      else c["text"] = texts[i];
      choices.push_back(c);
    }
    send_json(res, 200,
              {{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"choices", choices},
               {"usage", usage_json(jobs)}, {"system_fingerprint", "cria"}});
    return;
  }
  struct State {
    std::vector<size_t> next;
    std::vector<bool> reported;
    bool started = false;
  };
  auto st = std::make_shared<State>();
  st->next.assign(n, 0);
  st->reported.assign(n, false);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [jobs, st, id, created, model, chat, include_usage](size_t, httplib::DataSink& sink) {
        const char* object = chat ? "chat.completion.chunk" : "text_completion";
        auto chunk = [&](json choices) {
          json c = {{"id", id}, {"object", object}, {"created", created}, {"model", model},
                    {"system_fingerprint", "cria"}, {"choices", std::move(choices)}};
          const std::string ev = sse_event("", c.dump(-1, ' ', false, json::error_handler_t::replace));
          return sink.write(ev.data(), ev.size());
        };
        auto fail = [&] {
          for (auto& j : jobs) j->cancel.store(true);
          return false;
        };
        if (chat && !st->started) {
          json choices = json::array();
          for (size_t i = 0; i < jobs.size(); ++i)
            choices.push_back({{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}});
          if (!chunk(choices)) return fail();
        }
        st->started = true;
        // Wait on the shared channel for any choice's progress.
        {
          Channel& ch = *jobs[0]->ch;
          std::unique_lock<std::mutex> l(ch.mu);
          ch.cv.wait_for(l, std::chrono::milliseconds(250), [&] {
            for (size_t i = 0; i < jobs.size(); ++i)
              if (jobs[i]->pieces.size() > st->next[i] || (jobs[i]->done && !st->reported[i])) return true;
            return false;
          });
        }
        bool all_done = true;
        for (size_t i = 0; i < jobs.size(); ++i) {
          if (st->reported[i]) continue;
          std::string text;
          const bool done = take_output(*jobs[i], &st->next[i], &text, std::chrono::milliseconds(0));
          if (!text.empty()) {
            json c = {{"index", i}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
            if (chat) c["delta"] = {{"content", text}};
            else c["text"] = text;
            if (!chunk(json::array({c}))) return fail();
          }
          if (!done) {
            all_done = false;
            continue;
          }
          st->reported[i] = true;
          if (!jobs[i]->error.empty()) {
            const std::string ev = sse_event("", json{{"error", {{"message", jobs[i]->error}, {"type", "server_error"}}}}.dump());
            if (!sink.write(ev.data(), ev.size())) return fail();
            continue;
          }
          json c = {{"index", i}, {"finish_reason", finish_reason(jobs[i]->reason)}, {"logprobs", nullptr}};
          if (chat) c["delta"] = json::object();
          else c["text"] = "";
          if (!chunk(json::array({c}))) return fail();
        }
        if (!all_done) return true;
        if (include_usage) {
          json c = {{"id", id}, {"object", object}, {"created", created}, {"model", model},
                    {"choices", json::array()}, {"usage", usage_json(jobs)}};
          const std::string ev = sse_event("", c.dump());
          if (!sink.write(ev.data(), ev.size())) return fail();
        }
        const std::string end = "data: [DONE]\n\n";
        if (!sink.write(end.data(), end.size())) return fail();
        sink.done();
        return true;
      },
      [jobs, held = s.open_stream()](bool success) {
        // A client gone mid-stream: its sequences leave the batch at the
        // next step.
        if (!success)
          for (auto& j : jobs) j->cancel.store(true);
      });
}

}  // namespace

void register_openai(Server& s, httplib::Server& http) {
  http.Post("/v1/chat/completions",
            [&s](const httplib::Request& req, httplib::Response& res) { handle(s, req, res, /*chat=*/true); });
  http.Post("/v1/completions",
            [&s](const httplib::Request& req, httplib::Response& res) { handle(s, req, res, /*chat=*/false); });
  http.Get("/v1/models", [&s](const httplib::Request& req, httplib::Response& res) {
    // Replicate's clients list models here too, with a different shape; an
    // OpenAI list is what OpenAI clients ask for.
    (void)req;
    json data = json::array();
    for (const std::string& n : s.model_names())
      data.push_back({{"id", n}, {"object", "model"}, {"created", 0}, {"owned_by", "cria"}});
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  });
}

}  // namespace cria::server
