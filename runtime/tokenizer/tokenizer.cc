#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>
#include <limits>

namespace cria {
namespace {

Status bad(const std::string& what) { return Error(Code::kInvalidArgument, "tokenizer: " + what); }

}  // namespace

struct Tokenizer::EncodeWork {
  std::vector<tok::Segment> segments;
  std::string prefix_buf;
  tok::BpeWork bpe;
};

Result<std::unique_ptr<Tokenizer>> Tokenizer::create(const TokenizerData& data) {
  if (data.vocab.empty()) return bad("empty vocabulary");
  if (data.vocab.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return bad("vocabulary of " + std::to_string(data.vocab.size()) + " tokens is too large");
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const auto n = static_cast<int32_t>(data.vocab.size());

  size_t total = 0;
  for (const std::string& v : data.vocab) total += v.size();
  if (total > std::numeric_limits<uint32_t>::max()) return bad("vocabulary bytes exceed 4 GiB");
  t->vocab_.bytes.reserve(total);
  t->vocab_.offsets.reserve(data.vocab.size() + 1);
  for (const std::string& v : data.vocab) {
    t->vocab_.bytes.append(v);
    t->vocab_.offsets.push_back(static_cast<uint32_t>(t->vocab_.bytes.size()));
  }

  // Added tokens: validated, and kept out of the BPE index unless their bytes
  // are not those of a regular token (then find_token still finds them).
  t->special_.assign(data.vocab.size(), 0);
  std::vector<uint8_t> is_added(data.vocab.size(), 0);
  std::vector<tok::AddedEntry> entries;
  for (const AddedToken& a : data.added_tokens) {
    if (a.id >= static_cast<uint32_t>(n)) {
      return bad("added token '" + a.content + "' has id " + std::to_string(a.id) + ", outside the vocabulary of " +
                 std::to_string(n));
    }
    if (a.content.empty()) return bad("added token " + std::to_string(a.id) + " has empty content");
    if (data.vocab[a.id] != a.content) {
      return bad("added token " + std::to_string(a.id) + " '" + a.content +
                 "' differs from the vocabulary entry for that id");
    }
    is_added[a.id] = 1;
    if (a.special) t->special_[a.id] = 1;
    entries.push_back({static_cast<int32_t>(a.id), a.content, a.special, a.lstrip, a.rstrip, a.single_word,
                       a.normalized});
  }
  t->added_.init(std::move(entries));

  std::vector<int32_t> order;
  order.reserve(data.vocab.size());
  for (int32_t id = 0; id < n; ++id) {
    if (!is_added[id]) order.push_back(id);
  }
  for (int32_t id = 0; id < n; ++id) {
    if (is_added[id]) order.push_back(id);
  }
  CRIA_RETURN_IF_ERROR(t->bpe_.init(&t->vocab_, order, data.merges, data.ignore_merges).with_prefix("tokenizer"));

  CRIA_RETURN_IF_ERROR(tok::PreTokenizer::validate(data.pre_tokenizer).with_prefix("tokenizer"));
  t->steps_ = data.pre_tokenizer;
  t->pretok_ = tok::PreTokenizer(data.pre_tokenizer);

  if (data.bos_id < -1 || data.bos_id >= n) return bad("bos_id " + std::to_string(data.bos_id) + " out of range");
  if (data.add_bos && data.bos_id < 0) return bad("add_bos is set but there is no bos_id");
  if (data.pad_id < -1 || data.pad_id >= n) return bad("pad_id " + std::to_string(data.pad_id) + " out of range");
  for (uint32_t e : data.eos_ids) {
    if (e >= static_cast<uint32_t>(n)) return bad("eos id " + std::to_string(e) + " out of range");
    t->eos_ids_.push_back(static_cast<int32_t>(e));
  }
  t->bos_id_ = data.bos_id;
  t->add_bos_ = data.add_bos;
  t->pad_id_ = data.pad_id;
  return t;
}

void Tokenizer::encode_text(std::string_view text, EncodeWork* w, std::vector<int32_t>* out) const {
  auto bpe = [&](std::string_view piece) { bpe_.encode(piece, &w->bpe, out); };
  pretok_.split(text, &w->prefix_buf, tok::PieceSink::of(bpe));
}

Status Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special, std::vector<int32_t>* out) const {
  out->clear();
  if (text.size() > std::numeric_limits<uint32_t>::max()) {
    return Error(Code::kInvalidArgument, "tokenizer: text of " + std::to_string(text.size()) + " bytes exceeds 4 GiB");
  }
  if (add_bos) {
    if (bos_id_ < 0) return Error(Code::kInvalidArgument, "tokenizer: add_bos requested but there is no BOS token");
    out->push_back(bos_id_);
  }
  out->reserve(out->size() + text.size() / 3 + 4);
  EncodeWork w;
  if (added_.empty()) {
    encode_text(text, &w, out);
    return Status::Ok();
  }
  added_.split(text, parse_special, &w.segments);
  for (const tok::Segment& seg : w.segments) {
    if (seg.id >= 0) {
      out->push_back(seg.id);
    } else {
      encode_text(text.substr(seg.begin, seg.end - seg.begin), &w, out);
    }
  }
  return Status::Ok();
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_.size()) return {};
  return vocab_.token(id);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string s;
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    s.append(token_bytes(id));
  }
  return s;
}

bool Tokenizer::is_eos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_.size() && special_[id] != 0;
}

int32_t Tokenizer::find_token(std::string_view content) const {
  for (const tok::AddedEntry& e : added_.entries()) {
    if (e.content == content) return e.id;
  }
  return bpe_.find(content);
}

// --- StreamDecoder ----------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special) : tok_(&tok), skip_special_(skip_special) {
  out_.reserve(64);
}

void StreamDecoder::reset() {
  npending_ = 0;
  needed_ = 0;
  lower_ = 0x80;
  upper_ = 0xBF;
}

void StreamDecoder::emit_replacement() { out_.append("\xEF\xBF\xBD"); }

// The WHATWG UTF-8 decoder, one byte at a time; valid sequences are copied
// through unchanged.
void StreamDecoder::feed(uint8_t b) {
  if (needed_ == 0) {
    if (b < 0x80) {
      out_.push_back(static_cast<char>(b));
      return;
    }
    if (b >= 0xC2 && b <= 0xDF) {
      needed_ = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      if (b == 0xE0) lower_ = 0xA0;
      if (b == 0xED) upper_ = 0x9F;
      needed_ = 2;
    } else if (b >= 0xF0 && b <= 0xF4) {
      if (b == 0xF0) lower_ = 0x90;
      if (b == 0xF4) upper_ = 0x8F;
      needed_ = 3;
    } else {
      emit_replacement();
      return;
    }
    pending_[0] = b;
    npending_ = 1;
    return;
  }
  if (b < lower_ || b > upper_) {
    // The pending bytes can never complete: one U+FFFD for them, then b
    // starts afresh.
    reset();
    emit_replacement();
    feed(b);
    return;
  }
  lower_ = 0x80;
  upper_ = 0xBF;
  pending_[npending_++] = b;
  if (--needed_ == 0) {
    out_.append(reinterpret_cast<const char*>(pending_), npending_);
    npending_ = 0;
  }
}

std::string_view StreamDecoder::push(int32_t id) {
  out_.clear();
  if (skip_special_ && tok_->is_special(id)) return out_;
  for (char c : tok_->token_bytes(id)) feed(static_cast<uint8_t>(c));
  return out_;
}

std::string_view StreamDecoder::flush() {
  out_.clear();
  if (needed_ != 0) emit_replacement();
  reset();
  return out_;
}

}  // namespace cria
