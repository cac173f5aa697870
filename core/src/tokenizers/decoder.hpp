// The "decoder" of a Hugging Face tokenizer.json (internal): how a list of vocabulary strings
// becomes text. ByteLevel, Replace, ByteFallback, Fuse, Strip and Metaspace, alone or in a
// Sequence, each over the whole list as HF's decode_chain runs them.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace llmscope::detail {

class Decoder {
 public:
  // GPT-2's: the byte alphabet back to bytes, invalid UTF-8 replaced.
  static Decoder byte_level();

  // `spec` is the "decoder" value. Null gives HF's fallback, the tokens joined by spaces,
  // unless `byte_level_input` (a ByteLevel pre-tokenizer), where bytes must come back.
  // Throws llmscope::Error naming `path` for a decoder llmscope does not run.
  static Decoder from_json(const nlohmann::json& spec, const std::filesystem::path& path,
                           bool byte_level_input);

  // The text of `tokens`. `alone`: one token shown by itself (token_text), so the steps that
  // only trim the start of a text (Strip, Metaspace's first-token rule) leave it whole.
  std::string decode(std::vector<std::string> tokens, bool alone = false) const;

 private:
  using Step = std::function<void(std::vector<std::string>&, bool alone)>;
  std::vector<Step> steps_;
  bool join_with_spaces_ = false;
};

}  // namespace llmscope::detail
