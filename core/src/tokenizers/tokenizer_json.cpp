#include "tokenizers/tokenizer_json.hpp"

#include <nlohmann/json.hpp>

#include <string>

#include "base/file_reading.hpp"
#include "llmscope/error.hpp"

namespace llmscope::detail {

namespace {

using json = nlohmann::json;

int64_t pair_id(const json& post, const char* key, const std::filesystem::path& path) {
  const json pair = post.value(key, json());
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() ||
      !pair[1].is_number_integer()) {
    throw_file_error(path, std::string("post_processor.") + key +
                               ": expected [\"token\", id], got " + pair.dump());
  }
  return pair[1].get<int64_t>();
}

void add_template(const json& post, const std::filesystem::path& path, SingleTemplate& out) {
  if (post.is_null()) return;
  const std::string type = post.is_object() ? post.value("type", std::string("?")) : post.dump();
  if (type == "Sequence") {
    for (const json& inner : post.value("processors", json::array())) {
      add_template(inner, path, out);
    }
  } else if (type == "ByteLevel") {
    // Offsets only; the ids stay as they are.
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    out.prefix.insert(out.prefix.begin(), pair_id(post, "cls", path));
    out.suffix.push_back(pair_id(post, "sep", path));
  } else if (type == "TemplateProcessing") {
    const json single = post.value("single", json::array());
    const json specials = post.value("special_tokens", json::object());
    std::vector<int64_t> before;
    std::vector<int64_t> after;
    int sequences = 0;
    for (const json& piece : single) {
      if (piece.contains("Sequence")) {
        ++sequences;
        continue;
      }
      const std::string name =
          piece.contains("SpecialToken") ? piece["SpecialToken"].value("id", std::string()) : "";
      const auto it = specials.find(name);
      if (name.empty() || it == specials.end() || !it->contains("ids") ||
          !(*it)["ids"].is_array()) {
        throw_file_error(path, "post_processor.single: " + piece.dump() +
                                   " is neither a Sequence nor a SpecialToken listed in "
                                   "special_tokens with its ids");
      }
      for (const json& id : (*it)["ids"]) {
        if (!id.is_number_integer()) {
          throw_file_error(
              path, "post_processor.special_tokens[\"" + name + "\"].ids: expected integers");
        }
        (sequences == 0 ? before : after).push_back(id.get<int64_t>());
      }
    }
    if (sequences != 1) {
      throw_file_error(path, "post_processor.single: expected the sequence $A exactly once");
    }
    out.prefix.insert(out.prefix.begin(), before.begin(), before.end());
    out.suffix.insert(out.suffix.end(), after.begin(), after.end());
  } else {
    throw_file_error(path, "post_processor " + type +
                               " is not supported (expected TemplateProcessing, "
                               "RobertaProcessing, BertProcessing, ByteLevel or a Sequence)");
  }
}

}  // namespace

json read_tokenizer_json(const std::filesystem::path& path) {
  json doc = parse_json(path, "a Hugging Face tokenizer.json object");
  if (!doc.is_object()) throw_file_error(path, "expected a JSON object at the top level");
  const auto model = doc.find("model");
  if (model == doc.end() || !model->is_object()) {
    throw_file_error(path, "expected a \"model\" object");
  }
  return doc;
}

std::vector<int64_t> SingleTemplate::ids() const {
  std::vector<int64_t> all = prefix;
  all.insert(all.end(), suffix.begin(), suffix.end());
  return all;
}

SingleTemplate read_single_template(const json& post, const std::filesystem::path& path) {
  SingleTemplate out;
  add_template(post, path, out);
  return out;
}

std::optional<SingleTemplate> read_config_template(
    const std::filesystem::path& config_path,
    const std::function<int64_t(const std::string&)>& id_of) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config_path, ec)) return std::nullopt;
  const json config = parse_json(config_path, "a JSON object of tokenizer settings");
  if (!config.is_object()) throw_file_error(config_path, "expected a JSON object");
  std::string cls = config.value("tokenizer_class", json()).is_string()
                        ? config["tokenizer_class"].get<std::string>()
                        : "";
  if (cls.size() > 4 && cls.compare(cls.size() - 4, 4, "Fast") == 0) cls.resize(cls.size() - 4);
  const bool gemma = cls == "GemmaTokenizer";
  if (cls != "LlamaTokenizer" && cls != "CodeLlamaTokenizer" && !gemma) return std::nullopt;
  // Each class's own defaults stand where the file is silent.
  auto token = [&](const char* key, const char* fallback) -> std::string {
    if (!config.contains(key)) return fallback;
    const json& value = config[key];
    if (value.is_string()) return value.get<std::string>();
    if (value.is_object() && value.value("content", json()).is_string()) {
      return value["content"].get<std::string>();
    }
    if (value.is_null()) return "";
    throw_file_error(config_path, std::string(key) + " is " + value.dump() +
                                      ", expected a token string or an object with \"content\"");
  };
  SingleTemplate out;
  auto add = [&](const char* flag, bool fallback, const char* key, const char* default_token,
                 std::vector<int64_t>& side) {
    if (!optional_flag(config, flag, fallback, config_path.string())) return;
    const std::string text = token(key, default_token);
    const int64_t id = text.empty() ? -1 : id_of(text);
    if (id < 0) {
      throw_file_error(config_path, std::string(flag) + " is true but " + key + " \"" + text +
                                        "\" is not a token of this tokenizer");
    }
    side.push_back(id);
  };
  add("add_bos_token", true, "bos_token", gemma ? "<bos>" : "<s>", out.prefix);
  add("add_eos_token", false, "eos_token", gemma ? "<eos>" : "</s>", out.suffix);
  return out;
}

}  // namespace llmscope::detail
