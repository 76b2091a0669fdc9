// Verifies every tensor's XXH3-64 checksum while a .cria file's bytes
// arrive in order (a download streaming into memory), so a corrupted file is
// caught without a second pass over it. The same code checks a whole mapped
// file (ModelFile::verify_checksums, `cria inspect --verify`).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/status.h"

namespace cria {

class ChecksumStream {
 public:
  struct Entry {
    std::string name;
    uint64_t begin = 0, end = 0;  // absolute file offsets
    uint64_t checksum = 0;
  };

  // `entries` in any order (sorted here); `file` names the file in errors.
  ChecksumStream(std::vector<Entry> entries, std::string file);
  ~ChecksumStream();
  ChecksumStream(const ChecksumStream&) = delete;
  ChecksumStream& operator=(const ChecksumStream&) = delete;

  // From a file whose first bytes (preamble and header) are at `base`;
  // `size` is the declared file size. Errors name `file`.
  static Result<std::unique_ptr<ChecksumStream>> for_header(const uint8_t* base, uint64_t size,
                                                            const std::string& file);
  // The same for one byte range [begin, end) of the file, which arrives on
  // its own (a stage of a model split by layers fetches only its ranges):
  // the tensors inside it, with offsets counted from `begin`, so advance()
  // takes the range's own buffer. A tensor the range cuts is an error.
  static Result<std::unique_ptr<ChecksumStream>> for_range(const uint8_t* base, uint64_t size,
                                                           const std::string& file, uint64_t begin, uint64_t end);

  // The file's first `have` bytes are at `base`: hashes the ones not yet
  // seen. kCorrupt naming the tensor as soon as one completes with a wrong
  // checksum.
  Status advance(const uint8_t* base, uint64_t have);
  // kCorrupt unless every tensor was complete and matched.
  Status finish() const;

  uint64_t hashed() const { return hashed_; }  // tensor bytes hashed so far
  uint64_t total() const { return total_; }

 private:
  struct State;
  std::vector<Entry> entries_;
  std::string file_;
  std::unique_ptr<State> state_;
  size_t next_ = 0;       // first tensor not yet verified
  uint64_t pos_ = 0;      // next byte of entries_[next_] to hash
  bool started_ = false;  // entries_[next_]'s hash state is live
  uint64_t hashed_ = 0, total_ = 0;
  Status error_;
};

}  // namespace cria
