#include "tokenizers/tokenizer_json.hpp"

#include <nlohmann/json.hpp>

#include "base/file_reading.hpp"
#include "llmscope/error.hpp"

namespace llmscope::detail {

nlohmann::json read_tokenizer_json(const std::filesystem::path& path) {
  nlohmann::json doc = parse_json(path, "a Hugging Face tokenizer.json object");
  if (!doc.is_object()) throw_file_error(path, "expected a JSON object at the top level");
  const auto model = doc.find("model");
  if (model == doc.end() || !model->is_object()) {
    throw_file_error(path, "expected a \"model\" object");
  }
  return doc;
}

std::vector<AddedTokenEntry> read_added_tokens(const nlohmann::json& doc,
                                               const std::filesystem::path& path) {
  std::vector<AddedTokenEntry> out;
  if (!doc.contains("added_tokens") || doc["added_tokens"].is_null()) return out;
  const nlohmann::json& list = doc["added_tokens"];
  if (!list.is_array()) throw_file_error(path, "expected added_tokens to be an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& t = list[i];
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        t["id"].get<int64_t>() < 0 || !t.contains("content") || !t["content"].is_string()) {
      throw_file_error(path, "added_tokens[" + std::to_string(i) +
                                 "]: expected an object with an integer \"id\" and a string "
                                 "\"content\"");
    }
    AddedTokenEntry entry{t["content"].get<std::string>(), t["id"].get<int64_t>(),
                          t.value("special", false)};
    if (!entry.content.empty()) out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace llmscope::detail
