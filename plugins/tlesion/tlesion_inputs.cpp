// tlesion's inputs (see tlesion_inputs.hpp).
#include "tlesion_inputs.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tlesion {

// ---- tokens and positions ----

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
  auto list = integers(v, arg, what);
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
