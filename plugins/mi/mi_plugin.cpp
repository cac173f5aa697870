// mi: mutual information between the units of a model's hidden states or hook sites (lessons
// 13-09 to 13-14). Every real token is a sample; the chosen units of each site are gathered in
// native hooks on the model's device, pass by pass, and the binned MI of every pair of units
// (stats::mutual_information_matrix) is computed there, so the host receives [units, units] per
// site, never the activations.
#include <llmscope/plugin.hpp>
#include <llmscope/stats.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kRows = 2;
constexpr int kOpts = 3;

struct Plan : ScanOptions {
  std::vector<int64_t> units;  // empty: every unit
  int64_t bins = 15;
  std::optional<int64_t> shuffle;  // seed of the shuffled control
};

Plan plan_from(const llmscope::Model& model, const Table& opts) {
  check_options(opts, {"sites", "layers", "units", "bins", "skip", "batch_size", "shuffle"}, kOpts);
  Plan plan;
  static_cast<ScanOptions&>(plan) = scan_options(model, opts, kOpts);
  if (const Value* units = find_option(opts, "units")) {
    plan.units = integers(*units, kOpts, "option 'units'");
    if (plan.units.size() < 2) throw ArgumentError(kOpts, "option 'units': give at least 2 units");
    for (const int64_t u : plan.units) {
      if (u < 0)
        throw ArgumentError(kOpts, "option 'units': " + std::to_string(u) + " is negative");
    }
  }
  plan.bins = option<int64_t>(opts, "bins", plan.bins, kOpts);
  if (plan.bins < 2) throw ArgumentError(kOpts, "option 'bins' must be at least 2");
  if (find_option(opts, "shuffle") != nullptr) {
    plan.shuffle = option<int64_t>(opts, "shuffle", 0, kOpts);
  }
  return plan;
}

}  // namespace

LLMSCOPE_PLUGIN("mi", "0.1.0",
                "Mutual information between the units of hidden states or hook sites") {
  module.def(
      "pairwise",
      "pairwise(model, rows, opts) -> {mi, units, n_tokens, sites}: MI between units over tokens\n"
      "rows: token ids [rows, pos], {ids =, mask =} right-padded, or a list of texts. Every real\n"
      "token (padding and the first `skip` positions of each row left out) is one sample; the\n"
      "chosen units of each site are gathered on the model's device and the binned mutual\n"
      "information (np.histogram2d over each unit's range, in bits) of every pair of units is\n"
      "computed there.\n"
      "opts: " +
          std::string(kScanOptionsDoc) + ",\n" +
          "units (the unit indices to pair, default all: 768 units are 295,000 pairs), bins "
          "(default\n"
          "15), shuffle (a seed: also the control with each unit's values shuffled across tokens "
          "on its\n"
          "own, which keeps every unit's distribution and removes any dependence between units).\n"
          "Returns mi [sites, units, units] float64 (symmetric; the diagonal is each unit's "
          "entropy),\n"
          "with shuffle mi_shuffled [sites, units, units], units [units] int64, n_tokens, sites\n"
          "(names; 'hidden_states.<l>' by default).",
      [](const ModelPtr& model, const Value& rows_value, const Table& opts) {
        const Plan plan = plan_from(*model, opts);
        const auto rows = token_rows(*model, rows_value, kRows, "rows");
        const size_t n_sites = sites_read(*model, plan.sites);
        std::vector<std::vector<at::Tensor>> samples(n_sites);

        at::NoGradGuard no_grad;
        const auto device = model->device();
        at::Tensor units;  // on the device, once a site's width is known
        int64_t n_tokens = 0;
        int64_t largest = 0, first_width = 0;  // of the chosen units, and of the first site
        for_each_batch(rows, plan.batch_size, [&](const auto& batch) {
          const at::Tensor take = batch.real_from(plan.skip).to(device);
          n_tokens += take.sum().item<int64_t>();
          read_sites(*model, batch, plan.sites, [&](size_t index, const at::Tensor& act) {
            const at::Tensor flat = act.flatten(2);
            const int64_t width = flat.size(2);
            if (!units.defined()) {
              // Without `units`, every unit of the first site; sites of other widths
              // cannot share its matrices.
              std::vector<int64_t> chosen = plan.units;
              if (chosen.empty()) {
                for (int64_t u = 0; u < width; ++u) chosen.push_back(u);
              }
              largest = *std::max_element(chosen.begin(), chosen.end());
              units = at::tensor(chosen, at::kLong).to(device);
              first_width = width;
            }
            if (plan.units.empty() && width != first_width) {
              throw ArgumentError(
                  kOpts, "option 'sites': the sites are " + std::to_string(first_width) + " and " +
                             std::to_string(width) +
                             " units wide; give 'units' or read them in separate calls");
            }
            if (largest >= width) {
              throw ArgumentError(kOpts, "option 'units': " + std::to_string(largest) +
                                             " is not a unit of a site " + std::to_string(width) +
                                             " units wide");
            }
            samples[index].push_back(flat.index({take}).index_select(1, units).to(at::kDouble));
          });
        });
        if (n_tokens < 2) {
          throw ArgumentError(kRows, "rows: mutual information needs at least 2 tokens, got " +
                                         std::to_string(n_tokens));
        }
        std::vector<at::Tensor> matrices, shuffled;
        at::Generator generator;
        if (plan.shuffle) {
          generator = at::detail::createCPUGenerator(static_cast<uint64_t>(*plan.shuffle));
        }
        for (size_t s = 0; s < n_sites; ++s) {
          const at::Tensor x = at::cat(samples[s], 0);  // [tokens, units]
          matrices.push_back(llmscope::stats::mutual_information_matrix(x, plan.bins).cpu());
          if (plan.shuffle) {
            // Each column in its own random order (drawn on the CPU, so the same on any device).
            const at::Tensor order =
                at::rand(x.sizes(), generator, at::TensorOptions().dtype(at::kDouble))
                    .argsort(/*dim=*/int64_t{0});
            shuffled.push_back(llmscope::stats::mutual_information_matrix(
                                   x.gather(0, order.to(x.device())), plan.bins)
                                   .cpu());
          }
          samples[s].clear();  // free each site's samples as soon as its matrix is done
        }
        Table result;
        result["mi"] = at::stack(matrices);
        if (plan.shuffle) result["mi_shuffled"] = at::stack(shuffled);
        result["units"] = units.cpu();
        result["n_tokens"] = n_tokens;
        result["sites"] = site_names(*model, plan.sites);
        return result;
      });
}
