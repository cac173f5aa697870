// tlesion's inputs (see tlesion_inputs.hpp).
#include "tlesion_inputs.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tlesion {

// ---- small Value helpers ----

const Value* find_key(const Table& t, const std::string& key) {
  auto it = t.find(key);
  return it == t.end() || it->second.is_nil() ? nullptr : &it->second;
}

// A Lua list arrives as List; an empty Lua table arrives as an empty Table.
std::optional<List> as_list(const Value& v) {
  if (auto* l = std::get_if<List>(&v.data)) return *l;
  if (auto* t = std::get_if<Table>(&v.data); t && t->empty()) return List{};
  return std::nullopt;
}

std::optional<int64_t> as_int(const Value& v) {
  if (auto* n = std::get_if<int64_t>(&v.data)) return *n;
  if (auto* d = std::get_if<double>(&v.data)) {
    if (static_cast<double>(static_cast<int64_t>(*d)) == *d) return static_cast<int64_t>(*d);
  }
  return std::nullopt;
}

bool is_integer_tensor(const at::Tensor& t) {
  return !at::isFloatingType(t.scalar_type()) && !at::isComplexType(t.scalar_type()) &&
         t.scalar_type() != at::kBool;
}

// An integer, a list of integers or a 1-D integer tensor, as a vector.
std::vector<int64_t> int_list(const Value& v, int arg, const std::string& what) {
  if (auto n = as_int(v)) return {*n};
  if (auto* t = std::get_if<at::Tensor>(&v.data)) {
    if (!is_integer_tensor(*t) || t->dim() > 1) {
      throw ArgumentError(arg, what + ": expected integers, got a " + std::to_string(t->dim()) +
                                   "-d tensor of " + std::string(c10::toString(t->scalar_type())));
    }
    auto c = t->reshape({-1}).to(at::kCPU, at::kLong).contiguous();
    return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  }
  if (auto l = as_list(v)) {
    std::vector<int64_t> out;
    for (const auto& item : *l) {
      auto n = as_int(item);
      if (!n) throw ArgumentError(arg, what + ": expected integers, got a " + item.type_name());
      out.push_back(*n);
    }
    return out;
  }
  throw ArgumentError(
      arg, what + ": expected an integer, a list of integers or an integer tensor, got a " +
               v.type_name());
}

// ---- rows of token ids ----

int64_t pad_id(const llmscope::Model& model) {
  const int64_t eos = model.eos_token_id();
  return eos >= 0 && eos < model.vocab_size() ? eos : 0;
}

const llmscope::Tokenizer& tokenizer_of(const llmscope::Model& model, int arg,
                                        const std::string& what) {
  if (!model.tokenizer()) {
    throw ArgumentError(arg, what + ": this model has no tokenizer (" + model.source().string() +
                                 "); pass token ids instead");
  }
  return *model.tokenizer();
}

// Token ids [n, pos] (or [pos]), {ids = t, mask = t} with a right-padded mask, or a list of
// texts tokenised by the model's tokenizer (with [CLS]/[SEP] for BERT) and right-padded.
Rows rows_from(const llmscope::Model& model, const Value& v, int arg, const std::string& what) {
  Rows rows;
  at::Tensor mask;
  if (auto* t = std::get_if<at::Tensor>(&v.data)) {
    rows.ids = *t;
  } else if (auto list = as_list(v)) {
    std::vector<std::vector<int64_t>> encoded;
    for (const auto& item : *list) {
      auto* text = std::get_if<std::string>(&item.data);
      if (!text)
        throw ArgumentError(
            arg, what + ": a list of inputs must hold texts only, got a " + item.type_name());
      encoded.push_back(tokenizer_of(model, arg, what).encode(*text));
    }
    if (encoded.empty()) throw ArgumentError(arg, what + ": no rows");
    int64_t longest = 0;
    for (const auto& e : encoded)
      longest = std::max<int64_t>(longest, static_cast<int64_t>(e.size()));
    rows.ids = at::full({static_cast<int64_t>(encoded.size()), longest}, pad_id(model), at::kLong);
    for (size_t i = 0; i < encoded.size(); ++i) {
      const auto n = static_cast<int64_t>(encoded[i].size());
      if (n == 0)
        throw ArgumentError(arg, what + ": text " + std::to_string(i + 1) + " has no tokens");
      rows.ids[static_cast<int64_t>(i)].narrow(0, 0, n).copy_(at::tensor(encoded[i], at::kLong));
      rows.lengths.push_back(n);
    }
    return rows;
  } else if (auto* table = std::get_if<Table>(&v.data)) {
    llmscope::plugin::check_options(*table, {"ids", "mask"}, arg);
    const Value* ids = find_key(*table, "ids");
    if (!ids || !std::holds_alternative<at::Tensor>(ids->data)) {
      throw ArgumentError(arg, what + ": field 'ids' must be a tensor of token ids");
    }
    rows.ids = std::get<at::Tensor>(ids->data);
    if (const Value* m = find_key(*table, "mask")) {
      if (!std::holds_alternative<at::Tensor>(m->data))
        throw ArgumentError(arg, what + ": field 'mask' must be a tensor");
      mask = std::get<at::Tensor>(m->data);
    }
  } else {
    throw ArgumentError(
        arg,
        what + ": token ids, {ids =, mask =} or a list of texts expected, got " + v.type_name());
  }
  if (!is_integer_tensor(rows.ids))
    throw ArgumentError(arg, what + ": token ids must be an integer tensor");
  if (rows.ids.dim() == 1) rows.ids = rows.ids.unsqueeze(0);
  if (rows.ids.dim() != 2 || rows.ids.size(0) == 0 || rows.ids.size(1) == 0) {
    throw ArgumentError(
        arg, what + ": token ids must be [rows, pos] with at least one row and one token");
  }
  rows.ids = rows.ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t n = rows.ids.size(0), pos = rows.ids.size(1);
  if (mask.defined()) {
    if (mask.dim() == 1) mask = mask.unsqueeze(0);
    if (mask.sizes() != rows.ids.sizes())
      throw ArgumentError(arg, what + ": 'mask' must have the shape of 'ids'");
    at::Tensor keep = mask.to(at::kCPU).ne(0);
    at::Tensor lengths = keep.sum(1);
    at::Tensor expected = at::arange(pos, at::kLong).unsqueeze(0) < lengths.unsqueeze(1);
    at::Tensor wrong = (keep != expected).any(1);
    if (wrong.any().item<bool>()) {
      const int64_t row = wrong.nonzero()[0][0].item<int64_t>();
      throw ArgumentError(arg, what + ": row " + std::to_string(row) +
                                   " of the mask is not right-padded (tokens first, then padding)");
    }
    for (int64_t i = 0; i < n; ++i) rows.lengths.push_back(lengths[i].item<int64_t>());
  } else {
    rows.lengths.assign(static_cast<size_t>(n), pos);
  }
  const int64_t lo = rows.ids.min().item<int64_t>(), hi = rows.ids.max().item<int64_t>();
  if (lo < 0 || hi >= model.vocab_size()) {
    throw ArgumentError(arg, what + ": token id " + std::to_string(lo < 0 ? lo : hi) +
                                 " is outside the vocabulary (0 to " +
                                 std::to_string(model.vocab_size() - 1) + ")");
  }
  for (size_t i = 0; i < rows.lengths.size(); ++i) {
    if (rows.lengths[i] == 0)
      throw ArgumentError(arg, what + ": row " + std::to_string(i) + " has no tokens");
  }
  return rows;
}

// ---- tokens and positions ----

// A token id, or a text that is exactly one token ("[MASK]", " her" for GPT-2, "her" for BERT).
int64_t token_of(const llmscope::Model& model, const Value& v, int arg, const std::string& what) {
  if (auto n = as_int(v)) {
    if (*n < 0 || *n >= model.vocab_size()) {
      throw ArgumentError(arg, what + ": token id " + std::to_string(*n) +
                                   " is outside the vocabulary (0 to " +
                                   std::to_string(model.vocab_size() - 1) + ")");
    }
    return *n;
  }
  if (auto* text = std::get_if<std::string>(&v.data)) {
    const auto& tok = tokenizer_of(model, arg, what);
    if (int64_t special = tok.special_token_id(*text); special >= 0) return special;
    llmscope::EncodeOptions encode;
    encode.add_special_tokens = false;
    auto ids = tok.encode(*text, encode);
    if (ids.size() != 1) {
      throw ArgumentError(
          arg, what + ": '" + *text + "' is " + std::to_string(ids.size()) +
                   " tokens for this tokenizer; a target must be one token" +
                   (tok.kind() == "bpe" ? " (GPT-2 words mid-sentence start with a space: ' her')"
                                        : ""));
    }
    return ids[0];
  }
  throw ArgumentError(arg,
                      what + ": a token id or a one-token text expected, got a " + v.type_name());
}

std::vector<int64_t> tokens_of(const llmscope::Model& model, const Value& v, int arg,
                               const std::string& what) {
  if (auto list = as_list(v)) {
    std::vector<int64_t> out;
    for (const auto& item : *list) out.push_back(token_of(model, item, arg, what));
    if (out.empty()) throw ArgumentError(arg, what + ": no tokens given");
    return out;
  }
  if (std::holds_alternative<at::Tensor>(v.data)) {
    std::vector<int64_t> out;
    for (int64_t id : int_list(v, arg, what)) out.push_back(token_of(model, Value(id), arg, what));
    if (out.empty()) throw ArgumentError(arg, what + ": no tokens given");
    return out;
  }
  return {token_of(model, v, arg, what)};
}

std::string token_label(const llmscope::Model& model, int64_t id) {
  std::string label = "id " + std::to_string(id);
  if (model.tokenizer()) {
    try {
      label = "'" + model.tokenizer()->token_text(id) + "' (" + label + ")";
    } catch (const std::exception&) {
    }
  }
  return label;
}

// 0-based position `p` of row `row`; negative counts from the row's last token.
int64_t resolve_position(int64_t p, const Rows& rows, int64_t row, int arg,
                         const std::string& what) {
  const int64_t length = rows.lengths[static_cast<size_t>(row)];
  const int64_t resolved = p < 0 ? p + length : p;
  if (resolved < 0 || resolved >= length) {
    throw ArgumentError(
        arg, what + ": position " + std::to_string(p) + " of row " + std::to_string(row) +
                 " is outside its " + std::to_string(length) +
                 " tokens (positions are 0-based; negative ones count from the end)");
  }
  return resolved;
}

// One position per row: a single integer for every row, or one per row.
std::vector<int64_t> positions_from(const Value& v, const Rows& rows, int arg,
                                    const std::string& what) {
  auto list = int_list(v, arg, what);
  if (list.size() == 1) list.assign(static_cast<size_t>(rows.size()), list[0]);
  if (static_cast<int64_t>(list.size()) != rows.size()) {
    throw ArgumentError(arg, what + ": " + std::to_string(list.size()) + " positions for " +
                                 std::to_string(rows.size()) + " rows");
  }
  for (int64_t r = 0; r < rows.size(); ++r) {
    list[static_cast<size_t>(r)] =
        resolve_position(list[static_cast<size_t>(r)], rows, r, arg, what);
  }
  return list;
}

// The first position of each row holding any of `targets`.
std::vector<int64_t> find_positions(const llmscope::Model& model, const Rows& rows,
                                    const std::vector<int64_t>& targets, int arg,
                                    const std::string& what) {
  std::vector<int64_t> out;
  auto ids = rows.ids.accessor<int64_t, 2>();
  for (int64_t r = 0; r < rows.size(); ++r) {
    int64_t found = -1;
    for (int64_t p = 0; p < rows.lengths[static_cast<size_t>(r)] && found < 0; ++p) {
      if (std::find(targets.begin(), targets.end(), ids[r][p]) != targets.end()) found = p;
    }
    if (found < 0) {
      std::string names;
      for (int64_t t : targets) names += (names.empty() ? "" : " or ") + token_label(model, t);
      throw ArgumentError(arg, what + ": row " + std::to_string(r) + " has no token " + names);
    }
    out.push_back(found);
  }
  return out;
}

// Stops the pass after the last block that holds a site (sites outside the blocks need them all).
std::optional<int> stop_after(const std::vector<Site>& sites) {
  int last = -1;
  for (const auto& s : sites) {
    if (s.layer < 0) return std::nullopt;
    last = std::max(last, s.layer);
  }
  return last + 1;
}

}  // namespace tlesion
