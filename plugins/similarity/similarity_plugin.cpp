// similarity: the vectors that similarity analyses compare (lessons 13-01 to 13-05). One batched
// pass per group of rows; native hooks at each site keep only the target token's vector of each
// row (and, when asked, every other real token's), gathered on the model's device, so a scan of
// Q, K and V over every layer never copies whole activations to the host. The comparisons
// themselves (cosine and correlation matrices, RSA, selectivity) are in the `stats` module.
#include <llmscope/plugin.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kRows = 2;
constexpr int kOpts = 3;

struct Plan : ScanOptions {
  bool others = false;
};

Plan plan_from(const llmscope::Model& model, const Table& opts) {
  check_options(
      opts,
      {"sites", "layers", "positions", "occurrences", "target", "others", "skip", "batch_size"},
      kOpts);
  Plan plan;
  static_cast<ScanOptions&>(plan) = scan_options(model, opts, kOpts);
  plan.others = option<bool>(opts, "others", false, kOpts);
  return plan;
}

// The vectors to read, as (row, position) pairs in reading order.
struct Occurrences {
  std::vector<int64_t> rows, positions;
};

// A position of row `row`, negative from its end; `what` names the option in errors.
int64_t position_in_row(const TokenRows& rows, int64_t row, int64_t p, const std::string& what) {
  const int64_t length = rows.lengths[static_cast<size_t>(row)];
  if (p < -length || p >= length) {
    throw ArgumentError(kOpts, what + ": " + std::to_string(p) + " is outside row " +
                                   std::to_string(row) + " (" + std::to_string(length) +
                                   " tokens)");
  }
  return p < 0 ? p + length : p;
}

// `positions` (one per row, negative from the row's end), `occurrences` ({rows =, positions =},
// any number per row, as m:find_tokens returns them), or the first occurrence of `target` in each
// row at or after `skip`.
Occurrences find_occurrences(const llmscope::Model& model, const TokenRows& rows, const Table& opts,
                             int64_t skip) {
  const Value* positions = find_option(opts, "positions");
  const Value* occurrences = find_option(opts, "occurrences");
  const Value* target = find_option(opts, "target");
  if ((positions != nullptr) + (occurrences != nullptr) + (target != nullptr) != 1) {
    throw ArgumentError(kOpts,
                        "give one of option 'target', 'positions' (one per row) or "
                        "'occurrences' ({rows =, positions =})");
  }
  Occurrences out;
  if (positions != nullptr) {
    const auto given = integers(*positions, kOpts, "option 'positions'");
    if (static_cast<int64_t>(given.size()) != rows.size()) {
      throw ArgumentError(kOpts, "option 'positions': " + std::to_string(given.size()) +
                                     " positions for " + std::to_string(rows.size()) + " rows");
    }
    for (int64_t i = 0; i < rows.size(); ++i) {
      out.rows.push_back(i);
      out.positions.push_back(
          position_in_row(rows, i, given[static_cast<size_t>(i)], "option 'positions'"));
    }
    return out;
  }
  if (occurrences != nullptr) {
    const auto* table = std::get_if<Table>(&occurrences->data);
    if (table == nullptr) {
      throw ArgumentError(kOpts, "option 'occurrences' must be a table {rows =, positions =}");
    }
    check_options(*table, {"rows", "positions"}, kOpts);
    const Value* r = find_option(*table, "rows");
    const Value* p = find_option(*table, "positions");
    if (r == nullptr || p == nullptr) {
      throw ArgumentError(kOpts, "option 'occurrences' needs both 'rows' and 'positions'");
    }
    const auto rs = integers(*r, kOpts, "option 'occurrences.rows'");
    const auto ps = integers(*p, kOpts, "option 'occurrences.positions'");
    if (rs.size() != ps.size() || rs.empty()) {
      throw ArgumentError(kOpts, "option 'occurrences': " + std::to_string(rs.size()) +
                                     " rows and " + std::to_string(ps.size()) +
                                     " positions; give one row per position, at least one");
    }
    for (size_t k = 0; k < rs.size(); ++k) {
      if (rs[k] < 0 || rs[k] >= rows.size()) {
        throw ArgumentError(kOpts, "option 'occurrences.rows': " + std::to_string(rs[k]) +
                                       " is not a row (0 to " + std::to_string(rows.size() - 1) +
                                       ")");
      }
      if (k > 0 && (rs[k] < rs[k - 1] || (rs[k] == rs[k - 1] && ps[k] <= ps[k - 1]))) {
        throw ArgumentError(kOpts, "option 'occurrences': not in reading order at entry " +
                                       std::to_string(k + 1) + " (as m:find_tokens returns them)");
      }
      out.rows.push_back(rs[k]);
      out.positions.push_back(
          position_in_row(rows, rs[k], ps[k], "option 'occurrences.positions'"));
    }
    return out;
  }
  const int64_t id = token(model, *target, kOpts, "option 'target'");
  for (int64_t i = 0; i < rows.size(); ++i) {
    const at::Tensor row = rows.ids[i].narrow(0, 0, rows.lengths[static_cast<size_t>(i)]);
    const at::Tensor hits = (row == id).nonzero().flatten();
    const at::Tensor after = hits.index({hits >= skip});
    if (after.numel() == 0) {
      throw ArgumentError(kRows, "rows: row " + std::to_string(i) +
                                     " does not contain the target token " + std::to_string(id) +
                                     (skip > 0 ? " after position " + std::to_string(skip) : ""));
    }
    out.rows.push_back(i);
    out.positions.push_back(after[0].item<int64_t>());
  }
  return out;
}

}  // namespace

LLMSCOPE_PLUGIN("similarity", "0.1.0",
                "Similarity analyses: a target token's vectors at many sites across sentences") {
  module.def(
      "vectors",
      "vectors(model, rows, opts) -> {vectors, rows, positions, shape, ...}: a target's vectors\n"
      "rows: token ids [rows, pos], {ids =, mask =} right-padded, or a list of texts. One batched\n"
      "pass per `batch_size` rows; at every site the vector at each occurrence of the target is\n"
      "gathered on the model's device.\n"
      "opts: target (a token id or one-token text: its first occurrence at or after `skip` in\n"
      "each row), positions (one per row, negative from the row's end) or occurrences ({rows =,\n"
      "positions =}: any number per row, in reading order, as m:find_tokens returns them);\n"
      "others (also every other real token's vector, default false);\n" +
          std::string(kScanOptionsDoc) + " (`skip` also leaves positions out of `others` and of\n" +
          "the target search).\n"
          "Returns vectors [sites, n, units] float32, one per occurrence (a per-head site "
          "flattened\n"
          "to heads x d_head units), rows, positions and ids [n] int64, shape (the first site's\n"
          "per-token shape, e.g. {12, 64} for attn.hook_q), units, sites (names;\n"
          "'hidden_states.<l>' by default); with others: other_vectors [sites, m, units],\n"
          "other_rows, other_positions and other_ids [m] int64, in reading order.",
      [](const ModelPtr& model, const Value& rows_value, const Table& opts) {
        const Plan plan = plan_from(*model, opts);
        const auto rows = token_rows(*model, rows_value, kRows, "rows");
        const Occurrences targets = find_occurrences(*model, rows, opts, plan.skip);
        const size_t n_sites = sites_read(*model, plan.sites);
        std::vector<std::vector<at::Tensor>> picked(n_sites), others(n_sites);
        std::vector<int64_t> site_shape;

        at::NoGradGuard no_grad;
        const auto device = model->device();
        std::vector<int64_t> other_rows, other_positions;
        for_each_batch(rows, plan.batch_size, [&](const auto& batch) {
          // This batch's occurrences: their rows within the batch and their positions.
          std::vector<int64_t> local_rows, local_positions;
          for (size_t k = 0; k < targets.rows.size(); ++k) {
            if (targets.rows[k] >= batch.start && targets.rows[k] < batch.stop) {
              local_rows.push_back(targets.rows[k] - batch.start);
              local_positions.push_back(targets.positions[k]);
            }
          }
          const at::Tensor batch_rows_cpu = at::tensor(local_rows, at::kLong);
          const at::Tensor batch_targets = at::tensor(local_positions, at::kLong);
          at::Tensor other_mask;  // [batch, width]: real tokens past `skip`, not the target
          if (plan.others) {
            other_mask = batch.real_from(plan.skip);
            other_mask.index_put_({batch_rows_cpu, batch_targets}, false);
            const at::Tensor where = other_mask.nonzero();  // [n, 2] in reading order
            const auto w = where.accessor<int64_t, 2>();
            for (int64_t k = 0; k < where.size(0); ++k) {
              other_rows.push_back(batch.start + w[k][0]);
              other_positions.push_back(w[k][1]);
            }
            other_mask = other_mask.to(device);
          }
          const at::Tensor batch_rows = batch_rows_cpu.to(device);
          const at::Tensor target_index = batch_targets.to(device);
          // [batch, pos, ...] -> the target rows [batch, units] and the others [n, units].
          read_sites(*model, batch, plan.sites, [&](size_t index, const at::Tensor& act) {
            if (site_shape.empty()) site_shape = act.sizes().slice(2).vec();
            const at::Tensor flat = act.flatten(2);
            picked[index].push_back(flat.index({batch_rows, target_index}).to(at::kFloat));
            if (plan.others) {
              others[index].push_back(flat.index({other_mask}).to(at::kFloat));
            }
          });
        });

        std::vector<at::Tensor> vectors, other_vectors;
        for (size_t s = 0; s < n_sites; ++s) {
          vectors.push_back(at::cat(picked[s], 0).cpu());  // one copy to the host per site
          if (plan.others) other_vectors.push_back(at::cat(others[s], 0).cpu());
        }
        const int64_t units = common_units(vectors, 1, kOpts);
        const at::Tensor target_rows = at::tensor(targets.rows, at::kLong);
        const at::Tensor target_positions = at::tensor(targets.positions, at::kLong);
        Table result;
        result["vectors"] = at::stack(vectors);
        result["rows"] = target_rows;
        result["positions"] = target_positions;
        result["ids"] = rows.ids.index({target_rows, target_positions}).to(at::kLong).contiguous();
        result["shape"] = List(site_shape.begin(), site_shape.end());
        result["units"] = units;
        result["sites"] = site_names(*model, plan.sites);
        if (plan.others) {
          const at::Tensor r = at::tensor(other_rows, at::kLong);
          const at::Tensor p = at::tensor(other_positions, at::kLong);
          result["other_vectors"] = at::stack(other_vectors);
          result["other_rows"] = r;
          result["other_positions"] = p;
          result["other_ids"] = rows.ids.index({r, p}).to(at::kLong).contiguous();
        }
        return result;
      });
}
