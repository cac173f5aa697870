// Small string helpers shared by every place that accepts user-typed names: glob matching
// ("blocks.*.mlp.hook_pre") and "did you mean" suggestions for unknown names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmscope {

// '*' matches any run of characters (dots included), '?' one character.
bool glob_match(std::string_view pattern, std::string_view text);

bool has_glob_chars(std::string_view pattern);

// Edit distance (insertions, deletions, substitutions).
size_t edit_distance(std::string_view a, std::string_view b);

// Up to `limit` candidates closest to `name`, nearest first.
std::vector<std::string> closest_names(std::string_view name,
                                       const std::vector<std::string>& candidates,
                                       size_t limit = 3);

// "a, b, c" for messages.
std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");

}  // namespace llmscope
