// A worker rank (1..N-1) of the layer pipeline: loads its layers when rank
// 0's hello arrives, then handles messages in chain order until shutdown.
#pragma once

#include "runtime/dist/options.h"

namespace cria::dist {

// The process's exit status.
int run_worker(const Options& opt, int rank, int size);

}  // namespace cria::dist
