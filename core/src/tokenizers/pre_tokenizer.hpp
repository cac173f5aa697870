// The "pre_tokenizer" of a Hugging Face tokenizer.json (internal): the steps that cut normalized
// text into the pieces the BPE model encodes one by one. Split (regex or string, every
// delimiter behaviour, invert), Digits, Punctuation, Whitespace, WhitespaceSplit,
// BertPreTokenizer, Metaspace and ByteLevel, alone or in a Sequence, run as HF runs them: each
// step refines the pieces of the one before.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace llmscope::detail {

class PreTokenizer {
 public:
  // GPT-2's: ByteLevel with its regex and no prefix space.
  static PreTokenizer gpt2();

  // `spec` is the "pre_tokenizer" value (null: the text is one piece). Throws llmscope::Error
  // naming `path` and the step for anything llmscope does not run.
  static PreTokenizer from_json(const nlohmann::json& spec, const std::filesystem::path& path);

  // Calls fn with each piece, in order; pieces after a ByteLevel step are in its byte alphabet.
  // `at_start`: `text` begins at the start of the input (Metaspace's prepend_scheme "first").
  // `text` must be valid UTF-8.
  void run(std::string_view text, bool at_start,
           const std::function<void(std::string_view)>& fn) const;

  // Whether a ByteLevel step maps the pieces to GPT-2's byte alphabet.
  bool byte_level() const { return byte_level_; }

  struct Step;

 private:
  void run_from(size_t level, std::string_view text, bool at_start,
                const std::function<void(std::string_view)>& fn) const;

  std::vector<std::shared_ptr<const Step>> steps_;
  bool byte_level_ = false;
};

}  // namespace llmscope::detail
