// tlesion: MLP neurons selected by a t-test between two conditions, then lesioned (course
// lessons 17-02 and 17-03). select() gathers each row's activation at its target position inside
// native hooks and feeds the core's streaming accumulators (paired: A - B differences; independent:
// two groups), then tests every neuron and applies Benjamini-Hochberg per layer. lesion() zeroes
// chosen units at chosen positions of chosen rows and reads target logits; laminar() does both for
// every layer. Activations never leave the model's device; only [rows, units] slices are kept.
// In a job of several ranks (llmscope/job.hpp) select() shares out its passes and merges the
// accumulators, and laminar() shares out its layers; every rank ends with the whole result.
#include <llmscope/job.hpp>
#include <llmscope/plugin.hpp>
#include <llmscope/stats.hpp>
#include <llmscope/streaming.hpp>
#include <llmscope/tokenizer.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tlesion_inputs.hpp"

namespace {

using namespace tlesion;
using namespace llmscope::plugin;  // the SDK (plugin.hpp)

// ---- selection ----

const std::vector<std::string> kSelectOptions = {
    "positions_a", "positions_b", "target", "target_a", "target_b",   "test",
    "equal_var",   "alpha",       "layers", "site",     "batch_size", "max_units"};

struct Selection {
  std::vector<int64_t> layers;
  std::string site, test;
  bool equal_var = true;
  double alpha = 0.05;
  int64_t max_units = 0;  // 0: every significant unit; else at most this many per set, by |t|
  int64_t n_a = 0, n_b = 0;
  std::vector<int64_t> positions_a, positions_b;
  at::Tensor t, df, p, p_adjusted, a_gt_b, b_gt_a;    // [layers, units]
  at::Tensor significant_a_gt_b, significant_b_gt_a;  // [layers] int64, before max_units
};

// The `max_units` units of `set` (bool [units]) with the largest |t|; all of them when fewer.
at::Tensor strongest(const at::Tensor& set, const at::Tensor& t, int64_t max_units) {
  if (max_units <= 0 || set.sum().item<int64_t>() <= max_units) return set;
  const at::Tensor score = at::where(set, t.abs(), at::full_like(t, -1.0));
  const at::Tensor top = std::get<1>(score.topk(max_units));
  return at::zeros_like(set).index_fill_(0, top, true);
}

// Target positions for one condition: positions_x, else the first token of target_x (or target).
std::vector<int64_t> condition_positions(const llmscope::Model& model, const Rows& rows,
                                         const Table& opts, int arg, const std::string& suffix) {
  if (const Value* v = find_option(opts, "positions_" + suffix)) {
    return positions_from(*v, rows, arg, "option 'positions_" + suffix + "'");
  }
  const std::string name = find_option(opts, "target_" + suffix) ? "target_" + suffix : "target";
  const Value* target = find_option(opts, name);
  if (!target) {
    throw ArgumentError(arg, "condition " + std::string(suffix == "a" ? "A" : "B") +
                                 " needs option 'positions_" + suffix + "', 'target_" + suffix +
                                 "' or 'target' to say where its target token is");
  }
  auto ids = tokens(model, *target, arg, "option '" + name + "'");
  return find_positions(model, rows, ids, arg,
                        "option '" + name + "' (condition " + (suffix == "a" ? "A" : "B") + ")");
}

// Rows of A and B (by index) padded to a common width, and where to read each one.
struct Chunk {
  at::Tensor ids, mask;        // [k, width]
  at::Tensor rows, positions;  // [k] int64: gather indices
  at::Tensor labels;           // [k] int64: 0 = A, 1 = B
};

// Every chunk has the same width (the longest row of A and B): float32 rounding in the pass
// follows the shapes of its matmuls, and a fixed width keeps the statistics independent of
// batch_size (the spec checks one pass against many to 1e-9).
Chunk make_chunk(const std::vector<std::pair<const Rows*, int64_t>>& members,
                 const std::vector<int64_t>& positions, const std::vector<int64_t>& labels,
                 int64_t pad, int64_t width) {
  const auto k = static_cast<int64_t>(members.size());
  Chunk c;
  c.ids = at::full({k, width}, pad, at::kLong);
  c.mask = at::zeros({k, width}, at::kLong);
  for (int64_t i = 0; i < k; ++i) {
    const auto& [rows, r] = members[static_cast<size_t>(i)];
    const int64_t n = rows->lengths[static_cast<size_t>(r)];
    c.ids[i].narrow(0, 0, n).copy_(rows->ids[r].narrow(0, 0, n));
    c.mask[i].narrow(0, 0, n).fill_(1);
  }
  c.rows = at::arange(k, at::kLong);
  c.positions = at::tensor(positions, at::kLong);
  c.labels = at::tensor(labels, at::kLong);
  return c;
}

Selection run_selection(llmscope::Model& model, const Rows& a, const Rows& b, const Table& opts,
                        int arg_b, int arg) {
  Selection sel;
  sel.test = option<std::string>(opts, "test", "paired", arg);
  if (sel.test != "paired" && sel.test != "independent") {
    throw ArgumentError(arg,
                        "option 'test' must be 'paired' or 'independent', got '" + sel.test + "'");
  }
  const bool paired = sel.test == "paired";
  sel.equal_var = option<bool>(opts, "equal_var", true, arg);
  sel.alpha = option<double>(opts, "alpha", 0.05, arg);
  if (!(sel.alpha > 0 && sel.alpha < 1))
    throw ArgumentError(arg, "option 'alpha' must be in (0, 1)");
  sel.max_units = option<int64_t>(opts, "max_units", 0, arg);
  if (sel.max_units < 0) throw ArgumentError(arg, "option 'max_units' must be 0 (no cap) or more");
  const int64_t batch_size = batch_size_option(opts, 64, arg);
  if (paired && a.size() != b.size()) {
    throw ArgumentError(arg_b, "the paired test needs one B row per A row (got " +
                                   std::to_string(a.size()) + " A rows and " +
                                   std::to_string(b.size()) +
                                   " B rows; use test = 'independent' for unpaired sets)");
  }
  sel.layers = layers_option(model, opts, "layers", arg);
  sel.site = option<std::string>(opts, "site", "blocks.{L}.mlp.hook_pre", arg);
  const auto sites = sites_at(model, sel.site, sel.layers, arg, "option 'site'");
  sel.positions_a = condition_positions(model, a, opts, arg, "a");
  sel.positions_b = condition_positions(model, b, opts, arg, "b");
  sel.n_a = a.size();
  sel.n_b = b.size();

  // The pass plan: paired chunks hold k A rows then their k B partners; independent chunks are
  // slices of A's rows followed by B's, labelled by condition.
  std::vector<Chunk> chunks;
  const int64_t pad = pad_token_id(model);
  int64_t width = 0;
  for (const Rows* rows : {&a, &b})
    width = std::max(width, *std::max_element(rows->lengths.begin(), rows->lengths.end()));
  if (paired) {
    for_each_range(a.size(), std::max<int64_t>(1, batch_size / 2),
                   [&](int64_t start, int64_t stop) {
                     const int64_t k = stop - start;
                     std::vector<std::pair<const Rows*, int64_t>> members;
                     std::vector<int64_t> pos, labels;
                     for (int64_t i = 0; i < k; ++i) {
                       members.emplace_back(&a, start + i);
                       pos.push_back(sel.positions_a[static_cast<size_t>(start + i)]);
                       labels.push_back(0);
                     }
                     for (int64_t i = 0; i < k; ++i) {
                       members.emplace_back(&b, start + i);
                       pos.push_back(sel.positions_b[static_cast<size_t>(start + i)]);
                       labels.push_back(1);
                     }
                     chunks.push_back(make_chunk(members, pos, labels, pad, width));
                   });
  } else {
    std::vector<std::pair<const Rows*, int64_t>> all;
    std::vector<int64_t> all_pos, all_labels;
    for (int64_t i = 0; i < a.size(); ++i) {
      all.emplace_back(&a, i);
      all_pos.push_back(sel.positions_a[static_cast<size_t>(i)]);
      all_labels.push_back(0);
    }
    for (int64_t i = 0; i < b.size(); ++i) {
      all.emplace_back(&b, i);
      all_pos.push_back(sel.positions_b[static_cast<size_t>(i)]);
      all_labels.push_back(1);
    }
    for_each_range(static_cast<int64_t>(all.size()), batch_size, [&](int64_t start, int64_t stop) {
      auto slice = [&](const auto& v) {
        return std::decay_t<decltype(v)>(v.begin() + start, v.begin() + stop);
      };
      chunks.push_back(make_chunk(slice(all), slice(all_pos), slice(all_labels), pad, width));
    });
  }

  // One accumulator per layer; its state lives on the model's device.
  std::vector<llmscope::stats::RunningStats> acc(sites.size(),
                                                 llmscope::stats::RunningStats(paired ? 1 : 2));
  const at::Device device = model.device();
  at::NoGradGuard no_grad;
  // This rank's passes (all of them outside a job); the accumulators merge below.
  const std::pair<int64_t, int64_t> mine =
      llmscope::job::shard_range(static_cast<int64_t>(chunks.size()));
  for (int64_t c = mine.first; c < mine.second; ++c) {
    const Chunk& chunk = chunks[static_cast<size_t>(c)];
    const at::Tensor rows_d = chunk.rows.to(device), pos_d = chunk.positions.to(device);
    const at::Tensor labels_d = chunk.labels.to(device);
    const int64_t half = chunk.rows.size(0) / 2;
    llmscope::ForwardOptions forward;
    forward.strict_hooks = true;
    forward.stop_at_layer = stop_after(sites);
    for (size_t j = 0; j < sites.size(); ++j) {
      forward.hooks.push_back(
          {sites[j].name, [&, j](const at::Tensor& act, const llmscope::HookContext&) {
             if (act.dim() < 3) {
               throw llmscope::Error(
                   "site '" + sites[j].name +
                   "' is not [batch, pos, units] (tlesion gathers one position per row)");
             }
             // [k, units] float64 (as the stats module): each row's activation at its target
             // position.
             at::Tensor gathered =
                 act.index({rows_d, pos_d}).reshape({rows_d.size(0), -1}).to(at::kDouble);
             if (paired) {
               acc[j].add(gathered.narrow(0, 0, half) - gathered.narrow(0, half, half), 0);
             } else {
               acc[j].add(gathered, labels_d);
             }
             return at::Tensor();
           }});
    }
    model.forward(llmscope::ForwardInput{chunk.ids, {}, chunk.mask, {}}, forward);
  }
  for (auto& a : acc) a.merge_across_job();

  std::vector<at::Tensor> t, df, p, p_adj, a_gt_b, b_gt_a;
  for (size_t j = 0; j < sites.size(); ++j) {
    llmscope::stats::TTest r =
        paired ? acc[j].ttest_1samp(0, 0.0) : acc[j].ttest_ind(0, 1, sel.equal_var);
    llmscope::stats::Correction c = llmscope::stats::fdr_bh(r.p, sel.alpha);
    if (j > 0 && r.t.numel() != t[0].numel()) {
      throw llmscope::Error("sites '" + sites[0].name + "' and '" + sites[j].name +
                            "' have different numbers of units (" + std::to_string(t[0].numel()) +
                            " vs " + std::to_string(r.t.numel()) + ")");
    }
    t.push_back(r.t);
    df.push_back(r.df);
    p.push_back(r.p);
    p_adj.push_back(c.p_adjusted);
    a_gt_b.push_back(c.rejected.logical_and(r.t > 0));
    b_gt_a.push_back(c.rejected.logical_and(r.t < 0));
  }
  sel.significant_a_gt_b = at::stack(a_gt_b).sum(1);
  sel.significant_b_gt_a = at::stack(b_gt_a).sum(1);
  for (size_t j = 0; j < sites.size(); ++j) {
    a_gt_b[j] = strongest(a_gt_b[j], t[j], sel.max_units);
    b_gt_a[j] = strongest(b_gt_a[j], t[j], sel.max_units);
  }
  sel.t = at::stack(t);
  sel.df = at::stack(df);
  sel.p = at::stack(p);
  sel.p_adjusted = at::stack(p_adj);
  sel.a_gt_b = at::stack(a_gt_b);
  sel.b_gt_a = at::stack(b_gt_a);
  return sel;
}

void put_selection(Table& out, const Selection& sel) {
  const double units = static_cast<double>(sel.t.size(1));
  out["layers"] = sel.layers;
  out["site"] = sel.site;
  out["test"] = sel.test;
  out["equal_var"] = sel.equal_var;
  out["alpha"] = sel.alpha;
  out["n_a"] = sel.n_a;
  out["n_b"] = sel.n_b;
  out["units"] = sel.t.size(1);
  out["positions_a"] = at::tensor(sel.positions_a, at::kLong);
  out["positions_b"] = at::tensor(sel.positions_b, at::kLong);
  out["t"] = sel.t;
  out["df"] = sel.df;
  out["p"] = sel.p;
  out["p_adjusted"] = sel.p_adjusted;
  out["a_gt_b"] = sel.a_gt_b;
  out["b_gt_a"] = sel.b_gt_a;
  const at::Tensor count_a = sel.a_gt_b.sum(1), count_b = sel.b_gt_a.sum(1);
  out["count_a_gt_b"] = count_a;
  out["count_b_gt_a"] = count_b;
  // Percentages describe the test (every significant unit), counts the capped sets.
  out["percent_a_gt_b"] = sel.significant_a_gt_b.to(at::kDouble) * (100.0 / units);
  out["percent_b_gt_a"] = sel.significant_b_gt_a.to(at::kDouble) * (100.0 / units);
  out["max_units"] = sel.max_units;
  out["significant_a_gt_b"] = sel.significant_a_gt_b;
  out["significant_b_gt_a"] = sel.significant_b_gt_a;
}

// ---- lesions ----

struct Lesion {
  std::optional<int64_t> row;    // nullopt: every row
  int64_t position = 0;          // as given (negative from each row's end)
  std::optional<int64_t> layer;  // nullopt in laminar(): every layer in turn
  at::Tensor units;  // bool [units] mask or int64 [k] indices; undefined when `set` is used
  std::string set;   // "a" (A > B) or "b" (B > A) from a selection
  std::optional<int64_t> target;  // the token whose logit this lesion is meant to move
};

std::vector<Lesion> lesions_from(const llmscope::Model& model, const Table& opts, const Rows& rows,
                                 bool with_layer, int arg) {
  std::vector<Lesion> out;
  const Value* v = find_option(opts, "lesions");
  if (!v) return out;
  auto list = as_list(*v);
  if (!list)
    throw ArgumentError(
        arg, "option 'lesions' must be a list of {row =, position =, layer =, neurons =} tables");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string what = "option 'lesions' entry " + std::to_string(i + 1);
    auto* entry = std::get_if<Table>(&(*list)[i].data);
    if (!entry)
      throw ArgumentError(arg, what + ": a table {row =, position =, layer =, neurons =} expected");
    try {
      check_options(*entry, {"row", "position", "layer", "neurons", "target"}, arg);
    } catch (const ArgumentError& e) {
      throw ArgumentError(arg, what + ": " + e.what());
    }
    Lesion lesion;
    if (const Value* row = find_option(*entry, "row")) {
      auto r = as_integer(*row);
      if (!r || *r < 0 || *r >= rows.size()) {
        throw ArgumentError(arg, what + ": 'row' must be a row of the input (0 to " +
                                     std::to_string(rows.size() - 1) + ")");
      }
      lesion.row = *r;
    }
    const Value* position = find_option(*entry, "position");
    auto p = position ? as_integer(*position) : std::nullopt;
    if (!p) throw ArgumentError(arg, what + ": 'position' (an integer, 0-based) is required");
    lesion.position = *p;
    for (int64_t r = 0; r < rows.size(); ++r) {
      if (!lesion.row || *lesion.row == r) resolve_position(*p, rows, r, arg, what);
    }
    if (const Value* layer = find_option(*entry, "layer")) {
      if (!with_layer)
        throw ArgumentError(arg, what + ": laminar() lesions every layer in turn; drop 'layer'");
      auto l = as_integer(*layer);
      if (!l || *l < -model.n_layer() || *l >= model.n_layer()) {
        throw ArgumentError(arg, what + ": 'layer' must be a layer of this " +
                                     std::to_string(model.n_layer()) + "-layer model (0-based)");
      }
      lesion.layer = *l < 0 ? *l + model.n_layer() : *l;
    } else if (with_layer) {
      throw ArgumentError(arg, what + ": 'layer' is required");
    }
    const Value* neurons = find_option(*entry, "neurons");
    if (!neurons)
      throw ArgumentError(arg,
                          what + ": 'neurons' is required (a bool mask, unit indices, or 'a'/'b')");
    if (auto* s = std::get_if<std::string>(&neurons->data)) {
      if (*s != "a" && *s != "b") {
        throw ArgumentError(
            arg, what +
                     ": 'neurons' as text must be 'a' (A > B units) or 'b' (B > A units), got '" +
                     *s + "'");
      }
      lesion.set = *s;
    } else if (auto* t = std::get_if<at::Tensor>(&neurons->data);
               t && t->scalar_type() == at::kBool) {
      if (t->dim() != 1) throw ArgumentError(arg, what + ": a 'neurons' mask must be 1-D [units]");
      lesion.units = *t;
    } else {
      auto idx = integers(*neurons, arg, what + ": 'neurons'");
      lesion.units = at::tensor(idx, at::kLong);
      if (!idx.empty() && lesion.units.min().item<int64_t>() < 0) {
        throw ArgumentError(arg, what + ": 'neurons' indices are 0-based and not negative");
      }
    }
    if (const Value* target = find_option(*entry, "target"))
      lesion.target = token(model, *target, arg, what + ": 'target'");
    out.push_back(std::move(lesion));
  }
  return out;
}

struct Readout {
  at::Tensor positions;          // [rows, P] int64, resolved
  std::vector<int64_t> targets;  // [T]
};

Readout readout_from(const llmscope::Model& model, const Rows& rows, const Table& opts, int arg) {
  Readout out;
  const Value* targets = find_option(opts, "targets");
  if (!targets)
    throw ArgumentError(
        arg, "option 'targets' is required: the token ids or one-token texts whose logits to read");
  out.targets = tokens(model, *targets, arg, "option 'targets'");
  std::vector<std::vector<int64_t>> per_row;
  const Value* v = find_option(opts, "readout");
  const std::optional<List> given = v ? as_list(*v) : std::nullopt;
  const bool nested = given && !given->empty() && !as_integer(given->front());
  if (nested) {
    const List& list = *given;  // one list (or tensor) of positions per row
    if (static_cast<int64_t>(list.size()) != rows.size()) {
      throw ArgumentError(arg, "option 'readout': " + std::to_string(list.size()) +
                                   " lists of positions for " + std::to_string(rows.size()) +
                                   " rows");
    }
    for (const auto& item : list) per_row.push_back(integers(item, arg, "option 'readout'"));
  } else if (v && std::holds_alternative<at::Tensor>(v->data) &&
             std::get<at::Tensor>(v->data).dim() == 2) {
    const auto& t = std::get<at::Tensor>(v->data);
    if (t.size(0) != rows.size())
      throw ArgumentError(arg,
                          "option 'readout': the tensor needs one row of positions per input row");
    for (int64_t r = 0; r < t.size(0); ++r)
      per_row.push_back(integers(Value(t[r]), arg, "option 'readout'"));
  } else if (v) {
    per_row.assign(static_cast<size_t>(rows.size()), integers(*v, arg, "option 'readout'"));
  } else if (model.is_causal()) {
    per_row.assign(static_cast<size_t>(rows.size()),
                   {-1});  // next-token logits after each row's last token
  } else {
    int64_t mask_id = -1;
    if (const Value* m = find_option(opts, "mask_id")) {
      mask_id = token(model, *m, arg, "option 'mask_id'");
    } else if (model.tokenizer()) {
      mask_id = model.tokenizer()->special_token_id("[MASK]");
    }
    if (mask_id < 0)
      throw ArgumentError(
          arg,
          "option 'readout' is needed: this masked model has no [MASK] token (or give 'mask_id')");
    auto ids = rows.ids.accessor<int64_t, 2>();
    for (int64_t r = 0; r < rows.size(); ++r) {
      std::vector<int64_t> masks;
      for (int64_t p = 0; p < rows.lengths[static_cast<size_t>(r)]; ++p) {
        if (ids[r][p] == mask_id) masks.push_back(p);
      }
      if (masks.empty())
        throw ArgumentError(arg, "row " + std::to_string(r) + " has no " +
                                     token_label(model, mask_id) + "; give option 'readout'");
      per_row.push_back(masks);
    }
  }
  const size_t count = per_row.front().size();
  if (count == 0) throw ArgumentError(arg, "option 'readout' holds no positions");
  out.positions = at::empty({rows.size(), static_cast<int64_t>(count)}, at::kLong);
  for (int64_t r = 0; r < rows.size(); ++r) {
    const auto& list = per_row[static_cast<size_t>(r)];
    if (list.size() != count) {
      throw ArgumentError(
          arg, "option 'readout': every row needs the same number of positions (row " +
                   std::to_string(r) + " has " + std::to_string(list.size()) + ", row 0 has " +
                   std::to_string(count) + ")");
    }
    for (size_t k = 0; k < count; ++k) {
      out.positions[r][static_cast<int64_t>(k)] =
          resolve_position(list[k], rows, r, arg, "option 'readout'");
    }
  }
  return out;
}

// Logits [rows, P, T] (float64) at the readout positions for the targets.
at::Tensor read_logits(const at::Tensor& logits, const Readout& readout) {
  const at::Device device = logits.device();
  const at::Tensor pos = readout.positions.to(device);  // [rows, P]
  const at::Tensor rows = at::arange(pos.size(0), pos.options()).unsqueeze(1).expand_as(pos);
  const at::Tensor targets = at::tensor(readout.targets, at::kLong).to(device);
  return logits.index({rows, pos})
      .index_select(-1, targets)
      .to(at::kCPU, at::kDouble);  // [rows, P, T]
}

// The units a lesion zeroes at `layer`: a bool mask [units] on `device`.
at::Tensor lesion_mask(const Lesion& lesion, int64_t layer, int64_t units, const Table* selection,
                       const at::Device& device, const std::string& site) {
  at::Tensor mask;
  if (!lesion.set.empty()) {
    if (!selection)
      throw llmscope::Error("lesion neurons '" + lesion.set +
                            "' need option 'selection' (a select() result)");
    auto layers =
        llmscope::plugin::FromValue<std::vector<int64_t>>::get(selection->at("layers"), 0);
    auto it = std::find(layers.begin(), layers.end(), layer);
    if (it == layers.end())
      throw llmscope::Error("the selection has no layer " + std::to_string(layer));
    const auto& sets =
        std::get<at::Tensor>(selection->at(lesion.set == "a" ? "a_gt_b" : "b_gt_a").data);
    mask = sets[it - layers.begin()];
  } else if (lesion.units.scalar_type() == at::kBool) {
    mask = lesion.units;
  } else {
    mask = at::zeros({units}, at::kBool);
    if (lesion.units.numel() > 0) {
      const int64_t hi = lesion.units.max().item<int64_t>();
      if (hi >= units) {
        throw llmscope::Error("lesion unit " + std::to_string(hi) + " is out of range for the " +
                              std::to_string(units) + " units of '" + site + "' (0-based)");
      }
      mask.index_fill_(0, lesion.units, true);
    }
  }
  if (mask.numel() != units) {
    throw llmscope::Error("a lesion mask of " + std::to_string(mask.numel()) +
                          " units does not fit the " + std::to_string(units) + " units of '" +
                          site + "'");
  }
  return mask.to(device, at::kBool);
}

// [rows, pos] int64: 1 for each row's tokens, 0 for its right padding.
at::Tensor attention_mask(const Rows& rows) {
  return (at::arange(rows.ids.size(1), at::kLong).unsqueeze(0) <
          at::tensor(rows.lengths, at::kLong).unsqueeze(1))
      .to(at::kLong);
}

struct LesionRun {
  at::Tensor lesioned;  // [rows, P, T] float64
  at::Tensor zeroed;    // [rows] int64: units set to 0 per row (over layers and positions)
};

// One pass in which every lesion zeroes its units at its layer's site (`layer_sites`: each
// hooked layer and its site name); the readout logits come back as [rows, P, T] float64.
LesionRun run_lesioned(llmscope::Model& model, const Rows& rows, const Readout& readout,
                       const std::vector<Lesion>& lesions,
                       const std::vector<std::pair<int64_t, std::string>>& layer_sites,
                       const Table* selection) {
  at::Tensor zeroed = at::zeros({rows.size()}, at::kLong);
  std::vector<int64_t> resolved(lesions.size() * static_cast<size_t>(rows.size()), 0);
  for (size_t i = 0; i < lesions.size(); ++i) {
    for (int64_t r = 0; r < rows.size(); ++r) {
      const int64_t length = rows.lengths[static_cast<size_t>(r)];
      resolved[i * static_cast<size_t>(rows.size()) + static_cast<size_t>(r)] =
          lesions[i].position < 0 ? lesions[i].position + length : lesions[i].position;
    }
  }
  llmscope::ForwardOptions forward;
  forward.strict_hooks = true;
  for (const auto& [layer, site] : layer_sites) {
    forward.hooks.push_back(
        {site,
         [&, layer = layer, site = site](const at::Tensor& act, const llmscope::HookContext&) {
           if (act.dim() != 3)
             throw llmscope::Error("site '" + site + "' is not [batch, pos, units]");
           at::Tensor mask =
               at::zeros(act.sizes(), act.options().dtype(at::kBool));  // [batch, pos, units]
           for (size_t i = 0; i < lesions.size(); ++i) {
             const Lesion& lesion = lesions[i];
             if (lesion.layer && *lesion.layer != layer) continue;
             const at::Tensor units =
                 lesion_mask(lesion, layer, act.size(2), selection, act.device(), site);
             const int64_t count = units.sum().item<int64_t>();
             for (int64_t r = 0; r < rows.size(); ++r) {
               if (lesion.row && *lesion.row != r) continue;
               const int64_t p =
                   resolved[i * static_cast<size_t>(rows.size()) + static_cast<size_t>(r)];
               mask[r][p].logical_or_(units);
               zeroed[r] += count;
             }
           }
           return act.masked_fill(mask, 0);
         }});
  }
  at::NoGradGuard no_grad;
  auto out = model.forward(llmscope::ForwardInput{rows.ids, {}, attention_mask(rows), {}}, forward);
  return {read_logits(out.logits, readout), zeroed};
}

at::Tensor run_clean(llmscope::Model& model, const Rows& rows, const Readout& readout) {
  at::NoGradGuard no_grad;
  auto out = model.forward(llmscope::ForwardInput{rows.ids, {}, attention_mask(rows), {}});
  return read_logits(out.logits, readout);
}

// Layers with lesions, each with its site name.
std::vector<std::pair<int64_t, std::string>> lesion_sites(const llmscope::Model& model,
                                                          const std::vector<Lesion>& lesions,
                                                          const std::string& pattern, int arg,
                                                          const std::string& option_name) {
  std::set<int64_t> layers;
  for (const auto& l : lesions) layers.insert(*l.layer);
  std::vector<int64_t> list(layers.begin(), layers.end());
  std::vector<std::pair<int64_t, std::string>> out;
  if (list.empty()) {
    site_at(model, pattern, 0, arg, "option '" + option_name + "'");  // check it
    return out;
  }
  auto sites = sites_at(model, pattern, list, arg, "option '" + option_name + "'");
  for (size_t i = 0; i < list.size(); ++i) out.emplace_back(list[i], sites[i].name);
  return out;
}

// Δ at each lesion's own row, readout slot (the one at its position) and target: [entries].
std::optional<std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>>> signed_slots(
    const std::vector<Lesion>& lesions, const Rows& rows, const Readout& readout, int arg) {
  if (lesions.empty()) return std::nullopt;
  std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>> slots;
  for (size_t i = 0; i < lesions.size(); ++i) {
    const Lesion& l = lesions[i];
    if (!l.target) return std::nullopt;
    if (!l.row)
      throw ArgumentError(
          arg, "option 'lesions' entry " + std::to_string(i + 1) + ": a 'target' needs a 'row'");
    const int64_t length = rows.lengths[static_cast<size_t>(*l.row)];
    const int64_t p = l.position < 0 ? l.position + length : l.position;
    auto pos = readout.positions[*l.row];
    int64_t slot = -1;
    for (int64_t k = 0; k < pos.size(0); ++k) {
      if (pos[k].item<int64_t>() == p) slot = k;
    }
    if (slot < 0) {
      throw ArgumentError(arg, "option 'lesions' entry " + std::to_string(i + 1) + ": position " +
                                   std::to_string(p) + " is not a readout position of row " +
                                   std::to_string(*l.row) + ", so its 'target' has no logit");
    }
    auto it = std::find(readout.targets.begin(), readout.targets.end(), *l.target);
    if (it == readout.targets.end()) {
      throw ArgumentError(arg, "option 'lesions' entry " + std::to_string(i + 1) +
                                   ": its 'target' is not in option 'targets'");
    }
    slots.push_back({*l.row, {slot, it - readout.targets.begin()}});
  }
  return slots;
}

at::Tensor lesioned_rows(const std::vector<Lesion>& lesions, int64_t n) {
  at::Tensor rows = at::zeros({n}, at::kBool);
  for (const auto& l : lesions) {
    if (l.row) {
      rows[*l.row] = true;
    } else {
      rows.fill_(true);
    }
  }
  return rows;
}

const char* kSelectDoc =
    "select(model, a, b, opts) -> selection: per-neuron t-tests between conditions A and B at "
    "target positions\n"
    "a, b: token ids [rows, pos], {ids =, mask =} (right-padded) or lists of texts (tokenised, "
    "right-padded).\n"
    "Where to read each row (0-based; negative from the row's end): positions_a / positions_b (one "
    "integer,\n"
    "or one per row), else the first token of target_a / target_b (or target, for both): a token "
    "id, a\n"
    "one-token text (' her' for GPT-2, 'her' for BERT, '[MASK]') or a list of them.\n"
    "opts: test ('paired' (default: row i of A with row i of B, ttest_rel) | 'independent' "
    "(ttest_ind)),\n"
    "equal_var (independent: Student when true (default), Welch when false), alpha (FDR, default "
    "0.05),\n"
    "layers (list, default all), site (default 'blocks.{L}.mlp.hook_pre'; {L} becomes the layer),\n"
    "batch_size (rows per forward pass, default 64), max_units (at most this many units per set "
    "and layer,\n"
    "the significant ones with the largest |t|; default 0: all).\n"
    "Statistics stream inside native hooks on the model's device; Benjamini-Hochberg per layer.\n"
    "Returns {layers (list), site, test, alpha, n_a, n_b, units, positions_a [n_a], positions_b "
    "[n_b],\n"
    "t, df, p, p_adjusted [layers, units] float64, a_gt_b, b_gt_a [layers, units] bool "
    "(significant with\n"
    "t > 0 / t < 0; capped by max_units), count_a_gt_b, count_b_gt_a [layers] int64 (their "
    "sizes),\n"
    "significant_a_gt_b, significant_b_gt_a [layers] int64 and percent_a_gt_b, percent_b_gt_a "
    "[layers]\n"
    "(every significant unit, before the cap), max_units}.\n"
    "Row i of the tensors is layers[i + 1] (Lua list); with all layers, row L is layer L.";

const char* kLesionDoc =
    "lesion(model, inputs, opts) -> {clean, lesioned, delta, ...}: zero units at chosen positions "
    "and read target logits\n"
    "inputs: token ids, {ids =, mask =} or a list of texts (right-padded), one pass each for clean "
    "and lesioned.\n"
    "opts: targets (required: token ids / one-token texts whose logits are read), readout "
    "(positions whose\n"
    "logits are read: one integer or list shared by all rows, or one list per row; default: causal "
    "models\n"
    "-1, the next-token logits after each row's last token; masked models each row's [MASK] "
    "positions,\n"
    "mask_id to name the mask token), lesions (list of {row = r (0-based; omit for every row), "
    "position = p,\n"
    "layer = L, neurons = bool mask [units] | unit indices | 'a' | 'b', target = token}), "
    "selection (a\n"
    "select() result, for neurons 'a' = its a_gt_b and 'b' = its b_gt_a at that layer), site "
    "(default\n"
    "'blocks.{L}.mlp.hook_post': zeroed after the nonlinearity).\n"
    "Returns clean, lesioned, delta = clean - lesioned [rows, P, T] float64, readout [rows, P], "
    "targets [T],\n"
    "zeroed [rows] (units set to 0 per row), max_abs_delta, and signed [entries] (delta at each "
    "lesion's\n"
    "row, position and target) when every lesion names a target. Lesioning nothing gives delta = 0 "
    "exactly.";

const char* kLaminarDoc =
    "laminar(model, a, b, inputs, opts) -> profile: select() over all layers, then lesion() at "
    "each layer\n"
    "opts: the options of select() (site is where neurons are tested), the options of lesion() "
    "(lesions\n"
    "without 'layer', neurons usually 'a' or 'b'; lesion_site instead of site), layers (default "
    "all).\n"
    "Returns the selection's fields plus clean [rows, P, T], lesioned and delta [layers, rows, P, "
    "T],\n"
    "mean_abs_delta [layers] (mean |delta| over the lesioned rows), signed [layers, entries] (when "
    "every\n"
    "lesion names a target), zeroed [layers, rows], readout, targets.";

}  // namespace

LLMSCOPE_PLUGIN(
    "tlesion", "0.1.0",
    "t-test selected MLP neurons, their lesions and laminar profile (course 17-02/17-03)") {
  module.def("select", kSelectDoc,
             [](const ModelPtr& model, const Value& a, const Value& b, const Table& opts) {
               check_options(opts, kSelectOptions, 4);
               const Rows rows_a = token_rows(*model, a, 2, "condition A");
               const Rows rows_b = token_rows(*model, b, 3, "condition B");
               Table out;
               put_selection(out, run_selection(*model, rows_a, rows_b, opts, 3, 4));
               return out;
             });

  module.def("find",
             "find(model, inputs, target) -> positions [rows]: each row's first position holding "
             "target (id, one-token text or list)",
             [](const ModelPtr& model, const Value& inputs, const Value& target) {
               const Rows rows = token_rows(*model, inputs, 2, "inputs");
               if (target.is_nil())
                 throw ArgumentError(
                     3, "target expected: a token id, a one-token text or a list of them");
               auto ids = tokens(*model, target, 3, "target");
               return at::tensor(find_positions(*model, rows, ids, 3, "target"), at::kLong);
             });

  module.def(
      "lesion", kLesionDoc, [](const ModelPtr& model, const Value& inputs, const Table& opts) {
        check_options(opts, {"targets", "readout", "mask_id", "lesions", "selection", "site"}, 3);
        const Rows rows = token_rows(*model, inputs, 2, "inputs");
        const Readout readout = readout_from(*model, rows, opts, 3);
        const auto lesions = lesions_from(*model, opts, rows, /*with_layer=*/true, 3);
        const Table* selection = nullptr;
        if (const Value* s = find_option(opts, "selection")) {
          selection = std::get_if<Table>(&s->data);
          if (!selection || !selection->count("layers") || !selection->count("a_gt_b") ||
              !selection->count("b_gt_a")) {
            throw ArgumentError(3, "option 'selection' must be a select() result");
          }
        }
        for (const auto& l : lesions) {
          if (!l.set.empty() && !selection)
            throw ArgumentError(3, "lesion neurons '" + l.set + "' need option 'selection'");
        }
        const auto sites = lesion_sites(
            *model, lesions, option<std::string>(opts, "site", "blocks.{L}.mlp.hook_post", 3), 3,
            "site");
        const auto slots = signed_slots(lesions, rows, readout, 3);
        const at::Tensor clean = run_clean(*model, rows, readout);
        LesionRun run = run_lesioned(*model, rows, readout, lesions, sites, selection);
        const at::Tensor delta = clean - run.lesioned;
        Table out;
        out["clean"] = clean;
        out["lesioned"] = run.lesioned;
        out["delta"] = delta;
        out["readout"] = readout.positions;
        out["targets"] = at::tensor(readout.targets, at::kLong);
        out["zeroed"] = run.zeroed;
        out["max_abs_delta"] = delta.abs().max().item<double>();
        if (slots) {
          std::vector<double> signed_delta;
          for (const auto& [row, sk] : *slots)
            signed_delta.push_back(delta[row][sk.first][sk.second].item<double>());
          out["signed"] = at::tensor(signed_delta, at::kDouble);
        }
        return out;
      });

  module.def(
      "laminar", kLaminarDoc,
      [](const ModelPtr& model, const Value& a, const Value& b, const Value& inputs,
         const Table& opts) {
        std::vector<std::string> known = kSelectOptions;
        for (const char* k : {"targets", "readout", "mask_id", "lesions", "lesion_site"})
          known.emplace_back(k);
        check_options(opts, known, 5);
        const Rows rows_a = token_rows(*model, a, 2, "condition A");
        const Rows rows_b = token_rows(*model, b, 3, "condition B");
        const Rows rows = token_rows(*model, inputs, 4, "inputs");
        const Readout readout = readout_from(*model, rows, opts, 5);
        auto lesions = lesions_from(*model, opts, rows, /*with_layer=*/false, 5);
        const auto slots = signed_slots(lesions, rows, readout, 5);
        const std::string lesion_pattern =
            option<std::string>(opts, "lesion_site", "blocks.{L}.mlp.hook_post", 5);

        const Selection sel = run_selection(*model, rows_a, rows_b, opts, 3, 5);
        Table out;
        put_selection(out, sel);
        const auto sites = sites_at(*model, lesion_pattern, sel.layers, 5, "option 'lesion_site'");
        const at::Tensor clean = run_clean(*model, rows, readout);
        const at::Tensor lesioned_mask = lesioned_rows(lesions, rows.size());

        // This rank's layers (all of them outside a job), gathered below.
        std::vector<at::Tensor> lesioned, deltas, zeroed, mean_abs, signed_rows;
        const std::pair<int64_t, int64_t> mine =
            llmscope::job::shard_range(static_cast<int64_t>(sel.layers.size()));
        for (auto j = static_cast<size_t>(mine.first); j < static_cast<size_t>(mine.second); ++j) {
          std::vector<Lesion> at_layer = lesions;
          for (auto& l : at_layer) l.layer = sel.layers[j];
          LesionRun run =
              run_lesioned(*model, rows, readout, at_layer, {{sel.layers[j], sites[j].name}}, &out);
          const at::Tensor delta = clean - run.lesioned;
          lesioned.push_back(run.lesioned);
          deltas.push_back(delta);
          zeroed.push_back(run.zeroed);
          mean_abs.push_back(lesions.empty() ? at::zeros({}, at::kDouble)
                                             : delta.index({lesioned_mask}).abs().mean());
          if (slots) {
            std::vector<double> s;
            for (const auto& [row, sk] : *slots)
              s.push_back(delta[row][sk.first][sk.second].item<double>());
            signed_rows.push_back(at::tensor(s, at::kDouble));
          }
        }
        // Layers stacked in order: this rank's, then every rank's in a job.
        auto layers_of = [](const std::vector<at::Tensor>& parts) {
          return llmscope::job::all_gather_concat(parts.empty() ? at::Tensor() : at::stack(parts));
        };
        out["clean"] = clean;
        out["lesioned"] = layers_of(lesioned);
        out["delta"] = layers_of(deltas);
        out["zeroed"] = layers_of(zeroed);
        out["mean_abs_delta"] = layers_of(mean_abs);
        if (slots) out["signed"] = layers_of(signed_rows);
        out["readout"] = readout.positions;
        out["targets"] = at::tensor(readout.targets, at::kLong);
        return out;
      });
}
