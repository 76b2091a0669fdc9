// A small command-line parser for the cria subcommands: --long options with a
// value (`--top-k 40` or `--top-k=40`), flags, and positionals. Errors are
// one line; the caller prints usage and exits with status 2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cria::cli {

class Args {
 public:
  Args(std::string command, std::string synopsis) : command_(std::move(command)), synopsis_(std::move(synopsis)) {}

  void flag(const char* name, bool* out, const char* help);
  void str(const char* name, std::string* out, const char* meta, const char* help);
  void i64(const char* name, int64_t* out, const char* meta, const char* help);
  void f64(const char* name, double* out, const char* meta, const char* help);
  // A short alias (e.g. "-m") for an option already declared.
  void alias(const char* short_name, const char* long_name);
  void positional(const char* meta, std::string* out, bool required);
  // Repeatable option collecting every value.
  void list(const char* name, std::vector<std::string>* out, const char* meta, const char* help);

  // False on error (message in error()). --help sets help_requested().
  bool parse(int argc, char** argv);
  const std::string& error() const { return error_; }
  bool help_requested() const { return help_; }
  bool given(const char* name) const;
  std::string usage() const;

 private:
  enum class Kind { kFlag, kStr, kI64, kF64, kList };
  struct Opt {
    std::string name, meta, help;
    Kind kind;
    void* out;
    bool given = false;
  };
  struct Pos {
    std::string meta;
    std::string* out;
    bool required;
  };
  Opt* find(const std::string& name);

  std::string command_, synopsis_, error_;
  std::vector<Opt> opts_;
  std::vector<std::pair<std::string, std::string>> aliases_;
  std::vector<Pos> pos_;
  bool help_ = false;
};

}  // namespace cria::cli
