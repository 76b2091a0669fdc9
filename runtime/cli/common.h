// Pieces shared by the commands that run a model through the public API.
#pragma once

#include <string>

#include "cria/cria.h"

namespace cria::cli {

// Loads a model; on failure prints the error and returns nullptr.
cria_model* load_model(const std::string& path, double* seconds = nullptr);
// Creates a session (0 means the default for ctx, threads and batch); on
// failure prints the error, frees the model and returns nullptr.
cria_session* open_session(cria_model* m, int64_t ctx, int64_t threads, int64_t n_seq = 1, int64_t batch = 0);
// Reads a whole file into `out`; false (and an error printed) on failure.
bool read_file(const std::string& path, std::string* out);
// "cria: <last error>" to stderr, status 1.
int api_fail(const char* what = nullptr);
// Peak resident set size of this process in bytes.
long long peak_rss_bytes();
// Validates a --threads value (0 means all cores when allowed).
bool check_threads(long long threads, std::string* err);

}  // namespace cria::cli
