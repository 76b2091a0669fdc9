// The distributed layer of a build with MPI.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "runtime/dist/comm.h"
#include "runtime/dist/dist.h"
#include "runtime/dist/root.h"
#include "runtime/dist/worker.h"

namespace cria::dist {

namespace {

std::unique_ptr<RootPipeline> g_root;
bool g_mpi = false;

// The launcher's world size from its environment, without touching MPI:
// Open MPI, then MPICH/Hydra and Slurm's PMI. 0: not launched that way.
int launcher_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 0;
}

}  // namespace

int launch(int* argc, char** argv, bool* done) {
  if (launcher_size() <= 1) {
    if (has_dist_options(*argc, argv)) {
      std::fprintf(stderr, "cria: --split, --layer-split and --dist-timeout apply under mpirun -np N with N > 1\n");
      *done = true;
      return 2;
    }
    return 0;
  }
  int provided = 0;
  // Sessions may run on a thread other than main (an embedding app), one at a time.
  if (MPI_Init_thread(argc, &argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "cria: MPI_Init failed\n");
    *done = true;
    return 1;
  }
  g_mpi = true;
  // Errors are values: a failed exchange is reported, then the job ends.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Options opt;
  Status st = take_options(argc, argv, &opt);
  if (!st.ok()) {
    // Every rank parsed the same command line and stops alike; rank 0 says why.
    if (rank == 0) std::fprintf(stderr, "cria: %s\n", st.message().c_str());
    MPI_Finalize();
    *done = true;
    return 2;
  }
  // What each rank offers the model, for the layer split (rank 0). A rank
  // that cannot say (a bad CRIA_MEM_AVAILABLE) still takes part, with -1,
  // so every rank learns to stop.
  Result<int64_t> offer = memory_to_offer();
  if (!offer.ok()) std::fprintf(stderr, "cria: rank %d: %s\n", rank, offer.status().message().c_str());
  st = gather_all(offer.ok() ? offer.value() : -1, size, opt.timeout_s, &opt.mem_available);
  if (!st.ok()) {
    if (rank == 0) std::fprintf(stderr, "cria: %s\n", st.message().c_str());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  for (int64_t m : opt.mem_available) {
    if (m < 0) {
      MPI_Finalize();
      *done = true;
      return 2;
    }
  }
  if (rank > 0) {
    const int rc = run_worker(opt, rank, size);
    MPI_Finalize();
    *done = true;
    return rc;
  }
  g_root = std::make_unique<RootPipeline>(opt, size);
  set_process_pipeline(g_root.get());
  return 0;
}

int finish(int rc) {
  if (!g_mpi) return rc;
  if (g_root) rc = g_root->finish(rc);
  set_process_pipeline(nullptr);
  g_root.reset();
  MPI_Finalize();
  return rc;
}

}  // namespace cria::dist
