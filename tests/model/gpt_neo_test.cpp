// GPT-Neo specifics beyond the shared parity checks: its hook point snapshot, local attention
// windows of any size, and configuration errors.
#include <gmock/gmock.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/model.hpp"
#include "models/gpt_neo.hpp"

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;

TEST(GptNeoHookPoints, MatchTheSnapshot) {
  EXPECT_TRUE(
      matches_hook_snapshot(hook_point_table("gpt_neo", 2), "hook_points_gpt_neo_2_layers.txt"));
}

nlohmann::json golden_config() {
  std::ifstream in(golden_path("gpt-neo-tiny/config.json"));
  return nlohmann::json::parse(in);
}

TEST(GptNeoConfig, ExpandsAttentionTypes) {
  auto json = golden_config();
  json["num_layers"] = 6;
  json["attention_types"] = nlohmann::json::parse(R"([[["global", "local"], 2], [["local"], 2]])");
  auto c = GptNeoConfig::from_json(json, "config.json");
  EXPECT_EQ(c.attention_layers,
            (std::vector<std::string>{"global", "local", "global", "local", "local", "local"}));
  json["num_layers"] = 5;
  EXPECT_THAT([&] { GptNeoConfig::from_json(json, "config.json"); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr("attention_types describe 6 layers but num_layers is 5")));
  json["attention_types"] = "global";
  EXPECT_THAT([&] { GptNeoConfig::from_json(json, "config.json"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("attention_types must look like")));
}

TEST(GptNeoModel, LocalLayersAttendOnlyWithinTheirWindow) {
  auto model = load_model(golden_path("gpt-neo-tiny"));
  const auto config = GptNeoConfig::from_json(golden_config(), "config.json");
  ASSERT_EQ(config.attention_layers, (std::vector<std::string>{"global", "local"}));
  const int64_t window = config.window_size;  // 5 in the fixture
  ForwardOptions options;
  options.output_attentions = true;
  at::NoGradGuard no_grad;
  auto out = model->forward({at::arange(20, at::kLong).unsqueeze(0) * 7}, options);
  auto distance = at::arange(20).unsqueeze(1) - at::arange(20).unsqueeze(0);  // query - key
  auto outside = distance.ge(window)
                     .logical_or(distance.lt(0))
                     .view({1, 1, 20, 20})
                     .expand_as(out.attentions[1]);
  EXPECT_EQ(out.attentions[1].masked_select(outside).abs().max().item<float>(), 0.0f);
  auto beyond_window = distance.ge(window).view({1, 1, 20, 20}).expand_as(out.attentions[0]);
  EXPECT_GT(out.attentions[0].masked_select(beyond_window).abs().max().item<float>(),
            0.0f);  // global layer
}

}  // namespace
}  // namespace llmscope::testing
