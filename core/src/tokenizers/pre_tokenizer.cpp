#include "tokenizers/pre_tokenizer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

#include "llmscope/error.hpp"
#include "tokenizers/byte_level.hpp"
#include "tokenizers/regex_split.hpp"

namespace llmscope::detail {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
enum class Prepend { always, first, never };

// Character classes as Rust's char methods (which HF calls) define them.
constexpr const char* kWhiteSpace =  // char::is_whitespace: the White_Space property
    R"([\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}])";
constexpr const char* kPunctuation =  // is_ascii_punctuation || Unicode P*
    R"([\x{21}-\x{2F}\x{3A}-\x{40}\x{5B}-\x{60}\x{7B}-\x{7E}\p{P}])";
// Whitespace's \w+|[^\w\s]+ with Rust regex's Unicode \w and \s.
constexpr const char* kWordsOrSymbols =
    R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\p{White_Space}]+)";

// A literal for PCRE2: every ASCII character that is not a letter or digit escaped.
std::string escape_literal(const std::string& s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

struct PreTokenizer::Step {
  enum class Kind { split, metaspace, byte_level } kind = Kind::split;
  // split
  std::shared_ptr<const RegexSplit> regex;
  Behavior behavior = Behavior::isolated;
  bool invert = false;
  // metaspace
  std::string replacement;
  Prepend prepend = Prepend::always;
  // metaspace (split on the replacement) and byte_level (use_regex)
  bool split = true;
  bool add_prefix_space = false;  // byte_level
};

namespace {

using Step = PreTokenizer::Step;

std::shared_ptr<Step> split_step(const std::string& pattern, Behavior behavior, bool invert,
                                 const std::string& what) {
  auto step = std::make_shared<Step>();
  step->regex = std::make_shared<RegexSplit>(pattern, what);
  step->behavior = behavior;
  step->invert = invert;
  return step;
}

Behavior behavior_of(const json& spec, const std::string& where, const fs::path& path,
                     Behavior fallback) {
  if (!spec.contains("behavior")) return fallback;
  const std::string name = spec["behavior"].is_string() ? spec["behavior"].get<std::string>() : "";
  if (name == "Removed") return Behavior::removed;
  if (name == "Isolated") return Behavior::isolated;
  if (name == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (name == "MergedWithNext") return Behavior::merged_with_next;
  if (name == "Contiguous") return Behavior::contiguous;
  throw_file_error(path, where + ": behavior " + spec["behavior"].dump() +
                             " is not one of Removed, Isolated, MergedWithPrevious, "
                             "MergedWithNext, Contiguous");
}

bool flag(const json& spec, const char* key, bool fallback, const std::string& where,
          const fs::path& path) {
  if (!spec.contains(key) || spec[key].is_null()) return fallback;
  if (!spec[key].is_boolean()) {
    throw_file_error(path,
                     where + ": " + key + " is " + spec[key].dump() + ", expected true or false");
  }
  return spec[key].get<bool>();
}

void add_steps(const json& spec, const fs::path& path,
               std::vector<std::shared_ptr<const Step>>& steps, bool& byte_level) {
  if (spec.is_null()) return;
  const std::string type = spec.is_object() ? spec.value("type", std::string("?")) : spec.dump();
  const std::string where = "pre_tokenizer " + type;
  if (type == "Sequence") {
    if (!spec.contains("pretokenizers") || !spec["pretokenizers"].is_array()) {
      throw_file_error(path, where + ": expected a \"pretokenizers\" array");
    }
    for (const json& s : spec["pretokenizers"]) add_steps(s, path, steps, byte_level);
    return;
  }
  if (type == "Split") {
    const json pattern = spec.value("pattern", json());
    std::string regex;
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex = pattern["Regex"].get<std::string>();
    } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      regex = escape_literal(pattern["String"].get<std::string>());
    } else {
      throw_file_error(path, where + ": pattern " + pattern.dump() +
                                 " is neither {\"Regex\": ...} nor {\"String\": ...}");
    }
    if (regex.empty()) throw_file_error(path, where + ": the pattern is empty");
    steps.push_back(split_step(regex, behavior_of(spec, where, path, Behavior::isolated),
                               flag(spec, "invert", false, where, path),
                               path.string() + ": " + where));
  } else if (type == "Digits") {
    const bool individual = flag(spec, "individual_digits", false, where, path);
    steps.push_back(split_step(R"(\p{N})", individual ? Behavior::isolated : Behavior::contiguous,
                               false, where));
  } else if (type == "Punctuation") {
    steps.push_back(
        split_step(kPunctuation, behavior_of(spec, where, path, Behavior::isolated), false, where));
  } else if (type == "WhitespaceSplit") {
    steps.push_back(split_step(kWhiteSpace, Behavior::removed, false, where));
  } else if (type == "Whitespace") {
    steps.push_back(split_step(kWordsOrSymbols, Behavior::removed, true, where));
  } else if (type == "BertPreTokenizer") {
    steps.push_back(split_step(kWhiteSpace, Behavior::removed, false, where));
    steps.push_back(split_step(kPunctuation, Behavior::isolated, false, where));
  } else if (type == "CharDelimiterSplit") {
    if (!spec.contains("delimiter") || !spec["delimiter"].is_string()) {
      throw_file_error(path, where + ": expected a string \"delimiter\"");
    }
    steps.push_back(split_step(escape_literal(spec["delimiter"].get<std::string>()),
                               Behavior::removed, false, where));
  } else if (type == "Metaspace") {
    auto step = std::make_shared<Step>();
    step->kind = Step::Kind::metaspace;
    const json replacement = spec.value("replacement", json("\xE2\x96\x81"));  // U+2581
    if (replacement.is_string()) step->replacement = replacement.get<std::string>();
    if (step->replacement.empty()) {
      throw_file_error(path, where + ": replacement " + spec["replacement"].dump() +
                                 " is not a non-empty string");
    }
    if (spec.contains("prepend_scheme") && !spec["prepend_scheme"].is_null()) {
      const json scheme = spec["prepend_scheme"];
      if (scheme == "always")
        step->prepend = Prepend::always;
      else if (scheme == "first")
        step->prepend = Prepend::first;
      else if (scheme == "never")
        step->prepend = Prepend::never;
      else
        throw_file_error(path, where + ": prepend_scheme " + scheme.dump() +
                                   " is not \"always\", \"first\" or \"never\"");
    } else {  // files written before tokenizers 0.19
      step->prepend =
          flag(spec, "add_prefix_space", true, where, path) ? Prepend::always : Prepend::never;
    }
    step->split = flag(spec, "split", true, where, path);
    if (step->split) {
      step->regex = std::make_shared<RegexSplit>(escape_literal(step->replacement), where);
    }
    steps.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    auto step = std::make_shared<Step>();
    step->kind = Step::Kind::byte_level;
    step->add_prefix_space = flag(spec, "add_prefix_space", true, where, path);
    step->split = flag(spec, "use_regex", true, where, path);
    steps.push_back(std::move(step));
    byte_level = true;
  } else {
    throw_file_error(path, where +
                               " is not supported (llmscope runs Split, Digits, Punctuation, "
                               "Whitespace, WhitespaceSplit, BertPreTokenizer, "
                               "CharDelimiterSplit, Metaspace, ByteLevel and Sequence)");
  }
}

std::string_view join(std::string_view a, std::string_view b) {
  return {a.data(), static_cast<size_t>(b.data() + b.size() - a.data())};
}

// Hugging Face's split with a delimiter behaviour, over the matches and gaps of one piece.
void split_with(const Step& step, std::string_view text,
                const std::function<void(std::string_view)>& fn) {
  std::vector<std::pair<std::string_view, bool>> parts;  // piece, is a match
  step.regex->split_marked(text, [&](std::string_view piece, bool match) {
    parts.emplace_back(piece, match != step.invert);
  });
  std::vector<std::string_view> out;
  bool previous = false;
  switch (step.behavior) {
    case Behavior::removed:
      for (const auto& [piece, match] : parts) {
        if (!match) out.push_back(piece);
      }
      break;
    case Behavior::isolated:
      for (const auto& part : parts) out.push_back(part.first);
      break;
    case Behavior::merged_with_previous:
      for (const auto& [piece, match] : parts) {
        if (match && !previous && !out.empty()) {
          out.back() = join(out.back(), piece);
        } else {
          out.push_back(piece);
        }
        previous = match;
      }
      break;
    case Behavior::merged_with_next:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->second && !previous && !out.empty()) {
          out.back() = join(it->first, out.back());
        } else {
          out.push_back(it->first);
        }
        previous = it->second;
      }
      std::reverse(out.begin(), out.end());
      break;
    case Behavior::contiguous:
      for (const auto& [piece, match] : parts) {
        if (match == previous && !out.empty()) {
          out.back() = join(out.back(), piece);
        } else {
          out.push_back(piece);
        }
        previous = match;
      }
      break;
  }
  for (const std::string_view piece : out) fn(piece);
}

}  // namespace

PreTokenizer PreTokenizer::gpt2() {
  PreTokenizer p;
  auto step = std::make_shared<Step>();
  step->kind = Step::Kind::byte_level;
  p.steps_.push_back(std::move(step));
  p.byte_level_ = true;
  return p;
}

PreTokenizer PreTokenizer::from_json(const json& spec, const fs::path& path) {
  PreTokenizer p;
  add_steps(spec, path, p.steps_, p.byte_level_);
  return p;
}

void PreTokenizer::run(std::string_view text, bool at_start,
                       const std::function<void(std::string_view)>& fn) const {
  run_from(0, text, at_start, fn);
}

void PreTokenizer::run_from(size_t level, std::string_view text, bool at_start,
                            const std::function<void(std::string_view)>& fn) const {
  if (text.empty()) return;
  if (level == steps_.size()) {
    fn(text);
    return;
  }
  const Step& step = *steps_[level];
  // Each piece that starts where `text` starts is still at the input's start.
  auto next = [&](std::string_view whole) {
    return [&, whole](std::string_view piece) {
      run_from(level + 1, piece, at_start && piece.data() == whole.data(), fn);
    };
  };
  switch (step.kind) {
    case Step::Kind::split:
      split_with(step, text, next(text));
      return;
    case Step::Kind::metaspace: {
      std::string s;
      for (const char c : text) {
        if (c == ' ') {
          s += step.replacement;
        } else {
          s += c;
        }
      }
      const bool prepend =
          step.prepend == Prepend::always || (step.prepend == Prepend::first && at_start);
      if (prepend && s.compare(0, step.replacement.size(), step.replacement) != 0) {
        s.insert(0, step.replacement);
      }
      if (!step.split) {
        run_from(level + 1, s, at_start, fn);
        return;
      }
      Step by_mark;
      by_mark.regex = step.regex;
      by_mark.behavior = Behavior::merged_with_next;
      split_with(by_mark, s, next(s));
      return;
    }
    case Step::Kind::byte_level: {
      std::string spaced;
      std::string_view source = text;
      if (step.add_prefix_space && text.front() != ' ') {
        spaced = " " + std::string(text);
        source = spaced;
      }
      auto mapped = [&](std::string_view piece) {
        const std::string chars = to_byte_level(piece);
        run_from(level + 1, chars, at_start && piece.data() == source.data(), fn);
      };
      if (step.split) {
        gpt2_split().split(source, mapped);
      } else {
        mapped(source);
      }
      return;
    }
  }
}

}  // namespace llmscope::detail
