// One function per `cria` subcommand; argv excludes the program and the
// subcommand name. Each returns the process exit status.
#pragma once

namespace cria::cli {

int cmd_convert(int argc, char** argv);
int cmd_inspect(int argc, char** argv);

}  // namespace cria::cli
