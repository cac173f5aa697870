// dimensionality: how many dimensions a model's hidden states use (lessons 13-06, 13-07). Every
// real token of every row is a sample; per hidden state (or hook site) the covariance over the
// samples is accumulated pass by pass on the model's device (stats::CovarianceStream), so the
// PCA spectrum of a whole book costs d x d memory per site, never tokens x d on the host.
#include <llmscope/plugin.hpp>
#include <llmscope/streaming.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kRows = 2;
constexpr int kOpts = 3;

// What to read: the model's hidden states (HF's output_hidden_states: [0] the embeddings, [l] the
// output of block l-1, the last after the final norm), or hook sites.
struct Plan : ScanOptions {
  std::vector<double> thresholds = {0.95, 0.99};
};

Plan plan_from(const llmscope::Model& model, const Table& opts) {
  check_options(opts, {"sites", "layers", "thresholds", "batch_size", "skip"}, kOpts);
  Plan plan;
  static_cast<ScanOptions&>(plan) = scan_options(model, opts, kOpts);
  plan.thresholds = option<std::vector<double>>(opts, "thresholds", plan.thresholds, kOpts);
  if (plan.thresholds.empty()) throw ArgumentError(kOpts, "option 'thresholds' is empty");
  for (const double t : plan.thresholds) {
    if (!(t > 0.0 && t <= 1.0)) {
      throw ArgumentError(kOpts,
                          "option 'thresholds': each must be in (0, 1], got " + std::to_string(t));
    }
  }
  return plan;
}

}  // namespace

LLMSCOPE_PLUGIN("dimensionality", "0.1.0",
                "Effective dimensionality: PCA spectra of hidden states over every token") {
  module.def(
      "spectrum",
      "spectrum(model, rows, opts) -> {explained, cumulative, n_components, ...}: PCA per hidden "
      "state\n"
      "rows: token ids [rows, pos], {ids =, mask =} right-padded, or a list of texts. Every real\n"
      "token (padding and the first `skip` positions of each row left out) is one sample; per\n"
      "hidden state the covariance over all samples is accumulated on the model's device and its\n"
      "eigenvalues give the PCA spectrum, as an SVD of the mean-centred [tokens, d] matrix would.\n"
      "opts: " +
          std::string(kScanOptionsDoc) + ",\nthresholds (default {0.95, 0.99}).\n" +
          "Returns explained [sites, units] float64 (each component's share of the variance,\n"
          "descending), cumulative [sites, units], n_components [sites, thresholds] int64 "
          "(components\n"
          "needed to reach each threshold), thresholds, sites (names; 'hidden_states.<l>' by\n"
          "default), n_tokens, units, max_components (min(n_tokens - 1, units): the most a\n"
          "threshold can need).",
      [](const ModelPtr& model, const Value& rows_value, const Table& opts) {
        const Plan plan = plan_from(*model, opts);
        const auto rows = token_rows(*model, rows_value, kRows, "rows");
        for (size_t i = 0; i < rows.lengths.size(); ++i) {
          if (rows.lengths[i] <= plan.skip) {
            throw ArgumentError(kRows, "rows: row " + std::to_string(i) + " has " +
                                           std::to_string(rows.lengths[i]) +
                                           " tokens, none left after skipping " +
                                           std::to_string(plan.skip));
          }
        }
        const size_t n_sites = sites_read(*model, plan.sites);
        std::vector<llmscope::stats::CovarianceStream> streams(n_sites);

        at::NoGradGuard no_grad;
        const auto device = model->device();
        int64_t n_tokens = 0;
        for_each_batch(rows, plan.batch_size, [&](const auto& batch) {
          // The real tokens without the skipped positions are the samples.
          const at::Tensor take = batch.real_from(plan.skip).to(device);
          n_tokens += take.sum().item<int64_t>();
          read_sites(*model, batch, plan.sites, [&](size_t index, const at::Tensor& act) {
            streams[index].add(act.flatten(2).index({take}));
          });
        });
        if (n_tokens < 2) {
          throw ArgumentError(
              kRows, "rows: a spectrum needs at least 2 tokens, got " + std::to_string(n_tokens));
        }

        std::vector<at::Tensor> explained;
        for (auto& stream : streams) explained.push_back(stream.explained_variance_ratio());
        const int64_t units = common_units(explained, 0, kOpts);
        const at::Tensor ratio = at::stack(explained).cpu();
        const at::Tensor cumulative = ratio.cumsum(1);
        Table result;
        result["explained"] = ratio;
        result["cumulative"] = cumulative;
        result["n_components"] = llmscope::stats::components_to_reach(cumulative, plan.thresholds);
        result["thresholds"] = List(plan.thresholds.begin(), plan.thresholds.end());
        result["sites"] = site_names(*model, plan.sites);
        result["n_tokens"] = n_tokens;
        result["units"] = units;
        result["max_components"] = std::min(n_tokens - 1, units);
        return result;
      });
}
