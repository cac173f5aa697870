// Pre-tokenisation by regular expression (internal): Hugging Face's Split(Regex, Isolated), run
// by PCRE2 with UTF and UCP so \s, \p{L} and (?i:) follow Unicode as Oniguruma does in HF. GPT-2's
// pattern is ByteLevel(use_regex=true)'s; Llama 3 and Qwen2 name theirs in tokenizer.json.
#pragma once

#include <functional>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace llmscope::detail {

inline constexpr const char* kGpt2SplitPattern =
    R"('(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class RegexSplit {
 public:
  // Throws llmscope::Error naming `what` (where the pattern came from) when it does not compile.
  RegexSplit(const std::string& pattern, const std::string& what);
  ~RegexSplit();
  RegexSplit(const RegexSplit&) = delete;
  RegexSplit& operator=(const RegexSplit&) = delete;

  // Calls fn with the matches and the gaps between them, in order, skipping empty pieces; the
  // pieces concatenate to `text`, which must be valid UTF-8 (checked by the caller: PCRE2 is
  // told not to check, and invalid input would be undefined behaviour).
  void split(std::string_view text, const std::function<void(std::string_view)>& fn) const;

  // The same pieces, each with whether it is a match (true) or a gap between matches (false).
  void split_marked(std::string_view text,
                    const std::function<void(std::string_view, bool)>& fn) const;

  // Length of the match that starts exactly at `pos`, or npos when none does.
  size_t match_at(std::string_view text, size_t pos) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  pcre2_real_code_8* re_ = nullptr;
};

// GPT-2's split, compiled once for the process.
const RegexSplit& gpt2_split();

}  // namespace llmscope::detail
