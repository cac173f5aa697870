// Fuzz targets for the files a checkpoint folder holds: a safetensors file, a sharded index with
// its shard, and config.json paired with a real tiny model's weights.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "fuzz_targets.hpp"
#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::fuzz {

namespace fs = std::filesystem;

namespace {

// Every tensor as stored and converted, and touched, so a bad offset reads out of the mapping.
void read_every_tensor(const SafetensorsFile& file) {
  for (const auto& entry : file.entries()) {
    const at::Tensor stored = file.tensor(entry.name);
    const at::Tensor converted = file.load(entry.name, at::kFloat);
    if (converted.numel() > 0) (void)converted.sum().item<float>();
    (void)stored.numel();
  }
}

}  // namespace

int fuzz_safetensors(const uint8_t* data, size_t size) {
  const fs::path dir = fresh_scratch("safetensors");
  write_bytes(dir / "model.safetensors",
              std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    read_every_tensor(SafetensorsFile::open(dir / "model.safetensors"));
  } catch (const Error&) {
  }
  return 0;
}

// Parts: model.safetensors.index.json, then the shard it may name, shard.safetensors.
int fuzz_safetensors_index(const uint8_t* data, size_t size) {
  const auto parts = split_parts(data, size, 2);
  const fs::path dir = fresh_scratch("safetensors_index");
  write_bytes(dir / "model.safetensors.index.json", parts[0]);
  write_bytes(dir / "shard.safetensors", parts[1]);
  try {
    const SafetensorsSet set = SafetensorsSet::open_index(dir / "model.safetensors.index.json");
    for (const auto& entry : set.entries()) {
      const at::Tensor t = set.load(entry.name, at::kFloat);
      if (t.numel() > 0) (void)t.sum().item<float>();
    }
  } catch (const Error&) {
  }
  return 0;
}

// config.json beside the weights of the golden tiny model of its model_type (GPT-2's when it
// names none we have): loading checks the config against real tensors, then one short pass.
int fuzz_config(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string weights = "gpt2-tiny";
  const auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_object() && parsed.contains("model_type") && parsed["model_type"].is_string()) {
    const std::string type = parsed["model_type"];
    for (const auto& [model_type, folder] : {std::pair{"gpt2", "gpt2-tiny"},
                                             {"gpt_neo", "gpt-neo-tiny"},
                                             {"gpt_neox", "pythia-tiny"},
                                             {"llama", "llama-tiny"},
                                             {"mistral", "llama-tiny"},
                                             {"qwen2", "qwen2-tiny"},
                                             {"bert", "bert-tiny"}}) {
      if (type == model_type) weights = folder;
    }
  }
  const fs::path dir = fresh_scratch("config");
  write_bytes(dir / "config.json", text);
  fs::create_symlink(testing::golden_path(weights) / "model.safetensors",
                     dir / "model.safetensors");
  try {
    auto model = load_model(dir);
    ForwardInput input;
    input.input_ids = at::arange(3, at::kLong).remainder(model->vocab_size()).unsqueeze(0);
    (void)model->forward(input);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace llmscope::fuzz
