// The one UTF-8 unit (internal; the tokenizers, the corpus, figures): validation, lossy decoding
// with U+FFFD as Hugging Face and Python decode, decoding and encoding a code point, and
// replacing a substring (the tokenizers' "▁" and Replace steps).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmscope::detail {

// Length of the valid UTF-8 sequence at s[i], or 0 with *bad_len = the maximal invalid subpart.
size_t utf8_sequence(const unsigned char* s, size_t n, size_t i, size_t* bad_len);
// Byte offset of the first invalid UTF-8 sequence, or npos.
size_t find_invalid_utf8(std::string_view text);
// Invalid sequences become U+FFFD, one per maximal subpart.
std::string utf8_lossy(std::string_view bytes);
void append_utf8(std::string& out, uint32_t cp);
// Decodes the code point at text[*i] and advances *i past it; false (leaving *i) on an invalid
// sequence: a stray byte, an overlong form, a surrogate, a value above U+10FFFF, a truncation.
bool next_code_point(std::string_view text, size_t* i, uint32_t* cp);
// Every occurrence of `from` (not empty) replaced by `to`, left to right, without overlaps.
void replace_all(std::string& text, std::string_view from, std::string_view to);

}  // namespace llmscope::detail
