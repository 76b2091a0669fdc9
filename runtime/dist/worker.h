// A worker rank (1..N-1): loads its layers (layer split) or its shard of
// every layer (tensor split) when rank 0's hello arrives, then handles
// messages in chain order until shutdown.
#pragma once

#include "runtime/dist/options.h"

namespace cria::dist {

// The process's exit status.
int run_worker(const Options& opt, int rank, int size);

}  // namespace cria::dist
