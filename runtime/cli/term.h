// Terminal helpers for the CLI: error reporting, byte formatting and a
// progress bar that redraws in place on a terminal and prints plain lines
// otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cria::cli {

// Prints "cria: <message>" to stderr and returns the exit status 1.
int fail(const std::string& message);
// Usage errors: message, usage text, exit status 2.
int usage_error(const std::string& message, const std::string& usage);

std::string human_bytes(double bytes);
bool stderr_is_tty();

class Progress {
 public:
  explicit Progress(std::string label);
  // Redraws at most ~10 times a second (terminal) or prints `line` when
  // given (not a terminal).
  void update(uint64_t done, uint64_t total, const std::string& what);
  void line(const std::string& text);
  void finish(const std::string& summary);

 private:
  std::string label_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
  size_t last_width_ = 0;
};

}  // namespace cria::cli
