// GPT-2's byte-level alphabet (internal), shared by every byte-level BPE: each byte gets a
// printable stand-in character, so a vocabulary of strings can hold arbitrary bytes. Printable
// Latin-1 bytes stand for themselves, the rest map to U+0100 onward.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace llmscope::detail {

// For each byte, the UTF-8 of the character that stands for it in vocab.json and merges.
const std::array<std::string, 256>& byte_level_chars();

// The vocabulary string that stands for `bytes` (each byte replaced by its stand-in).
std::string to_byte_level(std::string_view bytes);

// The bytes a vocabulary string stands for. A string holding a character outside the alphabet
// (an added token, say) stands for its own UTF-8, as Hugging Face's ByteLevel decoder does.
std::string from_byte_level(const std::string& token);

}  // namespace llmscope::detail
