// llmscope run / llmscope repl: Lua scripts, headless or interactive.
#include <algorithm>

#include "cli_common.hpp"
#include "llmscope/lua/host.hpp"

namespace llmscope::cli {

int run_script(const std::vector<std::string>& all_args) {
  // Not a structured binding: the job's lambda captures script_args, which C++17 forbids for one.
  auto split = split_script_args(all_args);
  const std::vector<std::string>& args = split.first;
  std::vector<std::string>& script_args = split.second;

  po::options_description options("run options");
  add_host_options(options);
  add_job_options(options);
  options.add_options()("script", po::value<std::string>()->required(), "the Lua script")(
      "out,o", po::value<std::string>(), "output folder (default out/<script>/<timestamp>/)");
  po::positional_options_description positional;
  positional.add("script", 1);
  po::variables_map vm;
  if (!parse_args("run",
                  "script.lua [--model DIR] [--device D] [--dtype T] [--out DIR] [-- args...]",
                  args, options, vm, &positional)) {
    return 0;
  }
  const std::filesystem::path script = vm["script"].as<std::string>();
  if (!std::filesystem::is_regular_file(script))
    throw UsageError(script.string() + ": no such script");
  auto host_opts = host_options(vm);
  host_opts.out_dir = vm.count("out") ? std::filesystem::path(vm["out"].as<std::string>())
                                      : timestamped_out_dir(script.stem());
  std::vector<std::string> command = {"run"};
  command.insert(command.end(), all_args.begin(), all_args.end());
  return run_as_job(vm, command, std::move(host_opts), [&](lua::HostOptions job_opts) {
    lua::LuaHost host(std::move(job_opts));
    return host.run_file(script, script_args);
  });
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
