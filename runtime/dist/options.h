// What every rank of a distributed run agrees on, with no MPI in sight: the
// options that pick the split, how layers are divided among ranks, and the
// identity of a model file (its header hash and the cria version), which
// ranks compare before they compute together. Unit-tested without mpirun.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/model_file.h"
#include "formats/status.h"

namespace cria::dist {

struct Options {
  std::string split = "layers";  // layers | tensors
  std::vector<int64_t> layer_split;  // layers per rank (--layer-split 10,6); empty: by free memory
  double timeout_s = 30;             // bound on each exchange (--dist-timeout, CRIA_MPI_TIMEOUT)
  // --split layers: a forward call of many tokens goes down the chain as
  // micro-batches of at least this many tokens (up to two per rank), so
  // rank r runs one while rank r + 1 runs the one before (--micro-batch;
  // 0: whole batches only).
  int64_t micro_batch = 32;
  // What a worker rank needs of the command line: it runs no command.
  std::string model_path, backend = "auto", weights = "auto";
  int64_t threads = 0;
  // Bytes each rank offers the model, in rank order (memory_to_offer() of
  // every rank, gathered at start). Empty: not known.
  std::vector<int64_t> mem_available;
};

// Takes --split, --layer-split, --micro-batch and --dist-timeout out of argv (they belong to
// the distributed layer, not to any command) and reads what a worker needs
// (-m/--model, -t/--threads, --backend, --weights) without removing it. argv[0] is the
// program, argv[1] the command. Errors name the option.
Status take_options(int* argc, char** argv, Options* o);
// True when any of take_options' own options was on the command line.
bool has_dist_options(int argc, char** argv);

// [begin, end) of each rank's layers, contiguous from rank 0: the counts of
// `split` when given (they must add up to n_layers), otherwise an even
// split with the remainder on the first ranks. Every rank gets at least one
// layer.
Result<std::vector<std::pair<int64_t, int64_t>>> layer_ranges(int64_t n_layers, int n_ranks,
                                                              const std::vector<int64_t>& split);

// The layer split when none is given: boards alike (free memory within 10%
// of each other) get layer_ranges' even split; boards of different sizes
// get layers in proportion to what each can hold once its fixed share is
// set aside (the last rank runs the output head, `head_bytes`), at least
// one each (Sainte-Lague: each next layer goes to the rank with the most
// room per 2 x its layers + 1, which rounds proportions without favouring
// the largest board).
Result<std::vector<std::pair<int64_t, int64_t>>> layer_ranges_by_memory(int64_t n_layers, int64_t head_bytes,
                                                                        const std::vector<int64_t>& mem);

// What this rank offers the model: CRIA_MEM_AVAILABLE when set (bytes, or a
// number with K, M or G: leave room on a board that runs other things),
// else MemAvailable of /proc/meminfo; 0 when neither is known.
Result<int64_t> memory_to_offer();

// XXH3 of the file's header (its checksum, sizes, format version) and this
// build's version: equal on two ranks when they would run the same model
// the same way. Tensor bytes are not read (each rank touches only its own).
uint64_t file_identity(const ModelFile& f);

}  // namespace cria::dist
