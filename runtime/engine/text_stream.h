// The text side of a generated sequence: ids become UTF-8 pieces (never half
// a character), and stop strings are honoured without ever showing a part of
// one: text that could still be the start of a stop string is held back
// until it can't.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"

namespace cria {

class TextStream {
 public:
  TextStream(const Tokenizer& tok, const std::vector<std::string>& stop_strings);

  // Text that became final with this token (valid until the next call).
  std::string_view push(int32_t id);
  // True once a stop string was seen; the text before it was returned.
  bool stopped() const { return stopped_; }
  // Whatever is held back (unless stopped), for the end of a sequence.
  std::string_view flush();

 private:
  std::string_view release(size_t n);

  StreamDecoder dec_;
  std::vector<std::string> stops_;
  std::string held_, out_;
  bool stopped_ = false;
};

}  // namespace cria
