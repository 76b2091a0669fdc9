// The cria command-line tool: one binary, one subcommand per job.
#include <cstdio>
#include <cstring>
#include <string>

#include "cria/cria.h"
#include "runtime/cli/commands.h"
#include "runtime/dist/dist.h"

namespace {

struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* help;
};

const Command kCommands[] = {
    {"convert", cria::cli::cmd_convert, "convert a Hugging Face checkpoint or GGUF file to .cria"},
    {"inspect", cria::cli::cmd_inspect, "show a .cria file's architecture, tokenizer and tensors"},
    {"run", cria::cli::cmd_run, "complete a prompt, streaming the text"},
    {"chat", cria::cli::cmd_chat, "chat interactively in the model's template"},
    {"tokenize", cria::cli::cmd_tokenize, "print the token ids of a text"},
    {"perplexity", cria::cli::cmd_perplexity, "perplexity of a text file"},
    {"bench", cria::cli::cmd_bench, "measure prefill and decode speed"},
    {"serve", cria::cli::cmd_serve, "serve the model over HTTP (OpenAI and Replicate APIs)"},
    {"devices", cria::cli::cmd_devices, "list the GPU devices Vulkan sees"},
};

void print_help() {
  std::printf("usage: cria COMMAND [options]   (cria COMMAND --help for its options)\n\ncommands:\n");
  for (const Command& c : kCommands) std::printf("  %-12s %s\n", c.name, c.help);
}

int run(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("cria %s\n", cria_version());
    return 0;
  }
  for (const Command& c : kCommands)
    if (!std::strcmp(argv[1], c.name)) return c.fn(argc - 2, argv + 2);
  std::fprintf(stderr, "cria: unknown command '%s'\n", argv[1]);
  print_help();
  return 2;
}

}  // namespace

// Under mpirun -np N (N > 1) rank 0 runs the command and the other ranks
// serve its model's layers (runtime/dist); otherwise this is a plain run.
int main(int argc, char** argv) {
  bool done = false;
  const int rc = cria::dist::launch(&argc, argv, &done);
  if (done) return rc;
  return cria::dist::finish(run(argc, argv));
}
