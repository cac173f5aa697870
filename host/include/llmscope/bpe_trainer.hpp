// Training a GPT-2-style byte-level BPE tokenizer: GPT-2's pre-tokenisation, pair merges learned
// on byte symbols (deterministic tie-breaking), and vocab.json + merges.txt written in GPT-2's
// own format, so Tokenizer::load / BpeTokenizer read the result unchanged.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llmscope {

struct BpeTrainOptions {
  // The whole vocabulary: 256 byte tokens + learned merges + special_tokens. Training stops
  // earlier when no pair is frequent enough (see min_frequency).
  int vocab_size = 8192;
  // A pair seen fewer times than this (counting every occurrence in the corpus) is never merged.
  int min_frequency = 2;
  // Added after the learned tokens, in this order, so the last one gets the last id (GPT-2 has
  // <|endoftext|> last). Occurrences in the training text are cut out before counting. Only
  // "<|endoftext|>" is treated as special when vocab.json + merges.txt are loaded back; others
  // load as ordinary vocabulary entries.
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
};

struct BpeTrainResult {
  // vocab[id] is the token in GPT-2's byte-to-unicode alphabet ("Ġthe"): the 256 byte tokens in
  // GPT-2's order (ids 0-255), then each new token in the order its merge was learned, then the
  // special tokens as given.
  std::vector<std::string> vocab;
  // In rank order (the order they were learned), as they appear in merges.txt.
  std::vector<std::pair<std::string, std::string>> merges;
  // merge_counts[i]: how often merges[i]'s pair occurred in the corpus when it was merged.
  std::vector<int64_t> merge_counts;
  int64_t pretokens = 0;           // pre-tokens counted in the training text
  int64_t distinct_pretokens = 0;  // how many of them were different

  // token → id, the mapping vocab.json holds.
  std::unordered_map<std::string, int64_t> vocab_ids() const;
};

// Pre-token counts: raw bytes of each GPT-2 pre-token ("Ġ" not applied) → occurrences.
using PretokenCounts = std::unordered_map<std::string, int64_t>;

// Throws llmscope::Error naming the option when `options` cannot give a vocabulary:
// vocab_size < 256 + special tokens, min_frequency < 1, an empty, duplicate or invalid-UTF-8
// special token, or one that is also a byte token ("a", "Ġ").
void validate_bpe_train_options(const BpeTrainOptions& options);

// Adds the pre-tokens of `text` to `counts` (so a corpus can be counted file by file). Special
// tokens written in the text are cut out first and not counted. Throws llmscope::Error when
// `text` is not valid UTF-8.
void count_pretokens(std::string_view text, const BpeTrainOptions& options, PretokenCounts& counts);

// Learns merges on the byte symbols of each pre-token, weighted by its count: repeatedly the
// most frequent adjacent pair is merged. Ties go to the pair whose symbols, as written in
// merges.txt, sort first (left symbol, then right, compared bytewise), so the result depends
// only on the counts. Stops when the vocabulary reaches options.vocab_size or the best pair
// occurs fewer than options.min_frequency times. A pair whose merged token would equal a special
// token is never merged.
BpeTrainResult train_bpe_from_counts(const PretokenCounts& counts, const BpeTrainOptions& options);
// count_pretokens over every text (an error names the text: "texts[3]: ..."), then the above.
BpeTrainResult train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& options);

// Writes `dir`/vocab.json and `dir`/merges.txt in GPT-2's format (vocab.json one line,
// {"!": 0, ...} in id order with non-ASCII as \uXXXX; merges.txt "#version: 0.2" then one
// "left right" line per merge), each file atomically; creates `dir` when missing. The same
// result gives byte-identical files.
void save_bpe(const BpeTrainResult& result, const std::filesystem::path& dir);

}  // namespace llmscope
