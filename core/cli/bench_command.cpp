// llmscope bench: forward throughput with no hooks, with Lua observer hooks and with native
// (C++) observer hooks on the same sites — the cost of the Lua bridge per hooked site.
#include <chrono>
#include <functional>
#include <limits>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "llmscope/error.hpp"
#include "llmscope/lua/host.hpp"

namespace llmscope::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The first `count` of blocks.L.{hook_resid_pre, mlp.hook_pre, mlp.hook_post, hook_resid_post}.
std::vector<std::string> observed_sites(const Model& model, int count) {
  std::vector<std::string> sites;
  for (int64_t layer = 0; layer < model.n_layer() && static_cast<int>(sites.size()) < count; ++layer) {
    for (const char* suffix : {".hook_resid_pre", ".mlp.hook_pre", ".mlp.hook_post", ".hook_resid_post"}) {
      if (static_cast<int>(sites.size()) < count) sites.push_back("blocks." + std::to_string(layer) + suffix);
    }
  }
  return sites;
}

}  // namespace

int run_bench(const std::vector<std::string>& args) {
  po::options_description options("bench options");
  add_model_options(options);
  options.add_options()
      ("batch", po::value<int64_t>()->default_value(8), "prompts per forward pass")
      ("tokens", po::value<int64_t>()->default_value(64), "tokens per prompt")
      ("iterations", po::value<int>()->default_value(50), "timed forward passes per round (3 rounds per case)")
      ("hooks", po::value<int>()->default_value(12), "hooked sites in the hooked cases")
      ("json", po::bool_switch(), "print JSON");
  po::variables_map vm;
  if (!parse_args("bench", "--model DIR [--batch B] [--tokens T] [--iterations N] [--hooks H]", args, options, vm)) {
    return 0;
  }
  const int64_t batch = vm["batch"].as<int64_t>(), tokens = vm["tokens"].as<int64_t>();
  const int iterations = vm["iterations"].as<int>(), hook_count = vm["hooks"].as<int>();
  if (batch < 1 || tokens < 1 || iterations < 1 || hook_count < 0) throw UsageError("sizes must be positive");

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

  // Each case runs `rounds` times and keeps its fastest round, so one noisy round (another
  // process, a frequency change) does not decide the comparison.
  const int rounds = 3;
  auto best_of = [&](const std::function<void()>& pass) {
    pass();  // warm-up
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < rounds; ++r) {
      auto start = Clock::now();
      for (int i = 0; i < iterations; ++i) pass();
      best = std::min(best, seconds_since(start) / iterations);
    }
    return best;
  };
  auto time_native = [&](const std::vector<NamedHook>& hooks) {
    ForwardOptions forward;
    forward.hooks = hooks;
    return best_of([&] { model->forward(ForwardInput{ids, {}, {}}, forward); });
  };
  const double plain = time_native({});
  int64_t observed = 0;
  std::vector<NamedHook> native;
  for (const auto& site : sites) {
    native.push_back({site, [&observed](const at::Tensor& act, const HookContext&) {
                        observed += act.size(0);  // touch the activation, as an observer would
                        return at::Tensor();
                      }});
  }
  const double with_native = time_native(native);

  // The same observers in Lua, registered and driven from a script in the host.
  lua::LuaHost host(host_options);
  std::string setup = "bench_model = model.load()\nbench_calls = 0\n";
  for (const auto& site : sites) {
    setup += "bench_model:hook('" + site + "', function(act) bench_calls = bench_calls + act:size(0) end)\n";
  }
  host.run_string(setup, "=bench");
  host.set_global("bench_ids", ids);
  const std::string lua_pass = "tensor.no_grad(function() bench_model:forward(bench_ids) end)";
  const double with_lua = best_of([&] { host.run_string(lua_pass, "=bench"); });
  const double token_count = static_cast<double>(batch * tokens);
  auto per_hook_us = [&](double t) { return sites.empty() ? 0.0 : (t - plain) / static_cast<double>(sites.size()) * 1e6; };
  if (vm["json"].as<bool>()) {
    nlohmann::json out = {{"model", model->source().string()}, {"batch", batch}, {"tokens", tokens},
                          {"iterations", iterations}, {"hooked_sites", sites.size()},
                          {"no_hooks_tokens_per_s", token_count / plain},
                          {"native_hooks_tokens_per_s", token_count / with_native},
                          {"lua_hooks_tokens_per_s", token_count / with_lua},
                          {"native_us_per_hook_call", per_hook_us(with_native)},
                          {"lua_us_per_hook_call", per_hook_us(with_lua)}};
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  std::cout << "forward throughput, " << model->architecture() << " (" << model->n_layer() << " layers, d_model "
            << model->d_model() << "), batch " << batch << " x " << tokens << " tokens, " << iterations
            << " passes, " << dtype_name(model->dtype()) << " on " << model->device().str() << "\n";
  auto row = [&](const std::string& name, double t, bool hooked) {
    std::cout << "  " << std::left << std::setw(28) << name << std::right << std::setw(12) << std::fixed
              << std::setprecision(0) << token_count / t << " tokens/s  " << std::setw(9) << std::setprecision(3)
              << t * 1e3 << " ms/pass";
    if (hooked) std::cout << "  (+" << std::setprecision(1) << per_hook_us(t) << " us per hooked site)";
    std::cout << "\n";
  };
  row("no hooks", plain, false);
  row(std::to_string(sites.size()) + " native observer hooks", with_native, true);
  row(std::to_string(sites.size()) + " Lua observer hooks", with_lua, true);
  return 0;
}

}  // namespace llmscope::cli
