// Tokenizer::load: which of a folder's tokenizer files to read, in Hugging Face's order of
// preference, and a clear error naming every file looked for when there is none.
#include "llmscope/tokenizer.hpp"

#include <nlohmann/json.hpp>

#include "base/file_reading.hpp"
#include "llmscope/error.hpp"

namespace llmscope {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kFilesLookedFor =
    "tokenizer.json, tokenizer.model, vocab.json + merges.txt, or vocab.txt";

// tokenizer.json without model.vocab and model.merges, which are all of its size: enough to
// decide what kind of tokenizer it is.
json tokenizer_json_outline(const fs::path& path) {
  const std::string text = detail::read_file(path);
  try {
    return json::parse(text, [](int depth, json::parse_event_t event, json& parsed) {
      return !(event == json::parse_event_t::key && depth == 2 &&
               (parsed == "vocab" || parsed == "merges"));
    });
  } catch (const json::exception& e) {
    throw_file_error(path, std::string("not valid JSON (expected a Hugging Face tokenizer.json "
                                       "object): ") +
                               e.what());
  }
}

enum class JsonKind { bpe, wordpiece, other };

JsonKind kind_of(const json& outline, std::string* described) {
  const json model = outline.is_object() ? outline.value("model", json()) : json();
  const std::string type = model.is_object() ? model.value("type", std::string()) : "";
  if (type == "WordPiece") return JsonKind::wordpiece;
  if (!model.is_object()) return JsonKind::bpe;  // whose reader names what is missing
  // HF reads a model without a type by its fields: Unigram's unk_id and WordPiece's
  // max_input_chars_per_word tell them from BPE.
  if (type == "BPE" || (type.empty() && model.is_object() && !model.contains("unk_id") &&
                        !model.contains("max_input_chars_per_word"))) {
    return JsonKind::bpe;
  }
  *described = type.empty() ? std::string("model without a type") : type + " model";
  return JsonKind::other;
}

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

}  // namespace

bool Tokenizer::exists_in(const fs::path& dir) {
  return is_file(dir / "tokenizer.json") || is_file(dir / "tokenizer.model") ||
         (is_file(dir / "vocab.json") && is_file(dir / "merges.txt")) || is_file(dir / "vocab.txt");
}

std::unique_ptr<Tokenizer> Tokenizer::load(const fs::path& dir) {
  const bool has_model = is_file(dir / "tokenizer.model");
  if (is_file(dir / "tokenizer.json")) {
    std::string described;
    switch (kind_of(tokenizer_json_outline(dir / "tokenizer.json"), &described)) {
      case JsonKind::wordpiece:
        return WordPieceTokenizer::from_tokenizer_json(dir / "tokenizer.json");
      case JsonKind::bpe:
        // As in Hugging Face, tokenizer.json wins over a tokenizer.model beside it (Llama 2 and
        // Mistral ship both; AutoTokenizer runs the fast one).
        return BpeTokenizer::from_tokenizer_json(dir / "tokenizer.json");
      case JsonKind::other:
        if (has_model) return SentencePieceTokenizer::from_folder(dir);
        throw_file_error(dir / "tokenizer.json",
                         "a " + described +
                             " is not supported; llmscope reads BPE and WordPiece tokenizer.json "
                             "files, and SentencePiece tokenizers from tokenizer.model, which " +
                             dir.string() + " does not have");
    }
  }
  if (has_model) return SentencePieceTokenizer::from_folder(dir);
  if (is_file(dir / "vocab.json") && is_file(dir / "merges.txt")) {
    return BpeTokenizer::from_files(dir / "vocab.json", dir / "merges.txt");
  }
  if (is_file(dir / "vocab.txt")) return WordPieceTokenizer::from_folder(dir);
  throw_file_error(dir, std::string("no tokenizer found (expected ") + kFilesLookedFor + ")");
}

}  // namespace llmscope
