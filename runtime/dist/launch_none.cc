// The distributed layer of a build without MPI: a single process, as always.
#include <cstdio>
#include <cstdlib>

#include "runtime/dist/dist.h"
#include "runtime/dist/options.h"

namespace cria::dist {

int launch(int* argc, char** argv, bool* done) {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (!size) size = std::getenv("PMI_SIZE");
  if ((size && std::atoi(size) > 1) || has_dist_options(*argc, argv)) {
    std::fprintf(stderr,
                 "cria: this cria was built without MPI, so it cannot run one model across ranks "
                 "(install libopenmpi-dev and configure with -DCRIA_MPI=ON)\n");
    *done = true;
    return 1;
  }
  return 0;
}

int finish(int rc) { return rc; }

}  // namespace cria::dist
