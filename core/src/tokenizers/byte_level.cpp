#include "tokenizers/byte_level.hpp"

#include <cstdint>
#include <unordered_map>

#include "base/utf8.hpp"

namespace llmscope::detail {

namespace {

struct ByteMap {
  std::array<std::string, 256> byte_to_char;
  std::unordered_map<uint32_t, unsigned char> char_to_byte;

  ByteMap() {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const uint32_t cp = printable ? b : next++;
      append_utf8(byte_to_char[b], cp);
      char_to_byte[cp] = static_cast<unsigned char>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace

const std::array<std::string, 256>& byte_level_chars() { return byte_map().byte_to_char; }

std::string to_byte_level(std::string_view bytes) {
  const auto& chars = byte_map().byte_to_char;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += chars[static_cast<unsigned char>(c)];
  return out;
}

std::string from_byte_level(const std::string& token) {
  const auto& map = byte_map().char_to_byte;
  std::string out;
  size_t i = 0;
  uint32_t cp = 0;
  while (i < token.size()) {
    if (!next_code_point(token, &i, &cp)) return token;
    const auto it = map.find(cp);
    if (it == map.end()) return token;
    out += static_cast<char>(it->second);
  }
  return out;
}

}  // namespace llmscope::detail
