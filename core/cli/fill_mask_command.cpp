// llmscope fill-mask: the most likely tokens for every [MASK] of a text, for masked language
// models (BERT).
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "llmscope/error.hpp"
#include "llmscope/masked_lm.hpp"

namespace llmscope::cli {

int run_fill_mask(const std::vector<std::string>& args) {
  po::options_description options("fill-mask options");
  add_model_options(options);
  add_text_or_ids_options(options);
  options.add_options()("top-k,k", po::value<int64_t>()->default_value(5),
                        "predictions per [MASK]")(
      "mask-id", po::value<int64_t>(), "the [MASK] token id (default: from the tokenizer)")(
      "json", po::bool_switch(), "print JSON");
  po::variables_map vm;
  if (!parse_args("fill-mask",
                  "--model DIR (--text \"... [MASK] ...\" | --ids 1,2,3) [-k K] [--json]", args,
                  options, vm)) {
    return 0;
  }
  auto model = load_model_from(vm);
  const Tokenizer* tokenizer = model->tokenizer();
  auto ids = input_ids_from(vm, tokenizer, /*allow_special=*/true);
  int64_t mask_id = -1;
  if (vm.count("mask-id")) {
    mask_id = vm["mask-id"].as<int64_t>();
  } else if (tokenizer) {
    mask_id = tokenizer->special_token_id("[MASK]");
  }
  if (mask_id < 0)
    throw Error("no [MASK] token id: the model has no tokenizer with [MASK]; pass --mask-id");
  auto predictions = predict_masks(*model, ids, mask_id, vm["top-k"].as<int64_t>());

  auto token = [&](int64_t id) {
    return tokenizer ? tokenizer->token_text(id) : std::to_string(id);
  };
  if (vm["json"].as<bool>()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : predictions) {
      nlohmann::json tokens = nlohmann::json::array();
      for (size_t i = 0; i < p.ids.size(); ++i) {
        tokens.push_back(
            {{"id", p.ids[i]}, {"token", token(p.ids[i])}, {"probability", p.probabilities[i]}});
      }
      out.push_back({{"position", p.position}, {"predictions", tokens}});
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  for (const auto& p : predictions) {
    std::cout << "[MASK] at position " << p.position << ":\n";
    for (size_t i = 0; i < p.ids.size(); ++i) {
      std::cout << "  " << std::left << std::setw(16) << token(p.ids[i]) << std::right << std::fixed
                << std::setprecision(4) << p.probabilities[i] << "\n";
    }
  }
  return 0;
}

}  // namespace llmscope::cli
