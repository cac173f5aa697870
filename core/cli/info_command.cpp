// llmscope info: what a model is, how big, and where it can be hooked.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope::cli {

int run_info(const std::vector<std::string>& args) {
  po::options_description options("info options");
  add_model_options(options);
  options.add_options()(
      "hooks", po::value<std::string>()->implicit_value("*"),
      "list hook points, optionally only those matching a glob: --hooks 'blocks.*.mlp.*'")(
      "json", po::bool_switch(), "print JSON instead of text");
  po::variables_map vm;
  if (!parse_args("info", "--model DIR [--hooks [PATTERN]] [--json]", args, options, vm)) return 0;

  auto model = load_model_from(vm);
  const auto& table = model->hook_points();
  std::vector<const HookPoint*> listed;
  if (vm.count("hooks")) {
    const auto pattern = vm["hooks"].as<std::string>();
    for (int id : table.match(pattern)) listed.push_back(&table.at(id));
    if (listed.empty()) spdlog::warn("no hook point matches '{}'", pattern);
  }

  const Tokenizer* tokenizer = model->tokenizer();
  const int64_t peak = peak_resident_bytes(), on_disk = weights_on_disk(model->source());
  if (vm["json"].as<bool>()) {
    nlohmann::json out = {
        {"architecture", model->architecture()},
        {"source", model->source().string()},
        {"n_layer", model->n_layer()},
        {"d_model", model->d_model()},
        {"vocab_size", model->vocab_size()},
        {"max_positions", model->max_positions()},
        {"parameters", model->num_parameters()},
        {"dtype", dtype_name(model->dtype())},
        {"device", model->device().str()},
        {"hook_points", table.size()},
        {"weights_on_disk_bytes", on_disk},
        {"peak_resident_bytes", peak},
        {"tokenizer", tokenizer ? nlohmann::json{{"kind", tokenizer->kind()},
                                                 {"vocab_size", tokenizer->vocab_size()}}
                                : nlohmann::json()}};
    if (vm.count("hooks")) {
      auto& hooks = out["hooks"] = nlohmann::json::array();
      for (const auto* p : listed) {
        hooks.push_back(
            {{"name", p->name}, {"aliases", p->aliases}, {"layer", p->layer}, {"shape", p->shape}});
      }
    }
    std::cout << out.dump(1) << "\n";
    return 0;
  }

  std::cout << "architecture   " << model->architecture() << "\n"
            << "source         " << model->source().string() << "\n"
            << "layers         " << model->n_layer() << "\n"
            << "d_model        " << model->d_model() << "\n"
            << "vocab_size     " << model->vocab_size() << "\n"
            << "max_positions  " << model->max_positions() << "\n"
            << "parameters     " << model->num_parameters() << "\n"
            << "dtype          " << dtype_name(model->dtype()) << "\n"
            << "device         " << model->device().str() << "\n"
            << "tokenizer      "
            << (tokenizer ? tokenizer->kind() + " (" + std::to_string(tokenizer->vocab_size()) +
                                " tokens)"
                          : std::string("none in the model folder"))
            << "\n"
            << "hook points    " << table.size() << " (`--hooks` lists them)\n"
            << "memory         " << mebibytes(peak) << " peak resident after loading, "
            << mebibytes(on_disk) << " of safetensors on disk\n";
  if (!listed.empty()) {
    std::cout << "\n";
    for (const auto* p : listed) {
      std::cout << p->name;
      for (const auto& alias : p->aliases) std::cout << " = " << alias;
      std::cout << "  " << p->shape << "\n";
    }
  }
  return 0;
}

}  // namespace llmscope::cli
