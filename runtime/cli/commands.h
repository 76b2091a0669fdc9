// One function per `cria` subcommand; argv excludes the program and the
// subcommand name. Each returns the process exit status.
#pragma once

namespace cria::cli {

int cmd_convert(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_serve(int argc, char** argv);
int cmd_devices(int argc, char** argv);

}  // namespace cria::cli
