#include "base/utf8.hpp"

namespace llmscope::detail {

// ---------------------------------------------------------------------------------------------
// UTF-8

// Length of the UTF-8 sequence starting at s[i] if it is valid; otherwise 0 and `*bad_len` is
// the length of the maximal subpart (the bytes that one U+FFFD replaces, as the Unicode standard,
// Rust's from_utf8_lossy and Python's errors="replace" all count it).
size_t utf8_sequence(const unsigned char* s, size_t n, size_t i, size_t* bad_len) {
  const unsigned char b = s[i];
  if (b < 0x80) {
    return 1;
  }
  size_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) {
      lo = 0xA0;  // overlong
    }
    if (b == 0xED) {
      hi = 0x9F;  // surrogates
    }
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) {
      lo = 0x90;  // overlong
    }
    if (b == 0xF4) {
      hi = 0x8F;  // above U+10FFFF
    }
  } else {
    *bad_len = 1;
    return 0;
  }
  size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= n) {
      break;
    }
    const unsigned char c = s[i + k];
    const bool ok = (k == 1) ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) {
      break;
    }
  }
  if (k == need + 1) {
    return need + 1;
  }
  *bad_len = k;
  return 0;
}

// Byte offset of the first invalid UTF-8 sequence, or npos.
size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    size_t bad = 0;
    const size_t len = utf8_sequence(s, text.size(), i, &bad);
    if (len == 0) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

std::string utf8_lossy(std::string_view bytes) {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t bad = 0;
    const size_t len = utf8_sequence(s, bytes.size(), i, &bad);
    if (len > 0) {
      out.append(bytes.data() + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      i += bad;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool next_code_point(std::string_view text, size_t* i, uint32_t* cp) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t bad = 0;
  const size_t length = utf8_sequence(s, text.size(), *i, &bad);
  if (length == 0) return false;
  uint32_t value = length == 1 ? s[*i] : s[*i] & (0x7Fu >> length);
  for (size_t k = 1; k < length; ++k) value = (value << 6) | (s[*i + k] & 0x3Fu);
  *cp = value;
  *i += length;
  return true;
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t at; (at = text.find(from, pos)) != std::string::npos; pos = at + from.size()) {
    out.append(text, pos, at - pos);
    out += to;
  }
  out.append(text, pos, std::string::npos);
  text = std::move(out);
}

}  // namespace llmscope::detail
