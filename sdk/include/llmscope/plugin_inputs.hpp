// Token inputs every plugin takes, read by one set of rules so that they mean the same in every
// plugin (docs/howto-write-plugin.md, "Tokens and rows"):
//   integers  an integer, a list of integers or a 1-D integer tensor
//   token     a token id, or a text that is exactly one token ("[MASK]", " her" for GPT-2)
//   tokens    one token, a list of them, or a 1-D integer tensor
//   token_ids one sequence: [pos] or [1, pos] integer tensor, a list of ids, or a text
//   token_rows a batch: ids [rows, pos] (or [pos]), {ids =, mask =} right-padded, or a list of
//             texts (tokenised with the model's special tokens, right-padded)
// Token ids are checked against the model's vocabulary; a text needs the model's tokenizer.
// Errors name the argument and `what`. Header-only, on the public plugin API.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmscope/model.hpp"
#include "llmscope/plugin_api.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope::plugin {

// A list, or nullopt: a Lua list arrives as List, an empty Lua table as an empty Table.
inline std::optional<List> as_list(const Value& v) {
  if (auto* l = std::get_if<List>(&v.data)) return *l;
  if (auto* t = std::get_if<Table>(&v.data); t && t->empty()) return List{};
  return std::nullopt;
}

// An integer (or a float with an integer value), or nullopt.
inline std::optional<int64_t> as_integer(const Value& v) {
  if (auto* n = std::get_if<int64_t>(&v.data)) return *n;
  if (auto* d = std::get_if<double>(&v.data)) {
    if (static_cast<double>(static_cast<int64_t>(*d)) == *d) return static_cast<int64_t>(*d);
  }
  return std::nullopt;
}

namespace detail {

inline bool is_integer_tensor(const at::Tensor& t) {
  return !at::isFloatingType(t.scalar_type()) && !at::isComplexType(t.scalar_type()) &&
         t.scalar_type() != at::kBool;
}

inline std::vector<int64_t> to_vector(const at::Tensor& t) {
  at::Tensor c = t.reshape({-1}).to(at::kCPU, at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace detail

// The option `key` of `opts`, or nullptr when it is absent or nil.
inline const Value* find_option(const Table& opts, const std::string& key) {
  auto it = opts.find(key);
  return it == opts.end() || it->second.is_nil() ? nullptr : &it->second;
}

inline std::vector<int64_t> integers(const Value& v, int arg, const std::string& what) {
  if (auto n = as_integer(v)) return {*n};
  if (auto* t = std::get_if<at::Tensor>(&v.data)) {
    if (!detail::is_integer_tensor(*t) || t->dim() > 1) {
      throw ArgumentError(arg, what + ": expected integers, got a " + std::to_string(t->dim()) +
                                   "-d tensor of " + std::string(c10::toString(t->scalar_type())));
    }
    return detail::to_vector(*t);
  }
  if (auto l = as_list(v)) {
    std::vector<int64_t> out;
    for (const auto& item : *l) {
      auto n = as_integer(item);
      if (!n) throw ArgumentError(arg, what + ": expected integers, got a " + item.type_name());
      out.push_back(*n);
    }
    return out;
  }
  throw ArgumentError(
      arg, what + ": expected an integer, a list of integers or an integer tensor, got a " +
               v.type_name());
}

// The model's tokenizer; an error saying to pass token ids when it has none.
inline const Tokenizer& tokenizer_of(const Model& model, int arg, const std::string& what) {
  if (!model.tokenizer()) {
    throw ArgumentError(arg, what + ": this model has no tokenizer (" + model.source().string() +
                                 "); pass token ids instead");
  }
  return *model.tokenizer();
}

inline int64_t check_token_id(const Model& model, int64_t id, int arg, const std::string& what) {
  if (id < 0 || id >= model.vocab_size()) {
    throw ArgumentError(arg, what + ": token id " + std::to_string(id) +
                                 " is outside the vocabulary (0 to " +
                                 std::to_string(model.vocab_size() - 1) + ")");
  }
  return id;
}

inline int64_t token(const Model& model, const Value& v, int arg, const std::string& what) {
  if (auto n = as_integer(v)) return check_token_id(model, *n, arg, what);
  if (auto* text = std::get_if<std::string>(&v.data)) {
    const Tokenizer& tok = tokenizer_of(model, arg, what);
    if (int64_t special = tok.special_token_id(*text); special >= 0) return special;
    EncodeOptions encode;
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

// Tokens as `token` reads them: one, a list, or a 1-D integer tensor; an empty list is an error.
inline std::vector<int64_t> tokens(const Model& model, const Value& v, int arg,
                                   const std::string& what) {
  std::vector<int64_t> out;
  if (auto list = as_list(v)) {
    for (const auto& item : *list) out.push_back(token(model, item, arg, what));
  } else if (std::holds_alternative<at::Tensor>(v.data)) {
    for (int64_t id : integers(v, arg, what)) out.push_back(token(model, Value(id), arg, what));
  } else {
    return {token(model, v, arg, what)};
  }
  if (out.empty()) throw ArgumentError(arg, what + ": no tokens given");
  return out;
}

inline std::vector<int64_t> token_ids(const Model& model, const Value& v, int arg,
                                      const std::string& what) {
  std::vector<int64_t> ids;
  if (auto* t = std::get_if<at::Tensor>(&v.data)) {
    if (!detail::is_integer_tensor(*t)) {
      throw ArgumentError(arg, what + ": token ids must be an integer tensor, got " +
                                   std::string(c10::toString(t->scalar_type())));
    }
    if (!(t->dim() == 1 || (t->dim() == 2 && t->size(0) == 1))) {
      throw ArgumentError(arg, what + ": one sequence expected, [pos] or [1, pos], got shape " +
                                   shape_string(t->sizes()));
    }
    ids = detail::to_vector(*t);
  } else if (auto* text = std::get_if<std::string>(&v.data)) {
    ids = tokenizer_of(model, arg, what).encode(*text);
  } else if (as_list(v)) {
    ids = integers(v, arg, what);
  } else {
    throw ArgumentError(
        arg, what + ": token ids (tensor or list) or a text expected, got a " + v.type_name());
  }
  for (int64_t id : ids) check_token_id(model, id, arg, what);
  return ids;
}

// A batch of right-padded rows: positions are token indices within each row.
struct TokenRows {
  at::Tensor ids;                // [rows, pos] int64 on the CPU
  std::vector<int64_t> lengths;  // real tokens per row (>= 1)
  int64_t size() const { return ids.size(0); }
};

// Token sequences (each at least one token) as right-padded rows, `pad` after each one's end.
inline TokenRows padded_rows(const std::vector<std::vector<int64_t>>& sequences, int64_t pad) {
  int64_t longest = 0;
  for (const auto& s : sequences)
    longest = std::max<int64_t>(longest, static_cast<int64_t>(s.size()));
  TokenRows rows;
  rows.ids = at::full({static_cast<int64_t>(sequences.size()), longest}, pad, at::kLong);
  for (size_t i = 0; i < sequences.size(); ++i) {
    const auto n = static_cast<int64_t>(sequences[i].size());
    rows.ids[static_cast<int64_t>(i)].narrow(0, 0, n).copy_(at::tensor(sequences[i], at::kLong));
    rows.lengths.push_back(n);
  }
  return rows;
}

// Padding for rows of texts: the model's end-of-text token, else 0 (masked out either way).
inline int64_t pad_token_id(const Model& model) {
  const int64_t eos = model.eos_token_id();
  return eos >= 0 && eos < model.vocab_size() ? eos : 0;
}

inline TokenRows token_rows(const Model& model, const Value& v, int arg, const std::string& what) {
  TokenRows rows;
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
    for (size_t i = 0; i < encoded.size(); ++i) {
      if (encoded[i].empty())
        throw ArgumentError(arg, what + ": text " + std::to_string(i + 1) + " has no tokens");
    }
    return padded_rows(encoded, pad_token_id(model));
  } else if (auto* table = std::get_if<Table>(&v.data)) {
    check_options(*table, {"ids", "mask"}, arg);
    const Value* ids = find_option(*table, "ids");
    if (!ids || !std::holds_alternative<at::Tensor>(ids->data)) {
      throw ArgumentError(arg, what + ": field 'ids' must be a tensor of token ids");
    }
    rows.ids = std::get<at::Tensor>(ids->data);
    if (const Value* m = find_option(*table, "mask")) {
      if (!std::holds_alternative<at::Tensor>(m->data))
        throw ArgumentError(arg, what + ": field 'mask' must be a tensor");
      mask = std::get<at::Tensor>(m->data);
    }
  } else {
    throw ArgumentError(
        arg,
        what + ": token ids, {ids =, mask =} or a list of texts expected, got " + v.type_name());
  }
  if (!detail::is_integer_tensor(rows.ids))
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
  check_token_id(model, rows.ids.min().item<int64_t>(), arg, what);
  check_token_id(model, rows.ids.max().item<int64_t>(), arg, what);
  for (size_t i = 0; i < rows.lengths.size(); ++i) {
    if (rows.lengths[i] == 0)
      throw ArgumentError(arg, what + ": row " + std::to_string(i) + " has no tokens");
  }
  return rows;
}

}  // namespace llmscope::plugin
