// Replicate's predictions API, as much as its official clients' run() and
// stream() use: create a prediction (by model or by version), read it, cancel
// it, `Prefer: wait`, and urls.stream, a server-sent-event stream of
// `output` events then `done` (or `error`). Inputs are those of Replicate's
// Llama 3 models.
#include <algorithm>
#include <chrono>

#include "runtime/server/http_util.h"
#include "runtime/server/server.h"

namespace cria::server {

struct Prediction {
  std::string id, model, version;
  json input;
  std::shared_ptr<Job> job;
  std::chrono::system_clock::time_point created_at = std::chrono::system_clock::now();
  std::atomic<bool> canceled{false};
};

namespace {

constexpr size_t kKeepPredictions = 256;  // finished ones kept for GET

std::string status_of(const Prediction& p) {
  if (p.job->done) {
    // Cancelled by the cancel endpoint or by its stream's reader leaving;
    // a shutdown or an engine failure carries an error instead.
    if (p.canceled.load() || (p.job->reason == StopReason::kCancelled && p.job->error.empty())) return "canceled";
    if (!p.job->error.empty()) return "failed";
    return "succeeded";
  }
  return p.job->started ? "processing" : "starting";
}

std::string base_url(const httplib::Request& req) {
  const std::string host = req.get_header_value("Host");
  return "http://" + (host.empty() ? std::string("127.0.0.1") : host);
}

json prediction_json(const Prediction& p, const std::string& base) {
  Job& j = *p.job;
  std::lock_guard<std::mutex> l(j.ch->mu);
  const std::string status = status_of(p);
  json out = json(nullptr);
  if (j.started) out = j.pieces;
  const std::string url = base + "/v1/predictions/" + p.id;
  json r = {{"id", p.id},
            {"model", p.model},
            {"version", p.version},
            {"input", p.input},
            {"logs", ""},
            {"output", out},
            {"data_removed", false},
            {"error", j.error.empty() ? json(nullptr) : json(j.error)},
            {"status", status},
            {"source", "api"},
            {"created_at", iso_time(p.created_at)},
            {"urls", {{"get", url}, {"cancel", url + "/cancel"}, {"stream", url + "/stream"}, {"web", url}}}};
  auto wall = [&](Clock::time_point t) {
    return p.created_at + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - j.created);
  };
  if (j.started) r["started_at"] = iso_time(p.created_at);
  if (j.done) {
    r["completed_at"] = iso_time(wall(j.finished));
    const double total = std::chrono::duration<double>(j.finished - j.created).count();
    json m = {{"predict_time", total}, {"total_time", total}, {"input_token_count", j.prompt_tokens},
              {"output_token_count", j.tokens}};
    if (j.first_token != Clock::time_point{}) {
      const double ttft = std::chrono::duration<double>(j.first_token - j.created).count();
      const double decode = std::chrono::duration<double>(j.finished - j.first_token).count();
      m["time_to_first_token"] = ttft;
      if (j.tokens > 1 && decode > 0) m["tokens_per_second"] = (double)(j.tokens - 1) / decode;
    }
    r["metrics"] = m;
  }
  return r;
}

// Replicate's Llama 3 inputs -> a request. Throws BadField (answered 422).
SlotRequest parse_input(Server& s, const json& input) {
  SlotRequest r;
  const std::string prompt = str_field(input, "prompt").value_or("");
  if (prompt.empty()) throw BadField{"prompt", "input.prompt is required"};
  const std::string system = str_field(input, "system_prompt").value_or("You are a helpful assistant");
  r.max_new_tokens = 512;
  if (auto v = int_field(input, "max_new_tokens", 1, 1 << 30)) r.max_new_tokens = *v;
  if (auto v = int_field(input, "max_tokens", 1, 1 << 30)) r.max_new_tokens = *v;
  r.min_new_tokens = int_field(input, "min_tokens", -1, 1 << 30).value_or(0);
  SamplingParams& p = r.sampling;
  p.temperature = (float)num_field(input, "temperature", 0, 5).value_or(0.6);
  p.greedy = p.temperature == 0;
  p.top_p = (float)num_field(input, "top_p", 0, 1).value_or(0.9);
  if (p.top_p == 0) p.greedy = true;
  p.top_k = (int32_t)int_field(input, "top_k", -1, 1 << 30).value_or(50);
  if (p.top_k < 0) p.top_k = 0;  // Replicate's -1: off
  p.seed = s.random_seed();
  if (auto v = int_field(input, "seed", INT64_MIN, INT64_MAX)) p.seed = (uint64_t)*v;
  r.presence_penalty = (float)num_field(input, "presence_penalty", -5, 5).value_or(0.0);
  r.frequency_penalty = (float)num_field(input, "frequency_penalty", -5, 5).value_or(0.0);
  if (auto v = str_field(input, "stop_sequences")) {
    size_t start = 0;
    while (start <= v->size()) {
      size_t comma = v->find(',', start);
      std::string part = v->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!part.empty()) r.stop_strings.push_back(part);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  Result<std::vector<int32_t>> ids = Error(Code::kInvalidArgument, "");
  bool chat = false;
  if (auto tpl = str_field(input, "prompt_template")) {
    // {prompt} and {system_prompt} are filled in; the template carries its
    // own special tokens (BOS included), so nothing is added.
    std::string text = *tpl;
    for (const auto& [key, value] : {std::pair<std::string, std::string>{"{system_prompt}", system}, {"{prompt}", prompt}})
      for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
        text.replace(at, key.size(), value);
    std::vector<int32_t> v;
    Status st = s.tokenizer().encode(text, false, true, &v);
    if (!st.ok()) ids = st;
    else if (v.empty()) ids = Error(Code::kInvalidArgument, "the prompt is empty");
    else if ((int64_t)v.size() >= s.scheduler().n_ctx())
      ids = Error(Code::kOutOfRange, "the prompt has " + std::to_string(v.size()) + " tokens but the context holds " +
                                         std::to_string(s.scheduler().n_ctx()));
    else ids = std::move(v);
  } else if (s.meta().chat.kind != ChatKind::kNone) {
    std::vector<ChatMessage> msgs;
    if (!system.empty()) msgs.push_back({"system", system});
    msgs.push_back({"user", prompt});
    ids = s.chat_prompt(msgs);
    chat = true;
  } else {
    ids = s.text_prompt(prompt);
  }
  if (!ids.ok()) throw BadField{"prompt", ids.status().message()};
  r.prompt = std::move(ids).value();
  s.default_stops(&r, chat);
  return r;
}

void create(Server& s, const httplib::Request& req, httplib::Response& res, std::string model) {
  auto body = parse_body(req, res);
  if (!body) return;
  std::string version;
  if (model.empty()) {
    auto v = body->find("version");
    if (v == body->end() || !v->is_string() || v->get<std::string>().empty())
      return send_error(res, 422, "'version' is required (or POST to /v1/models/{owner}/{name}/predictions)");
    version = v->get<std::string>();
    const size_t colon = version.find(':');
    model = colon == std::string::npos ? s.model_name() : version.substr(0, colon);
    if (colon != std::string::npos) version = version.substr(colon + 1);
  }
  if (!s.known_model(model))
    return send_error(res, 404, "the model '" + model + "' does not exist (this server has: " + s.model_names()[0] + ")",
                      "not_found_error");
  auto input = body->find("input");
  if (input == body->end() || !input->is_object())
    return send_error(res, 422, "'input' must be an object", "invalid_request_error", "input");
  auto p = std::make_shared<Prediction>();
  p->job = std::make_shared<Job>();
  try {
    p->job->req = parse_input(s, *input);
  } catch (const BadField& e) {
    return send_error(res, 422, "input." + e.param + ": " + e.message, "invalid_request_error", e.param);
  }
  p->id = random_id(26);
  p->model = model;
  p->version = version.empty() ? "cria" : version;
  p->input = *input;
  p->job->deadline = Clock::now() + std::chrono::milliseconds((int64_t)(s.options().timeout_s * 1000));
  if (!s.scheduler().submit(p->job)) {
    res.set_header("Retry-After", "1");
    return send_error(res, s.stopping() ? 503 : 429,
                      s.stopping() ? "the server is shutting down"
                                   : "all slots are busy and the queue is full; retry later",
                      "rate_limit_error");
  }
  {
    std::lock_guard<std::mutex> l(s.predictions_mu());
    auto& all = s.predictions();
    all[p->id] = p;
    // Forget the oldest finished predictions beyond the ones kept for GET.
    if (all.size() > kKeepPredictions) {
      std::vector<std::shared_ptr<Prediction>> done;
      for (auto& [id, q] : all) {
        std::lock_guard<std::mutex> jl(q->job->ch->mu);
        if (q->job->done) done.push_back(q);
      }
      std::sort(done.begin(), done.end(), [](auto& a, auto& b) { return a->created_at < b->created_at; });
      for (size_t i = 0; i < done.size() && all.size() > kKeepPredictions; ++i)
        all.erase(done[i]->id);
    }
  }
  // Prefer: wait[=N] holds the answer until the prediction ends (at most N
  // seconds, 60 by default), as Replicate's sync mode does.
  const std::string prefer = req.get_header_value("Prefer");
  if (prefer.rfind("wait", 0) == 0) {
    int secs = 60;
    if (prefer.size() > 5 && prefer[4] == '=') secs = std::clamp(std::atoi(prefer.c_str() + 5), 1, 60);
    const auto until = Clock::now() + std::chrono::seconds(secs);
    std::unique_lock<std::mutex> l(p->job->ch->mu);
    p->job->ch->cv.wait_until(l, until, [&] { return p->job->done; });
  }
  send_json(res, 201, prediction_json(*p, base_url(req)));
}

std::shared_ptr<Prediction> find(Server& s, const std::string& id) {
  std::lock_guard<std::mutex> l(s.predictions_mu());
  auto it = s.predictions().find(id);
  return it == s.predictions().end() ? nullptr : it->second;
}

void stream(Server& s, const httplib::Request& req, httplib::Response& res) {
  auto p = find(s, req.matches[1].str());
  if (!p) return send_error(res, 404, "no prediction " + req.matches[1].str(), "not_found_error");
  auto next = std::make_shared<size_t>(0);
  auto n_events = std::make_shared<int64_t>(0);
  res.set_header("Cache-Control", "no-store");
  res.set_chunked_content_provider(
      "text/event-stream",
      [p, next, n_events](size_t, httplib::DataSink& sink) {
        std::string text;
        const bool done = take_output(*p->job, next.get(), &text, std::chrono::milliseconds(250));
        if (!text.empty()) {
          const std::string ev = sse_event("output", text, std::to_string((*n_events)++));
          if (!sink.write(ev.data(), ev.size())) {
            p->job->cancel.store(true);
            return false;
          }
        }
        if (!done) return true;
        std::string ev;
        if (!p->job->error.empty() && !p->canceled.load())
          ev = sse_event("error", json{{"detail", p->job->error}}.dump());
        else
          ev = sse_event("done", p->canceled.load() ? json{{"reason", "canceled"}}.dump() : "{}");
        if (!sink.write(ev.data(), ev.size())) return false;
        sink.done();
        return true;
      },
      [p, held = s.open_stream()](bool success) {
        // The stream's reader left before the end: nobody will read the
        // rest, so the slot goes to someone else.
        if (!success) p->job->cancel.store(true);
      });
}

}  // namespace

void register_replicate(Server& s, httplib::Server& http) {
  http.Post(R"(/v1/models/([^/]+)/([^/]+)/predictions)", [&s](const httplib::Request& req, httplib::Response& res) {
    create(s, req, res, req.matches[1].str() + "/" + req.matches[2].str());
  });
  http.Post("/v1/predictions",
            [&s](const httplib::Request& req, httplib::Response& res) { create(s, req, res, ""); });
  http.Get(R"(/v1/predictions/([^/]+))", [&s](const httplib::Request& req, httplib::Response& res) {
    auto p = find(s, req.matches[1].str());
    if (!p) return send_error(res, 404, "no prediction " + req.matches[1].str(), "not_found_error");
    send_json(res, 200, prediction_json(*p, base_url(req)));
  });
  http.Post(R"(/v1/predictions/([^/]+)/cancel)", [&s](const httplib::Request& req, httplib::Response& res) {
    auto p = find(s, req.matches[1].str());
    if (!p) return send_error(res, 404, "no prediction " + req.matches[1].str(), "not_found_error");
    {
      std::lock_guard<std::mutex> l(p->job->ch->mu);
      if (!p->job->done) p->canceled.store(true);
    }
    p->job->cancel.store(true);
    // Answer once it has left the batch, so the status reads "canceled".
    std::unique_lock<std::mutex> l(p->job->ch->mu);
    p->job->ch->cv.wait_for(l, std::chrono::seconds(5), [&] { return p->job->done; });
    l.unlock();
    send_json(res, 200, prediction_json(*p, base_url(req)));
  });
  http.Get(R"(/v1/predictions/([^/]+)/stream)", [&s](const httplib::Request& req, httplib::Response& res) { stream(s, req, res); });
}

}  // namespace cria::server
