// llmscope plugins [info NAME]: what plugins the search path holds, their functions and docs,
// and why any plugin file was refused.
#include <iostream>

#include "cli_common.hpp"
#include "llmscope/error.hpp"
#include "llmscope/plugin_host.hpp"

namespace llmscope::cli {
namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

int run_plugins(const std::vector<std::string>& args) {
  po::options_description options("plugins options");
  options.add_options()("plugin-path", po::value<std::vector<std::string>>()->composing(),
                        "extra plugin folder (repeatable)")(
      "action", po::value<std::string>(), "info")("name", po::value<std::string>(),
                                                  "plugin name for `info`");
  po::positional_options_description positional;
  positional.add("action", 1).add("name", 1);
  po::variables_map vm;
  if (!parse_args("plugins", "[info NAME] [--plugin-path DIR]...", args, options, vm, &positional))
    return 0;
  std::vector<std::filesystem::path> extra;
  if (vm.count("plugin-path")) {
    for (const auto& p : vm["plugin-path"].as<std::vector<std::string>>()) extra.emplace_back(p);
  }
  plugin::PluginHost host(extra);

  if (vm.count("action")) {
    if (vm["action"].as<std::string>() != "info")
      throw UsageError("unknown action '" + vm["action"].as<std::string>() + "' (expected info)");
    if (!vm.count("name")) throw UsageError("plugins info needs a plugin name");
    auto loaded = host.load(vm["name"].as<std::string>());
    const auto& info = loaded->info();
    std::cout << info.name << " " << info.version << "  (ABI " << info.abi_major << "."
              << info.abi_minor << ")\n"
              << info.description << "\n"
              << info.path.string() << "\n";
    for (const auto& fn : loaded->module().functions())
      std::cout << "\n" << info.name << "." << fn.doc << "\n";
    return 0;
  }

  auto listings = host.discover();
  if (listings.empty()) {
    std::cout << "no plugins found; searched:\n";
    for (const auto& dir : host.search_path()) std::cout << "  " << dir.string() << "\n";
    return 0;
  }
  int refused = 0;
  for (const auto& listing : listings) {
    if (!listing.plugin) {
      ++refused;
      std::cout << "! " << listing.path.string() << "\n    refused: " << listing.problem << "\n";
      continue;
    }
    const auto& info = listing.plugin->info();
    std::cout << info.name << " " << info.version << "  ABI " << info.abi_major << "."
              << info.abi_minor << "  " << info.path.string() << "\n    " << info.description
              << "\n";
    for (const auto& fn : listing.plugin->module().functions()) {
      std::cout << "    " << first_line(fn.doc) << "\n";
    }
  }
  if (refused) spdlog::warn("{} plugin file(s) refused (see above)", refused);
  return 0;
}

}  // namespace llmscope::cli
