// llmscope generate: continue a prompt, greedy by default or sampled.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"

namespace llmscope::cli {

int run_generate(const std::vector<std::string>& args) {
  po::options_description options("generate options");
  add_model_options(options);
  add_text_or_ids_options(options);
  options.add_options()("max-new-tokens,n", po::value<int64_t>()->default_value(20),
                        "tokens to generate")(
      "greedy", po::bool_switch(),
      "argmax decoding (the default unless --temperature/--top-k/--top-p is given)")(
      "temperature", po::value<double>(), "sample with this temperature (> 0)")(
      "top-k", po::value<int64_t>(), "sample among the k most likely tokens")(
      "top-p", po::value<double>(),
      "sample from the smallest set of tokens with this much probability")(
      "seed", po::value<uint64_t>(), "random seed for sampling")(
      "eos", po::value<int64_t>(),
      "stop at this token id (default: the model's eos; -1 never stops)")(
      "special", po::bool_switch(), "treat special tokens in --text as such")(
      "no-cache", po::bool_switch(),
      "recompute every position at every step (no key/value cache; slower, same greedy ids)")(
      "json", po::bool_switch(), "print {\"ids\", \"new_ids\", \"text\"} as JSON");
  po::variables_map vm;
  if (!parse_args("generate",
                  "--model DIR (--text T | --ids 1,2,3) [-n N] [--greedy | --temperature T "
                  "[--top-k K] [--top-p P] [--seed S]]",
                  args, options, vm)) {
    return 0;
  }
  GenerationOptions generation;
  generation.max_new_tokens = vm["max-new-tokens"].as<int64_t>();
  const bool sampling = vm.count("temperature") || vm.count("top-k") || vm.count("top-p");
  if (sampling && vm["greedy"].as<bool>()) {
    throw UsageError("--greedy cannot be combined with --temperature, --top-k or --top-p");
  }
  generation.greedy = !sampling;
  if (vm.count("temperature")) generation.temperature = vm["temperature"].as<double>();
  if (vm.count("top-k")) generation.top_k = vm["top-k"].as<int64_t>();
  if (vm.count("top-p")) generation.top_p = vm["top-p"].as<double>();
  if (vm.count("seed")) generation.seed = vm["seed"].as<uint64_t>();
  if (vm.count("eos")) generation.eos_token_id = vm["eos"].as<int64_t>();
  generation.use_cache = !vm["no-cache"].as<bool>();

  auto model = load_model_from(vm);
  auto prompt = input_ids_from(vm, model->tokenizer(), vm["special"].as<bool>());
  auto ids = generate(*model, GenerationInput{prompt, {}}, generation).to(at::kCPU);
  std::vector<int64_t> all(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  std::vector<int64_t> fresh(all.begin() + prompt.size(1), all.end());

  const Tokenizer* tokenizer = model->tokenizer();
  if (vm["json"].as<bool>()) {
    nlohmann::json out = {{"ids", all}, {"new_ids", fresh}};
    if (tokenizer) out["text"] = tokenizer->decode(all);
    std::cout << out.dump() << "\n";
  } else if (tokenizer) {
    std::cout << tokenizer->decode(all) << "\n";
  } else {
    std::cout << nlohmann::json(all).dump() << "\n";
  }
  return 0;
}

}  // namespace llmscope::cli
