// llmscope tokenize: token ids of texts as JSON lines, one per text.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "llmscope/error.hpp"

namespace llmscope::cli {
namespace {

// A JSONL line is either a JSON string or an object with a "text" field.
std::string text_of_line(const std::string& line, const std::string& file, size_t number) {
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    throw Error(file + ":" + std::to_string(number) +
                ": not valid JSON (expected {\"text\": ...} or a string)");
  }
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("text") && value["text"].is_string())
    return value["text"];
  throw Error(file + ":" + std::to_string(number) +
              ": expected {\"text\": \"...\"} or a JSON string");
}

}  // namespace

int run_tokenize(const std::vector<std::string>& args) {
  po::options_description options("tokenize options");
  options.add_options()("model,m", po::value<std::string>(),
                        "model folder holding the tokenizer files")(
      "tokenizer", po::value<std::string>(),
      "tokenizer folder (tokenizer.json, tokenizer.model, vocab.json + merges.txt or vocab.txt)")(
      "text,t", po::value<std::string>(), "text to tokenize")(
      "file,f", po::value<std::string>(),
      "JSONL file: one {\"text\": ...} object or string per line; one result line each "
      "(null for a blank line)")(
      "special", po::bool_switch(),
      "treat special tokens written in the text (<|endoftext|>, <s>) as such, as Hugging Face "
      "does");
  po::variables_map vm;
  if (!parse_args("tokenize", "(--model DIR | --tokenizer DIR) (--text T | --file F.jsonl)", args,
                  options, vm)) {
    return 0;
  }
  if ((vm.count("model") > 0) == (vm.count("tokenizer") > 0)) {
    throw UsageError("give exactly one of --model and --tokenizer");
  }
  if ((vm.count("text") > 0) == (vm.count("file") > 0))
    throw UsageError("give exactly one of --text and --file");
  // Only the tokenizer files are read, so this works for any model folder, however large.
  const std::string dir =
      vm.count("model") ? vm["model"].as<std::string>() : vm["tokenizer"].as<std::string>();
  auto tokenizer = Tokenizer::load(dir);
  const EncodeOptions encode{vm["special"].as<bool>()};

  auto emit = [&](const std::string& text) {
    std::cout << nlohmann::json(tokenizer->encode(text, encode)).dump() << "\n";
  };
  if (vm.count("text")) {
    emit(vm["text"].as<std::string>());
    return 0;
  }
  const auto file = vm["file"].as<std::string>();
  std::ifstream in(file);
  if (!in) throw Error(file + ": cannot open");
  std::string line;
  // One result line per input line, so results join their inputs by line number: a blank
  // line (no text at all) gives null.
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      std::cout << "null\n";
      continue;
    }
    emit(text_of_line(line, file, number));
  }
  return 0;
}

}  // namespace llmscope::cli
