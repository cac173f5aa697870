// What the hub's download (host/src/hub_pull.cpp) shares with its cache lookup
// (hub_cache.cpp): an internal header of the in-tree libraries, not installed.
#pragma once

#include <string>
#include <string_view>

#include "llmscope/hub.hpp"

namespace llmscope::hub::detail {

std::string env(const char* name);  // "" when unset
bool is_alnum(char c);
bool is_hex(std::string_view text);  // lower-case hex digits, at least one
std::string trim(std::string_view text);
// What a user types to get this model: "gpt2" for main, "gpt2@v1" otherwise.
std::string display_name(const ModelRef& ref);

}  // namespace llmscope::hub::detail
