#include "tokenizers/normalizer.hpp"

#include <unicode/bytestream.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <nlohmann/json.hpp>

#include "base/utf8.hpp"
#include "llmscope/error.hpp"

namespace llmscope::detail {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

using Step = std::function<void(std::string&)>;

const icu::Normalizer2* icu_normalizer(const std::string& form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = form == "NFC"    ? icu::Normalizer2::getNFCInstance(status)
                              : form == "NFD"  ? icu::Normalizer2::getNFDInstance(status)
                              : form == "NFKC" ? icu::Normalizer2::getNFKCInstance(status)
                                               : icu::Normalizer2::getNFKDInstance(status);
  if (U_FAILURE(status)) throw Error("ICU cannot provide " + form + ": " + u_errorName(status));
  return n;
}

Step unicode_form(const std::string& form) {
  const icu::Normalizer2* n = icu_normalizer(form);
  return [n, form](std::string& text) {
    std::string out;
    icu::StringByteSink<std::string> sink(&out);
    UErrorCode status = U_ZERO_ERROR;
    n->normalizeUTF8(0, icu::StringPiece(text.data(), static_cast<int32_t>(text.size())), sink,
                     nullptr, status);
    if (U_FAILURE(status)) throw Error(form + " normalization failed: " + u_errorName(status));
    text = std::move(out);
  };
}

// Full Unicode lower case, as Rust's str::to_lowercase (final sigma included).
void lowercase(std::string& text) {
  icu::UnicodeString s = icu::UnicodeString::fromUTF8(text);
  s.toLower(icu::Locale::getRoot());
  text.clear();
  s.toUTF8String(text);
}

// Removes nonspacing marks, as HF's StripAccents (meant to follow NFD).
void strip_accents(std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  uint32_t cp = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (!next_code_point(text, &i, &cp)) return;  // cannot happen: the text was checked
    if (u_charType(static_cast<UChar32>(cp)) != U_NON_SPACING_MARK) {
      out.append(text, start, i - start);
    }
  }
  text = std::move(out);
}

std::string string_field(const json& spec, const char* key, const std::string& type,
                         const fs::path& path) {
  const auto it = spec.find(key);
  if (it == spec.end() || !it->is_string()) {
    throw_file_error(path, "normalizer " + type + ": expected a string \"" + key + "\"");
  }
  return it->get<std::string>();
}

void add_steps(const json& spec, const fs::path& path, std::vector<Step>& steps) {
  if (spec.is_null()) return;
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    throw_file_error(path, "normalizer: expected an object with a \"type\", got " + spec.dump());
  }
  const std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    const auto it = spec.find("normalizers");
    if (it == spec.end() || !it->is_array()) {
      throw_file_error(path, "normalizer Sequence: expected a \"normalizers\" array");
    }
    for (const json& inner : *it) add_steps(inner, path, steps);
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    steps.push_back(unicode_form(type));
  } else if (type == "Lowercase") {
    steps.push_back(lowercase);
  } else if (type == "StripAccents") {
    steps.push_back(strip_accents);
  } else if (type == "Prepend") {
    const std::string prefix = string_field(spec, "prepend", type, path);
    steps.push_back([prefix](std::string& text) {
      if (!text.empty()) text.insert(0, prefix);
    });
  } else if (type == "Replace") {
    const json pattern = spec.value("pattern", json());
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string()) {
      throw_file_error(path,
                       "normalizer Replace: only a {\"String\": ...} pattern is supported, "
                       "got " +
                           pattern.dump());
    }
    const std::string from = pattern["String"].get<std::string>();
    const std::string to = string_field(spec, "content", type, path);
    steps.push_back([from, to](std::string& text) { replace_all(text, from, to); });
  } else if (type == "Strip") {
    const bool left = spec.value("strip_left", true);
    const bool right = spec.value("strip_right", true);
    steps.push_back([left, right](std::string& text) {
      constexpr const char* kSpace = " \t\n\r\v\f";
      if (right) text.erase(text.find_last_not_of(kSpace) + 1);
      if (left) text.erase(0, std::min(text.size(), text.find_first_not_of(kSpace)));
    });
  } else {
    throw_file_error(path, "normalizer " + type +
                               " is not supported (llmscope runs NFC, NFD, NFKC, NFKD, "
                               "Lowercase, StripAccents, Replace, Prepend, Strip and Sequence)");
  }
}

}  // namespace

Normalizer Normalizer::from_json(const json& spec, const fs::path& path) {
  Normalizer n;
  add_steps(spec, path, n.steps_);
  return n;
}

std::string Normalizer::apply(std::string text) const {
  for (const auto& step : steps_) step(text);
  return text;
}

}  // namespace llmscope::detail
