// llmscope bench: forward throughput with no hooks, with Lua observer hooks and with native
// (C++) observer hooks on the same sites — the cost of the Lua bridge per hooked site —, greedy
// generation with and without the key/value cache, and the machine's sgemm roofline in the same
// rounds as the passes.
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"
#include "llmscope/lua/host.hpp"
#include "llmscope/matmul.hpp"

namespace llmscope::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The first `count` of blocks.L.{hook_resid_pre, mlp.hook_pre, mlp.hook_post, hook_resid_post}.
std::vector<std::string> observed_sites(const Model& model, int count) {
  std::vector<std::string> sites;
  for (int64_t layer = 0; layer < model.n_layer() && static_cast<int>(sites.size()) < count;
       ++layer) {
    for (const char* suffix :
         {".hook_resid_pre", ".mlp.hook_pre", ".mlp.hook_post", ".hook_resid_post"}) {
      if (static_cast<int>(sites.size()) < count)
        sites.push_back("blocks." + std::to_string(layer) + suffix);
    }
  }
  return sites;
}

}  // namespace

int run_bench(const std::vector<std::string>& args) {
  po::options_description options("bench options");
  add_model_options(options);
  options.add_options()("batch", po::value<int64_t>()->default_value(8),
                        "prompts per forward pass")(
      "tokens", po::value<int64_t>()->default_value(64), "tokens per prompt")(
      "iterations", po::value<int>()->default_value(50),
      "forward passes per case in each of 5 rounds, the cases taking turns pass by pass")(
      "hooks", po::value<int>()->default_value(12), "hooked sites in the hooked cases")(
      "new-tokens", po::value<int64_t>()->default_value(32),
      "tokens generated after each prompt in the generation cases (0: skip them)")(
      "roofline", po::value<int64_t>()->default_value(2048),
      "size of the square float32 products timing the sgemm roofline (0: skip it)")(
      "threads", po::value<int>()->default_value(0),
      "ATen intra-op threads (0: one per available core, or OMP_NUM_THREADS)")(
      "json", po::bool_switch(), "print JSON");
  po::variables_map vm;
  if (!parse_args("bench", "--model DIR [--batch B] [--tokens T] [--iterations N] [--hooks H]",
                  args, options, vm)) {
    return 0;
  }
  const int64_t batch = vm["batch"].as<int64_t>(), tokens = vm["tokens"].as<int64_t>();
  const int iterations = vm["iterations"].as<int>(), hook_count = vm["hooks"].as<int>();
  if (batch < 1 || tokens < 1 || iterations < 1 || hook_count < 0)
    throw UsageError("sizes must be positive");
  const int64_t new_tokens = vm["new-tokens"].as<int64_t>();
  if (new_tokens < 0) throw UsageError("--new-tokens must be >= 0");
  const int64_t roofline_n = vm["roofline"].as<int64_t>();
  if (roofline_n < 0) throw UsageError("--roofline must be >= 0");
  const int threads = vm["threads"].as<int>();
  if (threads < 0) throw UsageError("--threads must be >= 0");
  if (threads > 0) at::set_num_threads(threads);

  lua::HostOptions host_options;
  host_options.model_dir = vm["model"].as<std::string>();
  host_options.load.dtype = parse_dtype(vm["dtype"].as<std::string>());
  host_options.load.device = parse_device(vm["device"].as<std::string>());
  host_options.quiet = true;
  auto model = load_model(host_options.model_dir, host_options.load);
  if (tokens > model->max_positions()) throw UsageError("--tokens exceeds the model's positions");
  const auto sites = observed_sites(*model, hook_count);
  const auto ids = at::randint(model->vocab_size(), {batch, tokens}, at::kLong);
  at::NoGradGuard no_grad;

  const double token_count = static_cast<double>(batch * tokens);
  std::vector<NamedHook> native;
  int64_t observed = 0;
  for (const auto& site : sites) {
    native.push_back({site, [&observed](const at::Tensor& act, const HookContext&) {
                        observed += act.size(0);  // touch the activation, as an observer would
                        return at::Tensor();
                      }});
  }
  ForwardOptions plain_options, native_options, together_options;
  native_options.hooks = native;
  together_options.batch_invariant = false;

  // The same observers in Lua, on a second copy of the model driven from a script.
  lua::LuaHost host(host_options);
  std::string setup = "hooked = model.load()\nplain = model.load()\ncalls = 0\n";
  for (const auto& site : sites) {
    setup += "hooked:hook('" + site + "', function(act) calls = calls + act:size(0) end)\n";
  }
  host.run_string(setup, "=bench");
  host.set_global("bench_ids", ids);

  struct Case {
    std::string name;
    std::function<void()> pass;
    int baseline;  // index of the case it is compared with, or -1
    bool hooked;   // compared per hooked site (else as a share of the baseline's time)
    double best = std::numeric_limits<double>::infinity();
    std::vector<double> passes{};  // every timed pass, in turn with the other cases' passes
  };
  std::vector<Case> cases = {
      {"no hooks (C++)",
       [&] {
         model->forward(ForwardInput{ids, {}, {}, {}}, plain_options);
       },
       -1, false},
      {std::to_string(sites.size()) + " native observer hooks",
       [&] {
         model->forward(ForwardInput{ids, {}, {}, {}}, native_options);
       },
       0, true},
      {"no hooks (driven from Lua)", [&] { host.run_string("plain:forward(bench_ids)", "=bench"); },
       -1, false},
      {std::to_string(sites.size()) + " Lua observer hooks",
       [&] { host.run_string("hooked:forward(bench_ids)", "=bench"); }, 2, true},
      // What keeping each prompt's rows apart costs where the BLAS needs it (batch_invariant).
      {"no hooks, prompts multiplied together (batch_invariant = false)",
       [&] {
         model->forward(ForwardInput{ids, {}, {}, {}}, together_options);
       },
       0, false},
  };
  // The machine's sgemm roofline for a CPU pass: a float32 N^3 product (N = --roofline, 2048 by
  // default) by the BLAS (at::mm, on its own threads) and, where llmscope's kernel makes the
  // products, by llmscope::matmul; the faster is the roofline. It is timed in turn with the passes,
  // so that a clock or a neighbour that changes during the run moves both alike.
  struct Roofline {
    std::string name;
    std::function<void()> product;
    double best = std::numeric_limits<double>::infinity();
  };
  std::vector<Roofline> rooflines;
  at::Tensor square_a, square_b;
  const std::string float32_products =
      model->device().is_cpu() ? cpu_float32_products() : "the device's BLAS";
  if (model->device().is_cpu() && roofline_n > 0) {
    square_a = at::randn({roofline_n, roofline_n});
    square_b = at::randn({roofline_n, roofline_n});
    // ATen at one thread meanwhile, as the BLAS runs fastest (its own threads on every core;
    // with ATen's pool at two threads, OpenBLAS's 2048^3 ran at 135-155 against 168-172 GFLOP/s).
    rooflines.push_back({"the BLAS (at::mm)", [&] {
                           const int threads = at::get_num_threads();
                           at::set_num_threads(1);
                           at::mm(square_a, square_b);
                           at::set_num_threads(threads);
                         }});
    if (float32_products != "the BLAS") {
      rooflines.push_back({float32_products, [&] { llmscope::matmul(square_a, square_b); }});
    }
  }
  // The cases take turns pass by pass and each keeps its fastest pass, so warm-up, a noisy
  // neighbour or a frequency change cannot favour one case: on a shared machine whose speed
  // drifts by a tenth within seconds, cases timed a few passes each in turn differed by as much
  // as what a dozen hooks cost.
  const int rounds = 5;
  const int roofline_every = std::max(1, iterations / 3);  // at most 3 roofline products a round
  int roofline_count = 0;
  for (auto& c : cases) c.pass();  // warm-up
  for (auto& r : rooflines) r.product();
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < iterations; ++i) {
      for (auto& c : cases) {
        auto start = Clock::now();
        c.pass();
        c.passes.push_back(seconds_since(start));
        c.best = std::min(c.best, c.passes.back());
      }
      if ((i + 1) % roofline_every != 0) continue;
      for (auto& roof : rooflines) {
        auto start = Clock::now();
        roof.product();
        roof.best = std::min(roof.best, seconds_since(start));
      }
      ++roofline_count;
    }
  }
  const double roofline_flops = 2.0 * static_cast<double>(roofline_n * roofline_n * roofline_n);
  double roofline_gflops = 0;
  for (const auto& r : rooflines)
    roofline_gflops = std::max(roofline_gflops, roofline_flops / r.best / 1e9);
  // Greedy generation of `new_tokens` after each prompt: each step recomputing the whole
  // sequence, and with the key/value cache (one position per step). Best of 3 each.
  struct GenerationCase {
    std::string name;
    bool cached;
    double best = std::numeric_limits<double>::infinity();
  };
  std::vector<GenerationCase> generation_cases;
  const int64_t generated = std::min(new_tokens, model->max_positions() - tokens);
  if (generated > 0 && model->is_causal()) {
    generation_cases = {{"generate, recomputing", false}, {"generate, key/value cache", true}};
    GenerationOptions greedy;
    greedy.max_new_tokens = generated;
    greedy.eos_token_id = -1;
    for (int r = 0; r < 3; ++r) {
      for (auto& g : generation_cases) {
        greedy.use_cache = g.cached;
        auto start = Clock::now();
        generate(*model, GenerationInput{ids, {}}, greedy);
        g.best = std::min(g.best, seconds_since(start));
      }
    }
  }
  const double generated_count = static_cast<double>(batch * generated);

  // A case's cost over its baseline: the median of its passes' times over the baseline's passes
  // taken in the same turn, so that a pair shares the machine's speed of the moment.
  auto cost = [&](const Case& c) {
    if (c.baseline < 0) return 0.0;
    const auto& base = cases[static_cast<size_t>(c.baseline)].passes;
    std::vector<double> ratios;
    for (size_t i = 0; i < c.passes.size(); ++i) ratios.push_back(c.passes[i] / base[i]);
    std::nth_element(ratios.begin(), ratios.begin() + ratios.size() / 2, ratios.end());
    return ratios[ratios.size() / 2] - 1;
  };
  auto per_hook_us = [&](const Case& c) {
    if (c.baseline < 0 || !c.hooked || sites.empty()) return 0.0;
    return cost(c) * cases[static_cast<size_t>(c.baseline)].best /
           static_cast<double>(sites.size()) * 1e6;
  };
  if (vm["json"].as<bool>()) {
    nlohmann::json out = {{"model", model->source().string()},
                          {"batch", batch},
                          {"tokens", tokens},
                          {"iterations", iterations},
                          {"rounds", rounds},
                          {"hooked_sites", sites.size()},
                          {"threads", at::get_num_threads()},
                          {"float32_products", float32_products},
                          {"peak_resident_bytes", peak_resident_bytes()},
                          {"cases", nlohmann::json::array()}};
    if (!rooflines.empty()) {
      nlohmann::json products = nlohmann::json::array();
      for (const auto& r : rooflines) {
        products.push_back({{"name", r.name}, {"gflops", roofline_flops / r.best / 1e9}});
      }
      out["sgemm_roofline"] = {{"n", roofline_n},
                               {"gflops", roofline_gflops},
                               {"timed", roofline_count},
                               {"products", products}};
    }
    for (const auto& c : cases) {
      out["cases"].push_back({{"name", c.name},
                              {"ms_per_pass", c.best * 1e3},
                              {"tokens_per_s", token_count / c.best},
                              {"us_per_hooked_site", per_hook_us(c)},
                              {"cost_over_baseline", cost(c)}});
    }
    for (const auto& g : generation_cases) {
      out["generation"].push_back({{"name", g.name},
                                   {"cached", g.cached},
                                   {"prompt_tokens", tokens},
                                   {"new_tokens", generated},
                                   {"seconds", g.best},
                                   {"new_tokens_per_s", generated_count / g.best}});
    }
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  std::cout << "forward throughput, " << model->architecture() << " (" << model->n_layer()
            << " layers, d_model " << model->d_model() << "), batch " << batch << " x " << tokens
            << " tokens, the fastest of " << rounds * iterations
            << " passes taken in turn with the other cases, " << dtype_name(model->dtype())
            << " on " << model->device().str() << ", " << at::get_num_threads()
            << " threads; float32 products by " << float32_products << "\n";
  for (const auto& c : cases) {
    std::cout << "  " << std::left << std::setw(28) << c.name << std::right << std::setw(12)
              << std::fixed << std::setprecision(0) << token_count / c.best << " tokens/s  "
              << std::setw(9) << std::setprecision(3) << c.best * 1e3 << " ms/pass";
    if (c.baseline >= 0 && c.hooked) {
      std::cout << "  (" << std::showpos << std::setprecision(1) << per_hook_us(c)
                << " us per hooked site, " << cost(c) * 100 << std::noshowpos << "% time)";
    } else if (c.baseline >= 0) {
      std::cout << "  (" << std::showpos << std::setprecision(1) << cost(c) * 100 << std::noshowpos
                << "% time)";
    }
    std::cout << "\n";
  }
  if (!generation_cases.empty()) {
    std::cout << "greedy generation, batch " << batch << ", " << tokens << "-token prompts + "
              << generated << " new tokens, best of 3\n";
    for (const auto& g : generation_cases) {
      std::cout << "  " << std::left << std::setw(28) << g.name << std::right << std::setw(12)
                << std::fixed << std::setprecision(0) << generated_count / g.best
                << " new tokens/s  " << std::setw(9) << std::setprecision(3) << g.best * 1e3
                << " ms\n";
    }
    std::cout << "  cache speed-up: " << std::setprecision(2)
              << generation_cases[0].best / generation_cases[1].best << "x\n";
  }
  if (!rooflines.empty()) {
    std::cout << "sgemm roofline, float32 " << roofline_n << "^3, fastest of " << roofline_count
              << " taken in turn with the passes: " << std::setprecision(0);
    for (size_t i = 0; i < rooflines.size(); ++i) {
      std::cout << (i ? ", " : "") << rooflines[i].name << " "
                << roofline_flops / rooflines[i].best / 1e9 << " GFLOP/s";
    }
    std::cout << "\n";
  }
  std::cout << "peak resident memory " << mebibytes(peak_resident_bytes()) << " (weights on disk "
            << mebibytes(weights_on_disk(model->source())) << ")\n";
  return 0;
}

}  // namespace llmscope::cli
