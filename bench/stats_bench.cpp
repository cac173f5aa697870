// llmscope_stats_bench: the batched statistics at probing-study sizes. Per-neuron logistic
// regression (y ~ 1 + x_n) and Welch t-tests for 5120 neurons x 400 samples, for one layer and
// for 36 layers, timed with std::chrono (best of --repeats runs for one layer).
//
// usage: llmscope_stats_bench [--neurons N] [--samples S] [--layers L] [--repeats R] [--threads T]
//                             [--json]   (--json: one layer's cases as JSON, for scripts/bench)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include "llmscope/process_tuning.hpp"
#include "llmscope/stats.hpp"
#include "llmscope/streaming.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_of(const std::function<void()>& fn) {
  auto start = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double best_of(int repeats, const std::function<void()>& fn) {
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < repeats; ++i) best = std::min(best, seconds_of(fn));
  return best;
}

void row(const char* what, int64_t layers, int64_t neurons, double seconds) {
  std::printf("| %-40s | %6lld | %10.3f | %12.4f |\n", what, static_cast<long long>(layers),
              seconds, 1e3 * seconds / static_cast<double>(layers * neurons));
}

}  // namespace

int main(int argc, char** argv) {
  llmscope::tune_process();
  int64_t neurons = 5120, samples = 400, layers = 36;
  int repeats = 3;
  bool json = false;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--json") {
      json = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", argv[i]);
      return 2;
    }
    const int64_t value = std::atoll(argv[i + 1]);
    if (flag == "--neurons")
      neurons = value;
    else if (flag == "--samples")
      samples = value;
    else if (flag == "--layers")
      layers = value;
    else if (flag == "--repeats")
      repeats = static_cast<int>(value);
    else if (flag == "--threads")
      at::set_num_threads(static_cast<int>(value));
    else {
      std::fprintf(stderr,
                   "unknown option %s\nusage: %s [--neurons N] [--samples S] [--layers L] "
                   "[--repeats R] [--threads T] [--json]\n",
                   argv[i], argv[0]);
      return 2;
    }
  }
  at::manual_seed(0);
  // Activations as a probe sees them: float32, half the samples shifted for class 1.
  at::Tensor y = at::cat({at::zeros({samples / 2}), at::ones({samples - samples / 2})});  // [s]
  auto layer = [&](int64_t l) {
    at::Tensor shift = at::linspace(-1.0, 1.0, neurons).roll(l);    // [n]
    return at::randn({samples, neurons}) + y.unsqueeze(1) * shift;  // [s, n]
  };
  at::Tensor x = layer(0);
  int64_t iterations = 0;
  if (json) {
    double logit = best_of(repeats, [&] {
      iterations = llmscope::stats::logit(x, y).iterations.max().item<int64_t>();
    });
    const at::Tensor a = x.slice(0, 0, samples / 2), b = x.slice(0, samples / 2);
    double welch = best_of(repeats, [&] { llmscope::stats::ttest_ind(a, b, false); });
    double student = best_of(repeats, [&] { llmscope::stats::ttest_ind(a, b, true); });
    const double per = 1e3 / static_cast<double>(neurons);
    std::printf(
        "{\"neurons\": %lld, \"samples\": %lld, \"threads\": %d, \"logit_ms_per_neuron\": %.6g, "
        "\"logit_newton_steps\": %lld, \"welch_ms_per_neuron\": %.6g, "
        "\"student_ms_per_neuron\": %.6g}\n",
        static_cast<long long>(neurons), static_cast<long long>(samples), at::get_num_threads(),
        logit * per, static_cast<long long>(iterations), welch * per, student * per);
    return 0;
  }

  std::printf("llmscope_stats_bench: %lld neurons x %lld samples, %lld layers, %d threads\n\n",
              static_cast<long long>(neurons), static_cast<long long>(samples),
              static_cast<long long>(layers), at::get_num_threads());
  std::printf("| %-40s | %6s | %10s | %12s |\n", "case", "layers", "seconds", "ms / neuron");
  std::printf("|%s|%s|%s|%s|\n", std::string(42, '-').c_str(), std::string(8, '-').c_str(),
              std::string(12, '-').c_str(), std::string(14, '-').c_str());

  double logit_one = best_of(repeats, [&] {
    auto r = llmscope::stats::logit(x, y);
    iterations = r.iterations.max().item<int64_t>();
  });
  row("logit (Newton per neuron), one layer", 1, neurons, logit_one);
  double logit_all = seconds_of([&] {
    for (int64_t l = 0; l < layers; ++l) llmscope::stats::logit(layer(l), y);
  });
  double make_all = seconds_of([&] {
    for (int64_t l = 0; l < layers; ++l) layer(l);
  });
  row("logit, all layers (data made in loop)", layers, neurons, logit_all);
  row("  of which making the random data", layers, neurons, make_all);

  at::Tensor a = x.slice(0, 0, samples / 2), b = x.slice(0, samples / 2);
  double welch_one = best_of(repeats, [&] { llmscope::stats::ttest_ind(a, b, false); });
  row("Welch t-test, one layer", 1, neurons, welch_one);
  double student_one = best_of(repeats, [&] { llmscope::stats::ttest_ind(a, b, true); });
  row("Student t-test, one layer", 1, neurons, student_one);
  double welch_all = seconds_of([&] {
    for (int64_t l = 0; l < layers; ++l) {
      at::Tensor xl = layer(l);
      llmscope::stats::ttest_ind(xl.slice(0, 0, samples / 2), xl.slice(0, samples / 2), false);
    }
  });
  row("Welch t-test, all layers (data in loop)", layers, neurons, welch_all);
  double running = best_of(repeats, [&] {
    llmscope::stats::RunningStats r(2);
    for (int64_t start = 0; start < samples; start += 50) {
      at::Tensor chunk = x.slice(0, start, start + 50);
      r.add(chunk, y.slice(0, start, start + 50).to(at::kLong));
    }
    r.ttest_ind(0, 1, false);
  });
  row("streaming Welch (8 batches), one layer", 1, neurons, running);

  std::printf("\nlogit Newton steps (most for any neuron): %lld\n",
              static_cast<long long>(iterations));
  std::printf("statsmodels and scipy beside these, in one run: scripts/bench\n");
  return 0;
}
