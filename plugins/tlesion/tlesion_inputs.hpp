// tlesion's inputs (internal to the plugin): target tokens and positions in rows of token ids,
// and where a pass can stop. tlesion_inputs.cpp
// defines them; tlesion_plugin.cpp builds selection and lesions on them.
#pragma once

#include <llmscope/plugin.hpp>
#include <llmscope/tokenizer.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tlesion {

using llmscope::plugin::ArgumentError;
using llmscope::plugin::List;
using llmscope::plugin::Site;
using llmscope::plugin::Table;
using llmscope::plugin::Value;

// Value helpers, token ids and rows come from the SDK (llmscope/plugin_inputs.hpp).
using llmscope::plugin::as_integer;
using llmscope::plugin::as_list;
using llmscope::plugin::find_option;
using llmscope::plugin::integers;
using llmscope::plugin::token;
using llmscope::plugin::token_rows;
using Rows = llmscope::plugin::TokenRows;

// ---- tokens and positions ----
std::string token_label(const llmscope::Model& model, int64_t id);
// 0-based position `p` of row `row`; negative counts from the row's last token.
int64_t resolve_position(int64_t p, const Rows& rows, int64_t row, int arg,
                         const std::string& what);
// One position per row: a single integer for every row, or one per row.
std::vector<int64_t> positions_from(const Value& v, const Rows& rows, int arg,
                                    const std::string& what);
// The first position of each row holding any of `targets`.
std::vector<int64_t> find_positions(const llmscope::Model& model, const Rows& rows,
                                    const std::vector<int64_t>& targets, int arg,
                                    const std::string& what);

// ---- layers and sites ----
// Layers and site templates follow the SDK's one rule (llmscope/plugin_args.hpp).
// Stops the pass after the last block that holds a site (sites outside the blocks need them all).
std::optional<int> stop_after(const std::vector<Site>& sites);

}  // namespace tlesion
