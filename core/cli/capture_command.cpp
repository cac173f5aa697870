// llmscope capture: one forward pass, with the requested tensors saved to safetensors under
// Hugging Face-style keys (logits, hidden_states.N, attentions.N, hook.<name>), so results can
// be compared with any other framework.
#include <iostream>

#include "cli_common.hpp"
#include "llmscope/error.hpp"
#include "llmscope/safetensors.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope::cli {

int run_capture(const std::vector<std::string>& args) {
  po::options_description options("capture options");
  add_model_options(options);
  add_text_or_ids_options(options);
  options.add_options()("input", po::value<std::string>(),
                        "safetensors file with input_ids [batch, pos] and optional attention_mask")(
      "hook", po::value<std::vector<std::string>>()->composing(),
      "hook point to save as hook.<name> (repeatable; a glob saves every match)")(
      "hidden-states", po::bool_switch(), "save hidden_states.0 .. hidden_states.n_layer")(
      "attentions", po::bool_switch(), "save attentions.N [batch, head, query, key]")(
      "logits", po::bool_switch(), "save logits")("special", po::bool_switch(),
                                                  "treat special tokens in --text as such")(
      "output,o", po::value<std::string>()->required(), "output .safetensors file");
  po::variables_map vm;
  const char* usage =
      "--model DIR (--text T | --ids 1,2,3 | --input in.safetensors) [--hook NAME]... "
      "[--hidden-states] [--attentions] [--logits] -o out.safetensors";
  if (!parse_args("capture", usage, args, options, vm)) return 0;

  const int sources = static_cast<int>(vm.count("text") + vm.count("ids") + vm.count("input"));
  if (sources != 1) throw UsageError("give exactly one of --text, --ids and --input");
  const auto hooks =
      vm.count("hook") ? vm["hook"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const bool want_hidden = vm["hidden-states"].as<bool>(), want_attn = vm["attentions"].as<bool>(),
             want_logits = vm["logits"].as<bool>();
  if (hooks.empty() && !want_hidden && !want_attn && !want_logits) {
    throw UsageError(
        "nothing to capture: give --logits, --hidden-states, --attentions or --hook NAME");
  }

  auto model = load_model_from(vm);
  ForwardInput input;
  if (vm.count("input")) {
    auto file = SafetensorsFile::open(vm["input"].as<std::string>());
    if (!file.contains("input_ids")) {
      throw_file_error(file.path(), "has no 'input_ids' tensor (expected input_ids [batch, pos])");
    }
    input.input_ids = file.tensor("input_ids");
    if (file.contains("attention_mask")) input.attention_mask = file.tensor("attention_mask");
  } else {
    input.input_ids = input_ids_from(vm, model->tokenizer(), vm["special"].as<bool>());
  }

  // Each --hook is saved under the name it was given; a glob expands to canonical names.
  const auto& table = model->hook_points();
  std::vector<std::pair<std::string, std::string>> saved;  // key name -> name to look up
  ForwardOptions forward;
  for (const auto& name : hooks) {
    if (has_glob_chars(name)) {
      auto ids = table.match(name);
      if (ids.empty()) throw Error("--hook '" + name + "' matches no hook point");
      for (int id : ids) saved.emplace_back(table.at(id).name, table.at(id).name);
    } else {
      table.resolve(name);
      saved.emplace_back(name, name);
    }
    forward.cache.push_back(name);
  }
  forward.output_hidden_states = want_hidden;
  forward.output_attentions = want_attn;

  at::NoGradGuard no_grad;
  auto out = model->forward(input, forward);

  std::vector<std::pair<std::string, at::Tensor>> tensors;
  tensors.emplace_back("input_ids", input.input_ids);
  if (input.attention_mask.defined()) tensors.emplace_back("attention_mask", input.attention_mask);
  if (want_logits) tensors.emplace_back("logits", out.logits);
  for (size_t i = 0; want_hidden && i < out.hidden_states.size(); ++i) {
    tensors.emplace_back("hidden_states." + std::to_string(i), out.hidden_states[i]);
  }
  for (size_t i = 0; want_attn && i < out.attentions.size(); ++i) {
    tensors.emplace_back("attentions." + std::to_string(i), out.attentions[i]);
  }
  for (const auto& [key, name] : saved) tensors.emplace_back("hook." + key, out.cache.get(name));

  const auto path = vm["output"].as<std::string>();
  save_safetensors(path, tensors,
                   {{"model", model->source().string()},
                    {"architecture", model->architecture()},
                    {"dtype", dtype_name(model->dtype())},
                    {"producer", "llmscope capture"}});
  spdlog::info("wrote {} tensors to {}", tensors.size(), path);
  return 0;
}

}  // namespace llmscope::cli
