// Fuzz targets for tokenizer files and the text they encode: GPT-2's vocab.json + merges.txt,
// a tokenizer.json (with its tokenizer_config.json) and WordPiece's vocab.txt. Each loaded
// tokenizer encodes the input's text part both ways (special tokens split or not), decodes the
// ids and spells every token.
#include "fuzz_targets.hpp"
#include "llmscope/error.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope::fuzz {

namespace fs = std::filesystem;

namespace {

void exercise(const fs::path& dir, const std::string& text) {
  const auto tok = Tokenizer::load(dir);
  for (const bool special : {false, true}) {
    EncodeOptions options;
    options.allow_special = special;
    std::vector<int64_t> ids;
    try {
      ids = tok->encode(text, options);
    } catch (const Error&) {  // text that is not UTF-8: refused, the rest still runs
    }
    (void)tok->decode(ids);
    (void)tok->decode_skipping_special(ids);
    for (const int64_t id : ids) (void)tok->token_text(id);
  }
  // Ids from the text's bytes, in range or not: decoding must refuse or succeed, never crash.
  std::vector<int64_t> arbitrary;
  for (size_t i = 0; i + 1 < text.size() && arbitrary.size() < 64; i += 2) {
    arbitrary.push_back(static_cast<int16_t>((static_cast<uint8_t>(text[i]) << 8) |
                                             static_cast<uint8_t>(text[i + 1])));
  }
  try {
    (void)tok->decode(arbitrary);
  } catch (const Error&) {
  }
}

}  // namespace

namespace {

struct Part {
  const char* file;
  bool optional;  // left out when empty
};

// The input's parts written as `files` in a folder of their own, the part after them the text.
int fuzz_tokenizer_folder(const uint8_t* data, size_t size, const char* name,
                          const std::vector<Part>& files) {
  const auto parts = split_parts(data, size, files.size() + 1);
  const fs::path dir = fresh_scratch(name);
  for (size_t i = 0; i < files.size(); ++i) {
    if (!files[i].optional || !parts[i].empty()) write_bytes(dir / files[i].file, parts[i]);
  }
  try {
    exercise(dir, parts.back());
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace

int fuzz_bpe_files(const uint8_t* data, size_t size) {
  return fuzz_tokenizer_folder(data, size, "bpe_files",
                               {{"vocab.json", false}, {"merges.txt", false}});
}

int fuzz_tokenizer_json(const uint8_t* data, size_t size) {
  return fuzz_tokenizer_folder(data, size, "tokenizer_json",
                               {{"tokenizer.json", false}, {"tokenizer_config.json", true}});
}

int fuzz_wordpiece(const uint8_t* data, size_t size) {
  return fuzz_tokenizer_folder(data, size, "wordpiece",
                               {{"vocab.txt", false}, {"tokenizer_config.json", true}});
}

}  // namespace llmscope::fuzz
