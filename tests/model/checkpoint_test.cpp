// Loading GPT-2 checkpoints: both key layouts, and a clear error for every way a folder can
// disagree with itself.
#include <gmock/gmock.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

nlohmann::json golden_config() {
  std::ifstream in(golden_path("gpt2-tiny/config.json"));
  return nlohmann::json::parse(in);
}

void write_config(const fs::path& dir, const nlohmann::json& config) {
  std::ofstream(dir / "config.json") << config.dump(1);
}

// A copy of gpt2-tiny with its tensors renamed/filtered by `rename` (empty name = drop).
fs::path rewritten_model(const std::string& name,
                         const std::function<std::string(const std::string&)>& rename,
                         const nlohmann::json& config = golden_config()) {
  auto dir = scratch_dir(name);
  auto file = SafetensorsFile::open(golden_path("gpt2-tiny/model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& entry : file.entries()) {
    auto renamed = rename(entry.name);
    if (!renamed.empty()) tensors.emplace_back(renamed, file.tensor(entry.name));
  }
  save_safetensors(dir / "model.safetensors", tensors);
  write_config(dir, config);
  return dir;
}

std::string load_error(const fs::path& dir) {
  try {
    load_model(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

at::Tensor logits_of(const fs::path& dir, const at::Tensor& ids) {
  at::NoGradGuard no_grad;
  return load_model(dir)->forward({ids}).logits;
}

TEST(Gpt2Checkpoint, HubLayoutWithoutPrefixOrLmHeadGivesTheSameLogits) {
  auto hub = rewritten_model("hub", [](const std::string& n) -> std::string {
    if (n.rfind("lm_head", 0) == 0) return "";
    return n.rfind("transformer.", 0) == 0 ? n.substr(12) : n;
  });
  auto ids = at::arange(10, at::kLong).unsqueeze(0) * 37;
  EXPECT_TRUE(logits_of(hub, ids).equal(logits_of(golden_path("gpt2-tiny"), ids)));
}

TEST(Gpt2Checkpoint, OldCausalMaskBuffersAreIgnored) {
  auto dir = scratch_dir("buffers");
  auto file = SafetensorsFile::open(golden_path("gpt2-tiny/model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& e : file.entries()) tensors.emplace_back(e.name, file.tensor(e.name));
  tensors.emplace_back("transformer.h.0.attn.bias", at::ones({1, 1, 64, 64}).tril());
  tensors.emplace_back("transformer.h.0.attn.masked_bias", at::tensor(-1e4));
  save_safetensors(dir / "model.safetensors", tensors);
  write_config(dir, golden_config());
  EXPECT_NO_THROW(load_model(dir));
}

TEST(Gpt2Checkpoint, ConfigWithMoreLayersThanTheWeightsNamesTheMissingTensor) {
  auto config = golden_config();
  config["n_layer"] = 4;
  auto dir = rewritten_model(
      "more_layers", [](const std::string& n) { return n; }, config);
  EXPECT_THAT(load_error(dir), AllOf(HasSubstr("model.safetensors"),
                                     HasSubstr("missing tensor 'transformer.h.3.ln_1.weight'"),
                                     HasSubstr("n_layer=4")));
}

TEST(Gpt2Checkpoint, ConfigWithFewerLayersThanTheWeightsIsAnError) {
  auto config = golden_config();
  config["n_layer"] = 2;
  auto dir = rewritten_model(
      "fewer_layers", [](const std::string& n) { return n; }, config);
  EXPECT_THAT(load_error(dir), AllOf(HasSubstr("weights for layer 2"), HasSubstr("n_layer=2")));
}

TEST(Gpt2Checkpoint, WidthMismatchNamesTensorAndBothShapes) {
  auto config = golden_config();
  config["n_embd"] = 32;
  auto dir = rewritten_model(
      "width", [](const std::string& n) { return n; }, config);
  EXPECT_THAT(load_error(dir), AllOf(HasSubstr("'transformer.wte.weight' has shape [1000, 64]"),
                                     HasSubstr("expected [1000, 32]"), HasSubstr("n_embd=32")));
}

TEST(Gpt2Checkpoint, MissingRequiredConfigKey) {
  auto config = golden_config();
  config.erase("n_head");
  auto dir = rewritten_model(
      "no_head", [](const std::string& n) { return n; }, config);
  EXPECT_THAT(load_error(dir),
              AllOf(HasSubstr("config.json"), HasSubstr("missing required key 'n_head'")));
}

TEST(Gpt2Checkpoint, BadConfigValues) {
  auto config = golden_config();
  config["n_head"] = 5;
  EXPECT_THAT(load_error(rewritten_model(
                  "heads", [](const std::string& n) { return n; }, config)),
              HasSubstr("must be divisible by n_head (5)"));
  config = golden_config();
  config["activation_function"] = "mish";
  EXPECT_THAT(load_error(rewritten_model(
                  "act", [](const std::string& n) { return n; }, config)),
              HasSubstr("activation_function 'mish' is not supported"));
  config = golden_config();
  config["n_layer"] = "three";
  EXPECT_THAT(load_error(rewritten_model(
                  "type", [](const std::string& n) { return n; }, config)),
              HasSubstr("'n_layer' must be a positive integer, got \"three\""));
}

TEST(Gpt2Checkpoint, IntegerWeightsAreRejected) {
  auto dir = scratch_dir("int_weights");
  auto file = SafetensorsFile::open(golden_path("gpt2-tiny/model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& e : file.entries()) {
    auto t = file.tensor(e.name);
    tensors.emplace_back(e.name, e.name == "transformer.ln_f.bias" ? t.to(at::kInt) : t);
  }
  save_safetensors(dir / "model.safetensors", tensors);
  write_config(dir, golden_config());
  EXPECT_THAT(load_error(dir), AllOf(HasSubstr("'transformer.ln_f.bias' has dtype I32"),
                                     HasSubstr("expected a floating type")));
}

TEST(Gpt2Checkpoint, MissingFilesAndUnknownArchitectures) {
  auto dir = scratch_dir("empty");
  EXPECT_THAT(load_error(dir), HasSubstr("config.json: cannot open"));
  write_config(dir, golden_config());
  EXPECT_THAT(load_error(dir), HasSubstr("model.safetensors: not found"));
  std::ofstream(dir / "pytorch_model.bin") << "x";
  EXPECT_THAT(load_error(dir), HasSubstr("convert it to safetensors"));
  std::ofstream(dir / "config.json") << "{ not json";
  EXPECT_THAT(load_error(dir), HasSubstr("config.json: not valid JSON"));
  auto config = golden_config();
  config["model_type"] = "mamba";
  write_config(dir, config);
  EXPECT_THAT(load_error(dir), HasSubstr("model_type 'mamba' is not supported"));
  EXPECT_THAT(load_error(dir / "nope"), HasSubstr("not a folder"));
}

TEST(Gpt2Checkpoint, TruncatedWeightsFileIsRejectedWithItsName) {
  auto dir = scratch_dir("truncated");
  fs::copy_file(golden_path("gpt2-tiny/config.json"), dir / "config.json");
  std::ifstream in(golden_path("gpt2-tiny/model.safetensors"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir / "model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_THAT(load_error(dir), HasSubstr((dir / "model.safetensors").string()));
}

TEST(Gpt2Checkpoint, LoadsInBfloat16AndAgreesRoughly) {
  at::NoGradGuard no_grad;
  auto ids = at::arange(12, at::kLong).unsqueeze(0) * 11;
  auto reference = load_model(golden_path("gpt2-tiny"))->forward({ids}).logits;
  auto bf16 = load_model(golden_path("gpt2-tiny"), {at::kBFloat16, at::kCPU});
  EXPECT_EQ(bf16->dtype(), at::kBFloat16);
  auto logits = bf16->forward({ids}).logits;
  EXPECT_EQ(logits.scalar_type(), at::kBFloat16);
  EXPECT_TENSOR_CLOSE(logits.to(at::kFloat), reference, 5e-2, 1e-1);
}

TEST(Gpt2Checkpoint, HalfPrecisionWeightsLoadIntoAnyComputeDtype) {
  auto dir = scratch_dir("f16_weights");
  auto file = SafetensorsFile::open(golden_path("gpt2-tiny/model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> f16, bf16;
  for (const auto& e : file.entries()) {
    f16.emplace_back(e.name, file.tensor(e.name).to(at::kHalf));
    bf16.emplace_back(e.name, file.tensor(e.name).to(at::kBFloat16));
  }
  std::filesystem::create_directories(dir / "f16");
  std::filesystem::create_directories(dir / "bf16");
  save_safetensors(dir / "f16" / "model.safetensors", f16);
  save_safetensors(dir / "bf16" / "model.safetensors", bf16);
  write_config(dir / "f16", golden_config());
  write_config(dir / "bf16", golden_config());
  at::NoGradGuard no_grad;
  auto ids = at::arange(12, at::kLong).unsqueeze(0) * 13;
  auto reference = load_model(golden_path("gpt2-tiny"))->forward({ids}).logits;
  for (const char* stored : {"f16", "bf16"}) {
    SCOPED_TRACE(stored);
    auto as_float = load_model(dir / stored, {at::kFloat, at::kCPU});
    EXPECT_EQ(as_float->named_parameters()[0].second.scalar_type(), at::kFloat);
    EXPECT_TENSOR_CLOSE(as_float->forward({ids}).logits, reference, 5e-2, 5e-2);
    auto as_bf16 = load_model(dir / stored, {at::kBFloat16, at::kCPU});
    EXPECT_EQ(as_bf16->forward({ids}).logits.scalar_type(), at::kBFloat16);
  }
}

TEST(Gpt2Checkpoint, Float16OnTheCpuIsAClearError) {
  try {
    load_model(golden_path("gpt2-tiny"), {at::kHalf, at::kCPU});
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("float16 needs a CUDA device"));
  }
}

}  // namespace
}  // namespace llmscope::testing
