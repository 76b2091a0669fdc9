// A model split across the ranks of an MPI job (mpirun -np N cria ...).
// Rank 0 runs the command as usual (it tokenizes, samples and prints) with
// a LayerPipeline installed (runtime/engine/pipeline.h): each forward call
// of its sessions runs its own layers, then the hidden states flow rank r ->
// r + 1, and the last rank sends the logits rows back to rank 0. With
// --split tensors every rank runs every layer on its shard of the weights
// (runtime/model/shard.h) and the ranks add their partial sums (comm.h,
// RankOrderSum); rank 0 alone runs the head. Every other rank runs no
// command: it loads its layers (or shard) and serves the pipeline until
// rank 0 shuts it down.
//
// A process that was not started by an MPI launcher (or a build without
// MPI) never calls into MPI: the single-process path costs nothing.
#pragma once

namespace cria::dist {

// Called first in main. Under a launcher with N > 1 ranks it starts MPI;
// on a worker rank it runs the worker loop to the end, sets *done and
// returns the exit status; on rank 0 it installs the pipeline and takes the
// distributed options (--split, --layer-split, --dist-timeout) out of argv.
// Otherwise it leaves everything as it was. An error is printed ("cria:
// ...") and returned with *done set.
int launch(int* argc, char** argv, bool* done);

// Called with the command's exit status on the way out of main: on rank 0
// of a job it shuts the workers down, or ends the whole job when an
// exchange failed (a rank died or hangs), so no rank is left waiting.
int finish(int rc);

}  // namespace cria::dist
