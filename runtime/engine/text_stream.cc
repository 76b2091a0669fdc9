#include "runtime/engine/text_stream.h"

#include <algorithm>

namespace cria {

TextStream::TextStream(const Tokenizer& tok, const std::vector<std::string>& stops)
    : dec_(tok, /*skip_special=*/true), stops_(stops) {
  size_t longest = 0;
  for (const std::string& s : stops) longest = std::max(longest, s.size());
  held_.reserve(longest + 256);
  out_.reserve(longest + 256);
}

std::string_view TextStream::release(size_t n) {
  out_.assign(held_, 0, n);
  held_.erase(0, n);
  return out_;
}

std::string_view TextStream::push(int32_t id) {
  if (stopped_) return {};
  held_.append(dec_.push(id));
  // A stop string inside the held text ends the sequence right before it.
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    if (s.empty()) continue;
    size_t p = held_.find(s);
    if (p != std::string::npos) cut = std::min(cut, p);
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    held_.resize(cut);
    return release(held_.size());
  }
  // Hold back the longest tail that is a prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  return release(held_.size() - keep);
}

std::string_view TextStream::flush() {
  if (!stopped_) held_.append(dec_.flush());
  return release(held_.size());
}

}  // namespace cria
