#include "runtime/dist/options.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "runtime/model/weight_copy.h"

namespace cria::dist {

namespace {

// "--name value" or "--name=value" at argv[i]; *consumed: argv entries used.
bool match(const char* arg, const char* name, const char* next, std::string* value, int* consumed) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0) return false;
  if (arg[n] == '=') {
    *value = arg + n + 1;
    *consumed = 1;
    return true;
  }
  if (arg[n] != '\0') return false;
  *value = next ? next : "";
  *consumed = next ? 2 : 1;
  return true;
}

Status parse_split(const std::string& v, std::vector<int64_t>* out) {
  out->clear();
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    if (comma == std::string::npos) comma = v.size();
    const std::string item = v.substr(start, comma - start);
    char* end = nullptr;
    const long long n = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end || n < 0)
      return Error(Code::kInvalidArgument, "--layer-split expects layer counts like 10,6, got '" + v + "'");
    out->push_back(n);
    start = comma + 1;
  }
  return Status::Ok();
}

const char* const kOwn[] = {"--split", "--layer-split", "--micro-batch", "--dist-timeout"};

}  // namespace

bool has_dist_options(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    for (const char* name : kOwn) {
      std::string v;
      int used = 0;
      if (match(argv[i], name, nullptr, &v, &used)) return true;
    }
  return false;
}

Status take_options(int* argc, char** argv, Options* o) {
  if (const char* t = std::getenv("CRIA_MPI_TIMEOUT")) o->timeout_s = std::atof(t);
  int w = 2;
  for (int i = 2; i < *argc;) {
    const char* next = i + 1 < *argc ? argv[i + 1] : nullptr;
    std::string v;
    int used = 0;
    if (match(argv[i], "--split", next, &v, &used)) {
      if (v != "layers" && v != "tensors")
        return Error(Code::kInvalidArgument, "--split expects layers or tensors, got '" + v + "'");
      o->split = v;
    } else if (match(argv[i], "--layer-split", next, &v, &used)) {
      CRIA_RETURN_IF_ERROR(parse_split(v, &o->layer_split));
    } else if (match(argv[i], "--micro-batch", next, &v, &used)) {
      char* end = nullptr;
      o->micro_batch = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || o->micro_batch < 0)
        return Error(Code::kInvalidArgument, "--micro-batch expects a token count >= 0 (0: off), got '" + v + "'");
    } else if (match(argv[i], "--dist-timeout", next, &v, &used)) {
      char* end = nullptr;
      o->timeout_s = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(o->timeout_s > 0))
        return Error(Code::kInvalidArgument, "--dist-timeout expects seconds > 0, got '" + v + "'");
    } else {
      // Kept for the command; a worker reads its model, threads, backend and weights.
      if (match(argv[i], "--model", next, &v, &used) || match(argv[i], "-m", next, &v, &used)) o->model_path = v;
      else if (match(argv[i], "--threads", next, &v, &used) || match(argv[i], "-t", next, &v, &used))
        o->threads = std::atoll(v.c_str());
      else if (match(argv[i], "--backend", next, &v, &used)) o->backend = v;
      else if (match(argv[i], "--weights", next, &v, &used)) o->weights = v;
      // Only the option itself moves now; its value is copied on the next turn.
      argv[w++] = argv[i++];
      continue;
    }
    i += used;
  }
  argv[w] = nullptr;
  *argc = w;
  if (!(o->timeout_s > 0)) return Error(Code::kInvalidArgument, "CRIA_MPI_TIMEOUT must be seconds > 0");
  return Status::Ok();
}

Result<std::vector<std::pair<int64_t, int64_t>>> layer_ranges(int64_t n_layers, int n_ranks,
                                                              const std::vector<int64_t>& split) {
  std::vector<std::pair<int64_t, int64_t>> r;
  if (!split.empty()) {
    if ((int64_t)split.size() != n_ranks)
      return Error(Code::kInvalidArgument, "--layer-split names " + std::to_string(split.size()) +
                                               " ranks but the job has " + std::to_string(n_ranks));
    int64_t sum = 0;
    for (int64_t c : split) {
      // The first rank embeds and the last runs the head, each after its
      // own layers: a rank without layers would have to pass through.
      if (c < 1) return Error(Code::kInvalidArgument, "--layer-split: every rank needs at least one layer");
      r.push_back({sum, sum + c});
      sum += c;
    }
    if (sum != n_layers)
      return Error(Code::kInvalidArgument, "--layer-split adds up to " + std::to_string(sum) +
                                               " layers but the model has " + std::to_string(n_layers));
    return r;
  }
  if (n_layers < n_ranks)
    return Error(Code::kInvalidArgument, "the model has " + std::to_string(n_layers) + " layers, fewer than the " +
                                             std::to_string(n_ranks) + " ranks: run fewer ranks (or --layer-split)");
  int64_t begin = 0;
  for (int i = 0; i < n_ranks; ++i) {
    const int64_t c = n_layers / n_ranks + (i < n_layers % n_ranks ? 1 : 0);
    r.push_back({begin, begin + c});
    begin += c;
  }
  return r;
}

Result<std::vector<std::pair<int64_t, int64_t>>> layer_ranges_by_memory(int64_t n_layers, int64_t head_bytes,
                                                                        const std::vector<int64_t>& mem) {
  const int n = (int)mem.size();
  const auto [lo, hi] = std::minmax_element(mem.begin(), mem.end());
  if (n < 2 || n_layers < n || *lo <= 0 || (double)*hi <= 1.1 * (double)*lo) return layer_ranges(n_layers, n, {});
  std::vector<double> room(mem.begin(), mem.end());
  room.back() = std::max(room.back() - (double)head_bytes, 1.0);
  std::vector<int64_t> count((size_t)n, 1);
  for (int64_t left = n_layers - n; left > 0; --left) {
    int best = 0;
    for (int i = 1; i < n; ++i)
      if (room[i] / (double)(2 * count[i] + 1) > room[best] / (double)(2 * count[best] + 1)) best = i;
    ++count[best];
  }
  return layer_ranges(n_layers, n, count);
}

Result<int64_t> memory_to_offer() {
  if (const char* v = std::getenv("CRIA_MEM_AVAILABLE")) {
    char* end = nullptr;
    const double x = std::strtod(v, &end);
    double unit = 1;
    if (end && *end) {
      const char u = (char)std::toupper((unsigned char)*end);
      unit = u == 'K' ? 1024.0 : u == 'M' ? 1048576.0 : u == 'G' ? 1073741824.0 : 0;
      if (unit != 0 && end[1] != '\0' && !(std::toupper((unsigned char)end[1]) == 'B' && end[2] == '\0')) unit = 0;
    }
    if (end == v || !(x > 0) || unit == 0)
      return Error(Code::kInvalidArgument,
                   std::string("CRIA_MEM_AVAILABLE: '") + v + "' is not a size (bytes, or a number with K, M or G)");
    return (int64_t)(x * unit);
  }
  return (int64_t)mem_available();
}

uint64_t file_identity(const ModelFile& f) {
  const Preamble& p = f.preamble();
  std::string id = std::string(CRIA_VERSION) + "|" + std::to_string(p.major) + "." + std::to_string(p.minor) + "|" +
                   std::to_string(p.header_size) + "|" + std::to_string(p.header_checksum) + "|" +
                   std::to_string(p.data_size) + "|" + std::to_string(f.file_size());
  return checksum_bytes(id.data(), id.size());
}

}  // namespace cria::dist
