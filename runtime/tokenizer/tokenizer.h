// cria's tokenizer: byte-level BPE as described by a Hugging Face
// tokenizer.json (Llama 3, Falcon, GPT-2 style), built from the TokenizerData
// a .cria file carries. Text in, token ids out, and back to raw bytes.
//
//   CRIA_ASSIGN_OR_RETURN(auto tok, Tokenizer::create(meta.tokenizer));
//   std::vector<int32_t> ids;
//   CRIA_RETURN_IF_ERROR(tok->encode(prompt, tok->add_bos(), /*parse_special=*/true, &ids));
//
// A Tokenizer is immutable once created; encode/decode may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/model_meta.h"
#include "formats/status.h"
#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/bpe.h"
#include "runtime/tokenizer/pretokenize.h"

namespace cria {

class Tokenizer {
 public:
  // Validates `data` (ids in range, merges resolvable, a supported
  // pre-tokenizer) and builds the lookup tables.
  static Result<std::unique_ptr<Tokenizer>> create(const TokenizerData& data);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Replaces *out with the ids of `text`. add_bos prepends bos_id() (an
  // error if the vocabulary has none). parse_special: added tokens marked
  // special are recognised in the text; when false their text is encoded as
  // plain text (non-special added tokens are always recognised, as in
  // tokenizers). Any bytes are accepted: invalid UTF-8 is tokenized byte by byte.
  Status encode(std::string_view text, bool add_bos, bool parse_special, std::vector<int32_t>* out) const;

  // The raw bytes of the ids, concatenated (not necessarily valid UTF-8; no
  // clean-up of spaces). Ids outside the vocabulary decode to nothing;
  // skip_special drops special added tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Raw bytes of one token; empty for an id outside the vocabulary.
  std::string_view token_bytes(int32_t id) const;

  int32_t vocab_size() const { return vocab_.size(); }
  int32_t bos_id() const { return bos_id_; }
  bool add_bos() const { return add_bos_; }
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  bool is_eos(int32_t id) const;
  int32_t pad_id() const { return pad_id_; }

  // Id of the added token with this content, else of the vocabulary token
  // with these raw bytes, else -1.
  int32_t find_token(std::string_view content) const;
  // True for added tokens marked special (e.g. <|eot_id|>).
  bool is_special(int32_t id) const;

  const std::vector<PreTokStep>& pre_tokenizer() const { return steps_; }

 private:
  struct EncodeWork;
  Tokenizer() = default;
  void encode_text(std::string_view text, EncodeWork* w, std::vector<int32_t>* out) const;

  tok::Vocab vocab_;
  tok::Bpe bpe_;
  tok::PreTokenizer pretok_;
  tok::AddedTokens added_;
  std::vector<PreTokStep> steps_;
  std::vector<uint8_t> special_;  // per id
  int32_t bos_id_ = -1;
  bool add_bos_ = false;
  std::vector<int32_t> eos_ids_;
  int32_t pad_id_ = -1;
};

// Turns a stream of ids into text without ever splitting a UTF-8 character:
// bytes of an incomplete character wait for the next token; a sequence that
// can no longer become valid is emitted as U+FFFD (one per maximal invalid
// subpart, as the WHATWG/Unicode decoders do). No allocation per token once
// the output buffer has grown to the longest token.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false);

  // Text completed by this token; valid until the next call.
  std::string_view push(int32_t id);
  // Whatever is pending (an incomplete character becomes U+FFFD); resets.
  std::string_view flush();
  void reset();
  // Bytes held back, waiting for the rest of a character (0..3).
  int pending() const { return npending_; }

 private:
  void feed(uint8_t b);
  void emit_replacement();

  const Tokenizer* tok_;
  bool skip_special_;
  std::string out_;
  uint8_t pending_[4] = {};
  int npending_ = 0;
  int needed_ = 0;  // continuation bytes still expected
  uint8_t lower_ = 0x80, upper_ = 0xBF;
};

}  // namespace cria
