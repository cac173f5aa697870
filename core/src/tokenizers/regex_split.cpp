#include "tokenizers/regex_split.hpp"

#include <pcre2.h>

#include <memory>

#include "llmscope/error.hpp"

namespace llmscope::detail {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;

// Match data is per call so concurrent encodes never share it.
MatchData match_data(const pcre2_code* re) {
  MatchData md(pcre2_match_data_create_from_pattern(re, nullptr), &pcre2_match_data_free);
  if (!md) throw Error("out of memory creating PCRE2 match data");
  return md;
}

}  // namespace

RegexSplit::RegexSplit(const std::string& pattern, const std::string& what) : pattern_(pattern) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  re_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr);
  if (re_ == nullptr) {
    throw Error(what + ": the pattern " + pattern + " does not compile at offset " +
                std::to_string(offset) + ": " + pcre2_message(code));
  }
  // JIT is an optimisation only; without it (unsupported CPU, W^X policy) matching still works.
  pcre2_jit_compile(re_, PCRE2_JIT_COMPLETE);
}

RegexSplit::~RegexSplit() { pcre2_code_free(re_); }

void RegexSplit::split(std::string_view text,
                       const std::function<void(std::string_view)>& fn) const {
  split_marked(text, [&](std::string_view piece, bool) { fn(piece); });
}

void RegexSplit::split_marked(std::string_view text,
                              const std::function<void(std::string_view, bool)>& fn) const {
  if (text.empty()) return;
  const MatchData md = match_data(re_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;      // where the next search starts
  size_t emitted = 0;  // text before this went to fn
  while (pos < text.size()) {
    const int rc =
        pcre2_match(re_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error("pre-tokenizer regex failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t start = ov[0];
    const size_t end = ov[1];
    if (end == start) {  // an empty match is no piece; step one character on
      pos = start + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > emitted) fn(text.substr(emitted, start - emitted), false);  // a gap is a piece
    fn(text.substr(start, end - start), true);
    emitted = pos = end;
  }
  if (emitted < text.size()) fn(text.substr(emitted), false);
}

size_t RegexSplit::match_at(std::string_view text, size_t pos) const {
  const MatchData md = match_data(re_);
  const int rc = pcre2_match(re_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                             PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, md.get(), nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return std::string_view::npos;
  if (rc < 0) throw Error("regex failed: " + pcre2_message(rc));
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
  return ov[1] - ov[0];
}

const RegexSplit& gpt2_split() {
  static const RegexSplit split(kGpt2SplitPattern, "GPT-2's pre-tokenizer");
  return split;
}

}  // namespace llmscope::detail
