// llmscope run / llmscope repl: Lua scripts, headless or interactive.
#include <algorithm>
#include <ctime>
#include <iomanip>
#include <sstream>

#include "cli_common.hpp"
#include "llmscope/lua/host.hpp"

namespace llmscope::cli {
namespace {

void add_host_options(po::options_description& options) {
  options.add_options()
      ("model,m", po::value<std::string>()->default_value(""), "default model folder for model.load()")
      ("dtype", po::value<std::string>()->default_value("float32"), "float32 | bfloat16 | float16")
      ("device", po::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:N")
      ("plugin-path", po::value<std::vector<std::string>>()->composing(), "extra plugin folder (repeatable)");
}

lua::HostOptions host_options(const po::variables_map& vm) {
  lua::HostOptions options;
  options.model_dir = vm["model"].as<std::string>();
  options.load.dtype = parse_dtype(vm["dtype"].as<std::string>());
  options.load.device = parse_device(vm["device"].as<std::string>());
  options.quiet = spdlog::get_level() >= spdlog::level::err;
  if (vm.count("plugin-path")) {
    for (const auto& p : vm["plugin-path"].as<std::vector<std::string>>()) options.plugin_path.emplace_back(p);
  }
  return options;
}

// out/<script name>/<YYYYmmdd-HHMMSS>/
std::string default_out_dir(const std::filesystem::path& script) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::ostringstream stamp;
  stamp << std::put_time(&local, "%Y%m%d-%H%M%S");
  return (std::filesystem::path("out") / script.stem() / stamp.str()).string();
}

}  // namespace

int run_script(const std::vector<std::string>& all_args) {
  // Everything after "--" belongs to the script.
  std::vector<std::string> args, script_args;
  auto split = std::find(all_args.begin(), all_args.end(), "--");
  args.assign(all_args.begin(), split);
  if (split != all_args.end()) script_args.assign(split + 1, all_args.end());

  po::options_description options("run options");
  add_host_options(options);
  options.add_options()
      ("script", po::value<std::string>()->required(), "the Lua script")
      ("out,o", po::value<std::string>(), "output folder (default out/<script>/<timestamp>/)");
  po::positional_options_description positional;
  positional.add("script", 1);
  po::variables_map vm;
  if (!parse_args("run", "script.lua [--model DIR] [--device D] [--dtype T] [--out DIR] [-- args...]", args,
                  options, vm, &positional)) {
    return 0;
  }
  const std::filesystem::path script = vm["script"].as<std::string>();
  if (!std::filesystem::is_regular_file(script)) throw UsageError(script.string() + ": no such script");
  auto host_opts = host_options(vm);
  host_opts.out_dir = vm.count("out") ? vm["out"].as<std::string>() : default_out_dir(script);
  lua::LuaHost host(std::move(host_opts));
  return host.run_file(script, script_args);
}

int run_repl(const std::vector<std::string>& args) {
  po::options_description options("repl options");
  add_host_options(options);
  po::variables_map vm;
  if (!parse_args("repl", "[--model DIR] [--device D] [--dtype T]", args, options, vm)) return 0;
  auto host_opts = host_options(vm);
  host_opts.out_dir = "out/repl";
  const bool has_model = !host_opts.model_dir.empty();
  lua::LuaHost host(std::move(host_opts));
  if (has_model) host.run_string("m = model.load()", "=repl");  // the REPL's model is `m`
  return host.repl();
}

}  // namespace llmscope::cli
