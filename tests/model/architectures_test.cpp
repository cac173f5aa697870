// The table of architectures: what every row must provide, how a config finds its row, and the
// error for a type that has none.
#include <gmock/gmock.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/model.hpp"

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(Architectures, TodaysFamiliesAreInTheTable) {
  const auto types = supported_model_types();
  for (const char* type : {"gpt2", "gpt_neo", "gpt_neox", "llama", "mistral", "qwen2", "bert"}) {
    EXPECT_NE(std::find(types.begin(), types.end(), type), types.end()) << type;
  }
}

// Plugins and lessons address sites by TransformerLens names: every architecture must have them.
TEST(Architectures, EveryRowHasTheCommonTransformerLensSites) {
  for (const auto& type : supported_model_types()) {
    const auto table = hook_point_table(type, 2);
    for (const char* name :
         {"hook_embed", "blocks.1.hook_resid_pre", "blocks.1.ln1.hook_normalized",
          "blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "blocks.1.attn.hook_v",
          "blocks.1.attn.hook_attn_scores", "blocks.1.attn.hook_pattern", "blocks.1.attn.hook_z",
          "blocks.1.hook_attn_out", "blocks.1.hook_resid_mid", "blocks.1.ln2.hook_normalized",
          "blocks.1.mlp.hook_pre", "blocks.1.mlp.hook_post", "blocks.1.hook_mlp_out",
          "blocks.1.hook_resid_post"}) {
      EXPECT_NO_THROW(table.resolve(name)) << type << " lacks " << name;
    }
    EXPECT_EQ(table.at(table.resolve("blocks.1.mlp.hook_pre")).layer, 1) << type;
  }
}

TEST(Architectures, AnUnknownTypeNamesTheSupportedOnes) {
  try {
    hook_point_table("mamba", 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("model_type 'mamba' is not supported (expected gpt2, "));
    EXPECT_THAT(e.what(), HasSubstr(" or "));
  }
  EXPECT_THROW(hook_point_table("gpt2", 0), Error);
}

// Configs written before model_type existed name only the class; the longest matching class
// prefix decides ("GPTNeoForCausalLM" is GPT-Neo although it also starts with "GPT").
TEST(Architectures, ConfigsWithoutModelTypeAreFoundByTheirClass) {
  for (const auto& [fixture, class_name, type] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"gpt-neo-tiny", "GPTNeoForCausalLM", "gpt_neo"},
           {"pythia-tiny", "GPTNeoXForCausalLM", "gpt_neox"},
           {"llama-tiny", "LlamaForCausalLM", "llama"},
           {"qwen2-tiny", "Qwen2ForCausalLM", "qwen2"},
           {"gpt2-tiny", "GPT2LMHeadModel", "gpt2"},
           {"bert-tiny", "BertForMaskedLM", "bert"}}) {
    const auto dir = scratch_dir("no-model-type-" + fixture);
    for (const auto& entry : fs::directory_iterator(golden_path(fixture))) {
      if (entry.path().filename() != "config.json")
        fs::copy(entry.path(), dir / entry.path().filename(), fs::copy_options::recursive);
    }
    std::ifstream in(golden_path(fixture + "/config.json"));
    auto config = nlohmann::json::parse(in);
    config.erase("model_type");
    config["architectures"] = {class_name};
    std::ofstream(dir / "config.json") << config.dump(1);
    EXPECT_EQ(load_model(dir)->architecture(), type);
  }
}

}  // namespace
}  // namespace llmscope::testing
