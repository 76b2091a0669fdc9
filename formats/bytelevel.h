// GPT-2's byte-level alphabet: byte-level BPE vocabularies (tokenizer.json,
// GGUF "gpt2" tokenizers) spell every byte as a printable code point. cria
// stores raw bytes, so readers undo the mapping once at conversion time.
#pragma once

#include <string>
#include <string_view>

namespace cria {

// Code point that spells byte b.
unsigned bytelevel_char(unsigned char b);

// Decodes a token spelled in the byte-level alphabet to raw bytes. Returns
// false when it contains a code point outside the alphabet (or bad UTF-8).
bool bytelevel_decode(std::string_view token, std::string* bytes);

}  // namespace cria
