// llmscope train-tokenizer: learn a GPT-2-style byte-level BPE tokenizer from text files and
// write vocab.json + merges.txt that --tokenizer / Tokenizer::load read back.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_common.hpp"
#include "llmscope/bpe_trainer.hpp"
#include "llmscope/error.hpp"

namespace llmscope::cli {

int run_train_tokenizer(const std::vector<std::string>& args) {
  po::options_description options("train-tokenizer options");
  options.add_options()("text,t", po::value<std::vector<std::string>>()->required(),
                        "UTF-8 text file to learn from (repeat for several files)")(
      "vocab-size", po::value<int>()->required(),
      "tokens in the vocabulary: 256 bytes + merges + <|endoftext|> (GPT-2 has 50257)")(
      "min-frequency", po::value<int>()->default_value(2), "never merge a pair seen fewer times")(
      "output,o", po::value<std::string>()->required(),
      "folder to write vocab.json and merges.txt to");
  po::variables_map vm;
  if (!parse_args("train-tokenizer",
                  "--text FILE [--text FILE...] --vocab-size N [--min-frequency N] -o DIR", args,
                  options, vm)) {
    return 0;
  }
  BpeTrainOptions train;
  train.vocab_size = vm["vocab-size"].as<int>();
  train.min_frequency = vm["min-frequency"].as<int>();
  try {
    validate_bpe_train_options(train);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }

  const auto start = std::chrono::steady_clock::now();
  PretokenCounts counts;
  for (const auto& file : vm["text"].as<std::vector<std::string>>()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw_file_error(file, "cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    try {
      count_pretokens(text.str(), train, counts);
    } catch (const Error& e) {
      throw_file_error(file, e.what());
    }
  }
  const auto result = train_bpe_from_counts(counts, train);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::filesystem::path dir = vm["output"].as<std::string>();
  save_bpe(result, dir);
  std::error_code ec;
  if (std::filesystem::exists(dir / "tokenizer.json", ec)) {
    spdlog::warn(
        "{} also holds a tokenizer.json, which Tokenizer::load reads instead of vocab.json + "
        "merges.txt",
        dir.string());
  }
  char time[32];
  std::snprintf(time, sizeof(time), "%.2f", seconds);
  std::cout << "vocab size " << result.vocab.size() << " (" << result.merges.size() << " merges, "
            << train.special_tokens.size() << " special token), learned from " << result.pretokens
            << " pre-tokens (" << result.distinct_pretokens << " distinct) in " << time << " s\n";
  if (static_cast<int>(result.vocab.size()) < train.vocab_size) {
    std::cout << "stopped early: no pair occurs " << train.min_frequency << " times or more\n";
  }
  std::cout << "wrote " << (dir / "vocab.json").string() << " and " << (dir / "merges.txt").string()
            << "\n";
  return 0;
}

}  // namespace llmscope::cli
