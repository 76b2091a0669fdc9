// Pieces both APIs share: OpenAI-style JSON errors, typed reads of request
// fields that name the field and the problem, server-sent events, and
// waiting on a job's output.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runtime/server/scheduler.h"

namespace cria::server {

using json = nlohmann::json;

// {"error": {"message", "type", "param", "code"}} with the status.
void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& type = "invalid_request_error", const std::string& param = "");
void send_json(httplib::Response& res, int status, const json& body);

// Thrown by the field readers; the handlers turn it into a 400.
struct BadField {
  std::string param, message;
};

// Reads body[key] when present (and not null), checking its type and range.
std::optional<double> num_field(const json& body, const char* key, double lo, double hi);
std::optional<int64_t> int_field(const json& body, const char* key, int64_t lo, int64_t hi);
std::optional<bool> bool_field(const json& body, const char* key);
std::optional<std::string> str_field(const json& body, const char* key);

// The body as a JSON object, or a 400 already sent (and nullopt).
std::optional<json> parse_body(const httplib::Request& req, httplib::Response& res);

// One SSE event: "event: NAME\n" (when named), then the data split at
// newlines into data: lines, then a blank line.
std::string sse_event(const std::string& name, const std::string& data, const std::string& id = "");

// Waits until the job has pieces past *next, or is done, or `wait` passes.
// Appends the new pieces to *text; true when the job is done. Locks the
// job's channel.
bool take_output(Job& job, size_t* next, std::string* text, std::chrono::milliseconds wait);

std::string random_id(size_t n);
std::string iso_time(std::chrono::system_clock::time_point t);
const char* finish_reason(StopReason r);  // OpenAI's: "stop" | "length"

}  // namespace cria::server
