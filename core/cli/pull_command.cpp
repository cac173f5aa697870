// llmscope pull: download a model from the Hugging Face hub into the shared cache, so that
// `--model NAME` (and Lua's model.load("NAME")) find it.
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "llmscope/error.hpp"
#include "llmscope/hub_pull.hpp"

namespace llmscope::cli {

int run_pull(const std::vector<std::string>& args) {
  po::options_description options("pull options");
  options.add_options()("name", po::value<std::string>()->required(),
                        "NAME[@REVISION]: gpt2, EleutherAI/gpt-neo-125m, bert-base-uncased@main "
                        "(branch, tag or commit)")(
      "cache-dir", po::value<std::string>(),
      "cache folder (default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)")(
      "endpoint", po::value<std::string>(),
      "hub URL (default $HF_ENDPOINT, else https://huggingface.co)")("json", po::bool_switch(),
                                                                     "print JSON instead of text");
  po::positional_options_description positional;
  positional.add("name", 1);
  po::variables_map vm;
  if (!parse_args("pull", "NAME[@REVISION] [--cache-dir DIR] [--endpoint URL] [--json]", args,
                  options, vm, &positional)) {
    return 0;
  }

  hub::ModelRef ref;
  try {
    ref = hub::parse_model_ref(vm["name"].as<std::string>());
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  hub::PullOptions pull_options;
  if (vm.count("cache-dir")) pull_options.cache = vm["cache-dir"].as<std::string>();
  if (vm.count("endpoint")) pull_options.endpoint = vm["endpoint"].as<std::string>();
  pull_options.progress = spdlog::get_level() <= spdlog::level::info;  // -q turns the bar off
  // Ctrl-C or SIGTERM: stop the transfer, keep the partial file for the next pull to resume.
  StopSignals signals;
  pull_options.stop_requested = [] { return StopSignals::received() != 0; };
  hub::PullResult result;
  try {
    result = hub::pull(ref, pull_options);
  } catch (const Error& e) {
    if (StopSignals::received() == 0) throw;
    std::cerr << "llmscope pull: " << e.what() << "\n";
    return 128 + StopSignals::received();
  }

  size_t downloaded = 0;
  for (const auto& file : result.files) downloaded += file.downloaded ? 1 : 0;
  if (vm["json"].as<bool>()) {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& file : result.files) {
      files.push_back({{"name", file.name}, {"size", file.size}, {"downloaded", file.downloaded}});
    }
    nlohmann::json out = {{"repo", ref.repo},        {"revision", ref.revision},
                          {"commit", result.commit}, {"snapshot", result.snapshot.string()},
                          {"files", files},          {"bytes_downloaded", result.bytes_downloaded}};
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  std::cout << ref.str() << " is commit " << result.commit << "\n";
  for (const auto& file : result.files) {
    std::cout << "  " << (file.downloaded ? "downloaded  " : "cached      ") << file.name << " ("
              << file.size << " bytes)\n";
  }
  std::cout << downloaded << " of " << result.files.size() << " files downloaded ("
            << result.bytes_downloaded << " bytes)\n"
            << "snapshot " << result.snapshot.string() << "\n";
  return 0;
}

}  // namespace llmscope::cli
