// cria tokenize -m FILE (--text T | --file F) [--lines] [--bos] [--no-special]
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/common.h"
#include "runtime/cli/term.h"

namespace cria::cli {

namespace {

bool print_ids(cria_model* m, const std::string& text, bool bos, bool special) {
  size_t n = 0;
  std::vector<int32_t> ids(text.size() + 8);
  if (cria_tokenize(m, text.data(), text.size(), bos, special, ids.data(), ids.size(), &n) != CRIA_OK) return false;
  if (n > ids.size()) {
    ids.resize(n);
    if (cria_tokenize(m, text.data(), text.size(), bos, special, ids.data(), ids.size(), &n) != CRIA_OK) return false;
  }
  std::string line;
  for (size_t i = 0; i < n; ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  return true;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
  std::string model_path, text, file;
  bool lines = false, bos = false, no_special = false;
  Args a("tokenize", "-m FILE (--text T | --file F) [--lines] [--bos] [--no-special]");
  a.str("--model", &model_path, "FILE", "model file (.cria)");
  a.alias("-m", "--model");
  a.str("--text", &text, "TEXT", "text to encode");
  a.str("--file", &file, "FILE", "encode a file's contents");
  a.flag("--lines", &lines, "encode each line separately (without its newline), one output line each");
  a.flag("--bos", &bos, "prepend the BOS token");
  a.flag("--no-special", &no_special, "encode special-token text as plain text");
  if (!a.parse(argc, argv)) return usage_error(a.error(), a.usage());
  if (a.help_requested()) {
    std::fputs(a.usage().c_str(), stdout);
    return 0;
  }
  if (model_path.empty()) return usage_error("missing -m FILE", a.usage());
  if (a.given("--text") == !file.empty()) return usage_error("give exactly one of --text and --file", a.usage());
  if (!file.empty() && !read_file(file, &text)) return 1;
  ModelPtr m_owner = load_model(model_path);
  if (!m_owner) return 1;
  cria_model* m = m_owner.get();
  bool ok = true;
  if (lines) {
    size_t start = 0;
    while (ok && start < text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      ok = print_ids(m, text.substr(start, nl - start), bos, !no_special);
      start = nl + 1;
    }
  } else {
    ok = print_ids(m, text, bos, !no_special);
  }
  int rc = ok ? 0 : api_fail();
  return rc;
}

}  // namespace cria::cli
