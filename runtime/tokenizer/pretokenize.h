// Pre-tokenization: splitting text into the pieces BPE runs on, as the
// Hugging Face tokenizers pre-tokenizers do. Each regex is a hand-written
// matcher with the semantics of the backtracking engine (Oniguruma) that
// tokenizers uses; see docs/TOKENIZER.md for the derivation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "formats/model_meta.h"
#include "formats/status.h"

namespace cria::tok {

using Pieces = std::vector<std::string_view>;

// Receives pre-tokens one at a time (a non-owning callable reference).
struct PieceSink {
  void* ctx;
  void (*fn)(void* ctx, std::string_view piece);
  void operator()(std::string_view piece) const { fn(ctx, piece); }

  template <typename F>
  static PieceSink of(F& f) {
    return {&f, [](void* c, std::string_view p) { (*static_cast<F*>(c))(p); }};
  }
};

class PreTokenizer {
 public:
  // Checks that cria implements this sequence: exactly one ByteLevel step,
  // the regex splits (Llama 3 split, ByteLevel use_regex) before it.
  static Status validate(const std::vector<PreTokStep>& steps);

  PreTokenizer() = default;
  explicit PreTokenizer(std::vector<PreTokStep> steps) : steps_(std::move(steps)) {}

  // Passes the pre-tokens of `text` to `sink`, in order. A piece views
  // `text` or *buf (scratch for ByteLevel's prefix space) and is valid only
  // during the sink call.
  void split(std::string_view text, std::string* buf, PieceSink sink) const;

  // The pre-tokens as owned strings (tests, tools).
  std::vector<std::string> split_to_strings(std::string_view text) const;

 private:
  void run(size_t step, std::string_view piece, bool mapped, std::string* buf, PieceSink sink) const;

  std::vector<PreTokStep> steps_;
};

// The individual splitters, each appending the pieces of s (in order,
// covering s exactly). `mapped`: s is already byte-level mapped, so each byte
// is one character classified as its alphabet character.
void split_llama3(std::string_view s, Pieces* out);
void split_gpt2(std::string_view s, Pieces* out);
void split_punctuation(std::string_view s, bool mapped, Pieces* out);
void split_digits(std::string_view s, bool mapped, bool individual, Pieces* out);
void split_digits3(std::string_view s, Pieces* out);

}  // namespace cria::tok
