// Errors as values. Library code returns Status / Result<T>; only the CLI
// turns them into exit codes. Messages are one line and name the file they
// concern ("model.cria: truncated: ...").
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace cria {

enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kIo = 3,
  kCorrupt = 4,
  kUnsupported = 5,
  kOutOfRange = 6,
  kCancelled = 7,
  kOutOfMemory = 8,
  kInternal = 9,
};

const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with context, e.g. the file name.
  Status with_prefix(const std::string& prefix) const {
    if (ok()) return *this;
    return Status(code_, prefix + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status Error(Code code, std::string message) { return Status(code, std::move(message)); }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

#define CRIA_CONCAT_INNER_(a, b) a##b
#define CRIA_CONCAT_(a, b) CRIA_CONCAT_INNER_(a, b)

#define CRIA_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::cria::Status cria_status_ = (expr);   \
    if (!cria_status_.ok()) return cria_status_; \
  } while (0)

#define CRIA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#define CRIA_ASSIGN_OR_RETURN(lhs, expr) \
  CRIA_ASSIGN_OR_RETURN_IMPL_(CRIA_CONCAT_(cria_result_, __LINE__), lhs, expr)

}  // namespace cria
