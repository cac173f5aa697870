#include "tokenizers/decoder.hpp"

#include <nlohmann/json.hpp>

#include "base/utf8.hpp"
#include "llmscope/error.hpp"
#include "tokenizers/byte_level.hpp"

namespace llmscope::detail {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Tokens = std::vector<std::string>;

void byte_level_step(Tokens& tokens, bool) {
  std::string bytes;
  for (const auto& t : tokens) bytes += from_byte_level(t);
  tokens.assign(1, utf8_lossy(bytes));
}

// "<0x41>" → 0x41, or -1 when `token` is not a byte token.
int byte_of(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int value = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = token[i];
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Runs of byte tokens become their text when the run is valid UTF-8, else one U+FFFD each.
void byte_fallback_step(Tokens& tokens, bool) {
  Tokens out;
  std::string run;
  size_t run_tokens = 0;
  auto flush = [&] {
    if (run_tokens == 0) return;
    if (find_invalid_utf8(run) == std::string_view::npos) {
      out.push_back(run);
    } else {
      for (size_t i = 0; i < run_tokens; ++i) out.emplace_back("\xEF\xBF\xBD");
    }
    run.clear();
    run_tokens = 0;
  };
  for (auto& t : tokens) {
    const int byte = byte_of(t);
    if (byte >= 0) {
      run += static_cast<char>(byte);
      ++run_tokens;
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  tokens = std::move(out);
}

std::string string_field(const json& spec, const char* key, const std::string& where,
                         const fs::path& path) {
  if (!spec.contains(key) || !spec[key].is_string()) {
    throw_file_error(path, where + ": expected a string \"" + key + "\"");
  }
  return spec[key].get<std::string>();
}

size_t count_field(const json& spec, const char* key, const std::string& where,
                   const fs::path& path) {
  if (!spec.contains(key)) return 0;
  if (!spec[key].is_number_unsigned()) {
    throw_file_error(
        path, where + ": " + key + " is " + spec[key].dump() + ", expected a non-negative integer");
  }
  return spec[key].get<size_t>();
}

void add_steps(const json& spec, const fs::path& path,
               std::vector<std::function<void(Tokens&, bool)>>& steps) {
  const std::string type = spec.is_object() ? spec.value("type", std::string("?")) : spec.dump();
  const std::string where = "decoder " + type;
  if (type == "Sequence") {
    if (!spec.contains("decoders") || !spec["decoders"].is_array()) {
      throw_file_error(path, where + ": expected a \"decoders\" array");
    }
    for (const json& s : spec["decoders"]) add_steps(s, path, steps);
  } else if (type == "ByteLevel") {
    steps.push_back(byte_level_step);
  } else if (type == "ByteFallback") {
    steps.push_back(byte_fallback_step);
  } else if (type == "Fuse") {
    steps.push_back([](Tokens& tokens, bool) {
      std::string all;
      for (const auto& t : tokens) all += t;
      tokens.assign(1, all);
    });
  } else if (type == "Replace") {
    const json pattern = spec.value("pattern", json());
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string()) {
      throw_file_error(
          path, where + ": only a {\"String\": ...} pattern is supported, got " + pattern.dump());
    }
    const std::string from = pattern["String"].get<std::string>();
    const std::string to = string_field(spec, "content", where, path);
    steps.push_back([from, to](Tokens& tokens, bool) {
      for (auto& t : tokens) replace_all(t, from, to);
    });
  } else if (type == "Strip") {
    const std::string content = string_field(spec, "content", where, path);
    const size_t start = count_field(spec, "start", where, path);
    const size_t stop = count_field(spec, "stop", where, path);
    steps.push_back([content, start, stop](Tokens& tokens, bool alone) {
      if (alone) return;
      for (auto& t : tokens) {
        size_t begin = 0;
        for (size_t i = 0;
             i < start && t.compare(begin, content.size(), content) == 0 && begin < t.size(); ++i) {
          begin += content.size();
        }
        size_t end = t.size();
        for (size_t i = 0; i < stop && end >= begin + content.size() &&
                           t.compare(end - content.size(), content.size(), content) == 0;
             ++i) {
          end -= content.size();
        }
        t = t.substr(begin, end - begin);
      }
    });
  } else if (type == "Metaspace") {
    const std::string mark = spec.contains("replacement")
                                 ? string_field(spec, "replacement", where, path)
                                 : "\xE2\x96\x81";
    bool prefix = true;  // the first token's marks stand for the prepended space
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
      prefix = spec["prepend_scheme"] != "never";
    } else if (spec.contains("add_prefix_space") && spec["add_prefix_space"].is_boolean()) {
      prefix = spec["add_prefix_space"].get<bool>();
    }
    steps.push_back([mark, prefix](Tokens& tokens, bool alone) {
      for (size_t i = 0; i < tokens.size(); ++i) {
        replace_all(tokens[i], mark, i == 0 && prefix && !alone ? "" : " ");
      }
    });
  } else {
    throw_file_error(path, where +
                               " is not supported (llmscope runs ByteLevel, Replace, "
                               "ByteFallback, Fuse, Strip, Metaspace and Sequence)");
  }
}

}  // namespace

Decoder Decoder::byte_level() {
  Decoder d;
  d.steps_.push_back(byte_level_step);
  return d;
}

Decoder Decoder::from_json(const json& spec, const fs::path& path, bool byte_level_input) {
  if (spec.is_null()) {
    if (byte_level_input) return byte_level();
    Decoder d;
    d.join_with_spaces_ = true;
    return d;
  }
  Decoder d;
  add_steps(spec, path, d.steps_);
  return d;
}

std::string Decoder::decode(std::vector<std::string> tokens, bool alone) const {
  for (const auto& step : steps_) step(tokens, alone);
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (join_with_spaces_ && i > 0) out += ' ';
    out += tokens[i];
  }
  return out;
}

}  // namespace llmscope::detail
