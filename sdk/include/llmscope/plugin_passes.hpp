// Batched passes over token rows, read at hook sites: the loop every plugin that scans many rows
// writes otherwise (cut the rows into batches, mask the padding, hook each site or ask for the
// hidden states, stop after the deepest block needed). Header-only, on the public plugin API.
//
//   for_each_batch(rows, 8, [&](const RowBatch& batch) {
//     read_sites(*model, batch, sites, [&](size_t index, const at::Tensor& act) {
//       // act [batch, pos, ...] at sites[index] (or hidden state `index` when sites is empty)
//     });
//   });
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "llmscope/model.hpp"
#include "llmscope/plugin_args.hpp"
#include "llmscope/plugin_inputs.hpp"

namespace llmscope::plugin {

// Rows [start, stop) of a TokenRows, cut to their longest row.
struct RowBatch {
  int64_t start = 0, stop = 0;
  at::Tensor ids;   // [batch, width] int64, on the CPU
  at::Tensor real;  // [batch, width] bool, on the CPU: true at real tokens, false at padding
  int64_t size() const { return stop - start; }
  // The real tokens at position `skip` or later (skip 1 leaves out a BOS), [batch, width] bool.
  at::Tensor real_from(int64_t skip) const {
    return real & (at::arange(ids.size(1), at::kLong).unsqueeze(0) >= skip);
  }
};

// The options every scan over token rows reads alike: `sites` (a hook point or list, {L}
// templates expanded over `layers`; none: the n_layer + 1 hidden states), `skip` (positions left
// out at the start of each row, 0 or more) and `batch_size` (rows per pass, at least 1).
struct ScanOptions {
  std::vector<Site> sites;  // empty: the hidden states
  int64_t skip = 0;
  int64_t batch_size = 8;
};
// What scan_options reads, for a function's doc string (one rule, one description).
constexpr const char* kScanOptionsDoc =
    "sites (a hook point or list, {L} templates expanded over `layers`; default the\n"
    "n_layer + 1 hidden states, Hugging Face's output_hidden_states), layers (for templates,\n"
    "default all), skip (positions left out at the start of each row, e.g. 1 for a BOS; default\n"
    "0), batch_size (rows per pass, default 8)";
// ScanOptions from the options table, argument `arg` (the caller checks the keys it allows).
inline ScanOptions scan_options(const Model& model, const Table& opts, int arg) {
  ScanOptions scan;
  if (auto sites = sites_option(model, opts, "sites", "layers", arg))
    scan.sites = std::move(*sites);
  scan.skip = option<int64_t>(opts, "skip", scan.skip, arg);
  if (scan.skip < 0) throw ArgumentError(arg, "option 'skip' must be 0 or more");
  scan.batch_size = batch_size_option(opts, scan.batch_size, arg);
  return scan;
}

// Calls fn(start, stop) for the consecutive ranges [start, stop) of at most `batch_size` (>= 1)
// of 0..count-1, in order: the one batching loop.
inline void for_each_range(int64_t count, int64_t batch_size,
                           const std::function<void(int64_t, int64_t)>& fn) {
  for (int64_t start = 0; start < count; start += batch_size) {
    fn(start, std::min(count, start + batch_size));
  }
}

// Calls fn(batch) for consecutive batches of at most `batch_size` rows (>= 1), in order.
inline void for_each_batch(const TokenRows& rows, int64_t batch_size,
                           const std::function<void(const RowBatch&)>& fn) {
  for_each_range(rows.size(), batch_size, [&](int64_t start, int64_t stop) {
    RowBatch batch;
    batch.start = start;
    batch.stop = stop;
    int64_t width = 0;
    for (int64_t i = batch.start; i < batch.stop; ++i) width = std::max(width, rows.lengths[i]);
    batch.ids = rows.ids.slice(0, batch.start, batch.stop).slice(1, 0, width);
    const at::Tensor lengths = at::tensor(std::vector<int64_t>(rows.lengths.begin() + batch.start,
                                                               rows.lengths.begin() + batch.stop),
                                          at::kLong)
                                   .unsqueeze(1);
    batch.real = at::arange(width, at::kLong).unsqueeze(0) < lengths;
    fn(batch);
  });
}

// One forward pass of `batch` (padding masked) on the model's device that calls
// read(index, act [batch, pos, ...]) for each of `sites` in pass order, or, when `sites` is empty,
// for each of the n_layer + 1 hidden states (Hugging Face's output_hidden_states: the
// embeddings, each block's output, the last after the final norm). The pass stops after the
// deepest block a site needs. A site that is not [batch, pos, ...] is an error naming it.
inline void read_sites(Model& model, const RowBatch& batch, const std::vector<Site>& sites,
                       const std::function<void(size_t, const at::Tensor&)>& read) {
  ForwardOptions forward;
  forward.strict_hooks = true;
  if (sites.empty()) {
    forward.output_hidden_states = true;
  } else {
    int64_t deepest = -1;
    for (size_t s = 0; s < sites.size(); ++s) {
      deepest = std::max<int64_t>(deepest, sites[s].layer);
      forward.hooks.push_back(
          {sites[s].name, [&sites, &read, s](const at::Tensor& act, const HookContext&) {
             if (act.dim() < 3) {
               throw Error("site '" + sites[s].name + "' is not [batch, pos, ...] (got " +
                           std::to_string(act.dim()) + " dims)");
             }
             read(s, act);
             return at::Tensor();
           }});
    }
    // Sites outside the blocks (the final norm) need the whole pass.
    const bool outside =
        std::any_of(sites.begin(), sites.end(), [](const Site& s) { return s.layer < 0; });
    if (!outside) forward.stop_at_layer = static_cast<int>(deepest + 1);
  }
  const auto device = model.device();
  const auto out = model.forward(
      ForwardInput{batch.ids.to(device), {}, batch.real.to(at::kLong).to(device), {}}, forward);
  if (sites.empty()) {
    for (size_t l = 0; l < out.hidden_states.size(); ++l) read(l, out.hidden_states[l]);
  }
}

// How many things read_sites reads: the sites, or the n_layer + 1 hidden states without sites.
inline size_t sites_read(const Model& model, const std::vector<Site>& sites) {
  return sites.empty() ? static_cast<size_t>(model.n_layer() + 1) : sites.size();
}

// Their names, for a result's `sites`: each site's name, or "hidden_states.<l>".
inline List site_names(const Model& model, const std::vector<Site>& sites) {
  std::vector<std::string> names;
  for (const auto& site : sites) names.push_back(site.name);
  if (sites.empty()) {
    for (int64_t l = 0; l <= model.n_layer(); ++l)
      names.push_back("hidden_states." + std::to_string(l));
  }
  return List(names.begin(), names.end());
}

// The size of dimension `dim` shared by every site's result, which stacking them needs; else an
// ArgumentError for argument `arg` (the options table) naming option 'sites'.
inline int64_t common_units(const std::vector<at::Tensor>& per_site, int64_t dim, int arg) {
  if (per_site.empty()) return 0;
  const int64_t units = per_site.front().size(dim);
  for (const auto& t : per_site) {
    if (t.size(dim) != units) {
      throw ArgumentError(arg,
                          "option 'sites': all sites must have the same number of units to be "
                          "stacked; read sites of different widths in separate calls");
    }
  }
  return units;
}

// Interventions batched one per row (row i of a pass carries intervention i): for the items
// [start, stop) of `items`, (group, value) pairs such as (layer, head), each group's rows within
// the batch and their values, so that one hook per group can act on its rows.
struct RowGroup {
  std::vector<int64_t> rows, values;
};
template <class Group>
std::map<Group, RowGroup> group_rows(const std::vector<std::pair<Group, int64_t>>& items,
                                     size_t start, size_t stop) {
  std::map<Group, RowGroup> groups;
  for (size_t k = start; k < stop; ++k) {
    groups[items[k].first].rows.push_back(static_cast<int64_t>(k - start));
    groups[items[k].first].values.push_back(items[k].second);
  }
  return groups;
}

// The batches of such interventions: fn(start, stop, groups) for consecutive ranges of at most
// `batch_size` items, with groups = group_rows(items, start, stop).
template <class Group, class Fn>
void for_each_group_batch(const std::vector<std::pair<Group, int64_t>>& items, int64_t batch_size,
                          Fn fn) {
  for_each_range(static_cast<int64_t>(items.size()), batch_size, [&](int64_t start, int64_t stop) {
    fn(start, stop, group_rows(items, static_cast<size_t>(start), static_cast<size_t>(stop)));
  });
}

}  // namespace llmscope::plugin
