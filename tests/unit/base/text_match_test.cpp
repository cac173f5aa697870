#include "llmscope/text_match.hpp"

#include <gtest/gtest.h>

namespace llmscope {
namespace {

TEST(GlobMatch, StarsCrossDotsAndQuestionMarksMatchOneCharacter) {
  EXPECT_TRUE(glob_match("blocks.*.mlp.hook_pre", "blocks.11.mlp.hook_pre"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("transformer.h.?.ln_1", "transformer.h.3.ln_1"));
  EXPECT_FALSE(glob_match("transformer.h.?.ln_1", "transformer.h.10.ln_1"));
  EXPECT_FALSE(glob_match("blocks.*.mlp.hook_pre", "blocks.1.mlp.hook_post"));
  EXPECT_TRUE(glob_match("*mlp*", "transformer.h.0.mlp.c_fc"));
}

TEST(ClosestNames, NearestFirst) {
  std::vector<std::string> names = {"blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post",
                                    "blocks.0.hook_resid_pre"};
  auto best = closest_names("blocks.0.mlp.hook_pr", names, 2);
  ASSERT_EQ(best.size(), 2u);
  EXPECT_EQ(best[0], "blocks.0.mlp.hook_pre");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace llmscope
