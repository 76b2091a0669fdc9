#include "runtime/server/http_util.h"

#include <cmath>
#include <ctime>
#include <random>

namespace cria::server {

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                const std::string& param) {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  // Replicate's clients read `detail`; OpenAI's read `error`.
  send_json(res, status, {{"error", e}, {"detail", message}});
}

namespace {
const json* present(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}
std::string range_text(double lo, double hi) {
  auto f = [](double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
    return s;
  };
  return f(lo) + ".." + f(hi);
}
}  // namespace

std::optional<double> num_field(const json& body, const char* key, double lo, double hi) {
  const json* v = present(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw BadField{key, std::string("'") + key + "' must be a number"};
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    throw BadField{key, std::string("'") + key + "' must be in " + range_text(lo, hi)};
  return d;
}

std::optional<int64_t> int_field(const json& body, const char* key, int64_t lo, int64_t hi) {
  const json* v = present(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer() && !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>()))
    throw BadField{key, std::string("'") + key + "' must be an integer"};
  const double d = v->get<double>();
  if (d < (double)lo || d > (double)hi)
    throw BadField{key, std::string("'") + key + "' must be in " + std::to_string(lo) + ".." + std::to_string(hi)};
  return (int64_t)d;
}

std::optional<bool> bool_field(const json& body, const char* key) {
  const json* v = present(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw BadField{key, std::string("'") + key + "' must be true or false"};
  return v->get<bool>();
}

std::optional<std::string> str_field(const json& body, const char* key) {
  const json* v = present(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw BadField{key, std::string("'") + key + "' must be a string"};
  return v->get<std::string>();
}

std::optional<json> parse_body(const httplib::Request& req, httplib::Response& res) {
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    send_error(res, 400, "the request body is not valid JSON");
    return std::nullopt;
  }
  if (!body.is_object()) {
    send_error(res, 400, "the request body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

std::string sse_event(const std::string& name, const std::string& data, const std::string& id) {
  std::string out;
  if (!name.empty()) out += "event: " + name + "\n";
  if (!id.empty()) out += "id: " + id + "\n";
  // A newline inside the data starts another data: line; the client joins
  // them back with "\n". A trailing "\r" would be eaten as a line end, so
  // data keeps its \r only mid-line (EventSource semantics).
  size_t start = 0;
  for (;;) {
    size_t nl = data.find('\n', start);
    out += "data: " + data.substr(start, nl == std::string::npos ? std::string::npos : nl - start) + "\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  out += "\n";
  return out;
}

bool take_output(Job& job, size_t* next, std::string* text, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> l(job.ch->mu);
  job.ch->cv.wait_for(l, wait, [&] { return job.done || job.pieces.size() > *next; });
  for (; *next < job.pieces.size(); ++*next) text->append(job.pieces[*next]);
  return job.done;
}

std::string random_id(size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(n, 'a');
  for (char& c : s) c = kAlphabet[rng() % 36];
  return s;
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t secs = (std::time_t)(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
  return buf;
}

const char* finish_reason(StopReason r) {
  switch (r) {
    case StopReason::kMaxTokens:
    case StopReason::kContextFull:
    case StopReason::kCancelled: return "length";  // cut short (a deadline), not a natural end
    default: return "stop";
  }
}

}  // namespace cria::server
