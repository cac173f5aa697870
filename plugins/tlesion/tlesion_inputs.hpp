// tlesion's inputs (internal to the plugin): Value helpers, right-padded rows of token ids from
// ids or texts, target tokens and positions, and where a pass can stop. tlesion_inputs.cpp
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

// ---- small Value helpers ----
const Value* find_key(const Table& t, const std::string& key);
// A Lua list arrives as List; an empty Lua table arrives as an empty Table.
std::optional<List> as_list(const Value& v);
std::optional<int64_t> as_int(const Value& v);
bool is_integer_tensor(const at::Tensor& t);
// An integer, a list of integers or a 1-D integer tensor, as a vector.
std::vector<int64_t> int_list(const Value& v, int arg, const std::string& what);

// ---- rows of token ids ----
// A batch of right-padded rows: positions are token indices within each row.
struct Rows {
  at::Tensor ids;                // [n, pos] int64 on the CPU
  std::vector<int64_t> lengths;  // real tokens per row
  int64_t size() const { return ids.size(0); }
};

int64_t pad_id(const llmscope::Model& model);  // eos when the model has one, else 0
const llmscope::Tokenizer& tokenizer_of(const llmscope::Model& model, int arg,
                                        const std::string& what);
// Token ids [n, pos] (or [pos]), {ids = t, mask = t} with a right-padded mask, or a list of
// texts tokenised by the model's tokenizer (with [CLS]/[SEP] for BERT) and right-padded.
Rows rows_from(const llmscope::Model& model, const Value& v, int arg, const std::string& what);

// ---- tokens and positions ----
// A token id, or a text that is exactly one token ("[MASK]", " her" for GPT-2, "her" for BERT).
int64_t token_of(const llmscope::Model& model, const Value& v, int arg, const std::string& what);
std::vector<int64_t> tokens_of(const llmscope::Model& model, const Value& v, int arg,
                               const std::string& what);
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
