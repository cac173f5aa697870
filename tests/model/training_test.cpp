// Training from scratch: the recipe file, the schedule, that a few steps lower the loss, that a
// saved checkpoint reloads to identical logits, and the bigram baseline.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/training.hpp"

namespace llmscope {
namespace {

// A repetitive token stream a tiny model learns within a few dozen steps.
std::vector<int64_t> patterned_tokens(int64_t n, int64_t vocab) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((i * 7 + (i / 5) % 3) % vocab);
  return ids;
}

TrainRecipe tiny_recipe() {
  TrainRecipe r;
  r.n_layer = 2;
  r.n_embd = 32;
  r.n_head = 2;
  r.n_positions = 32;
  r.vocab_size = 300;
  r.context = 16;
  r.batch_size = 8;
  r.steps = 60;
  r.warmup_steps = 5;
  r.lr = 3e-3;
  r.min_lr = 3e-4;
  r.eval_every = 30;
  r.eval_tokens = 2048;
  r.seed = 7;
  return r;
}

TEST(Training, RecipeRoundTripsThroughJson) {
  auto recipe = tiny_recipe();
  auto again = TrainRecipe::from_json_text(recipe.to_json_text(), "recipe.json");
  EXPECT_EQ(again.to_json_text(), recipe.to_json_text());
}

TEST(Training, RecipeErrorsNameTheField) {
  try {
    TrainRecipe::from_json_text(R"({"n_layer": 2, "learning_rate": 0.1})", "my.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my.json: unknown recipe field 'learning_rate'"),
              std::string::npos);
  }
  EXPECT_THROW(TrainRecipe::from_json_text(R"({"n_layer": "two"})", "r.json"), Error);
  EXPECT_THROW(TrainRecipe::from_json_text(R"({"n_embd": 30, "n_head": 4})", "r.json"), Error);
  EXPECT_THROW(TrainRecipe::from_json_text("{not json", "r.json"), Error);
}

TEST(Training, ScheduleWarmsUpThenDecaysToMinimum) {
  TrainRecipe r;
  r.steps = 100;
  r.warmup_steps = 10;
  r.lr = 1.0;
  r.min_lr = 0.1;
  EXPECT_NEAR(scheduled_lr(r, 0), 0.1, 1e-12);
  EXPECT_NEAR(scheduled_lr(r, 9), 1.0, 1e-12);
  EXPECT_NEAR(scheduled_lr(r, 10), 1.0, 1e-12);
  EXPECT_NEAR(scheduled_lr(r, 55), 0.55, 1e-12);
  EXPECT_NEAR(scheduled_lr(r, 100), 0.1, 1e-12);
  for (int s = 11; s < 100; ++s) EXPECT_LE(scheduled_lr(r, s), scheduled_lr(r, s - 1));
}

TEST(Training, FewStepsLowerTheLossAndCheckpointReloadsIdentically) {
  const auto dir = testing::scratch_dir("training_tiny");
  auto recipe = tiny_recipe();
  write_initial_checkpoint(recipe.model_config(0), recipe.seed, dir);
  auto model = load_model(dir);
  const auto train = patterned_tokens(4000, recipe.vocab_size);
  const auto validation = patterned_tokens(1000, recipe.vocab_size);
  const double before = evaluate_loss(*model, validation, recipe.context);
  EXPECT_NEAR(before, std::log(static_cast<double>(recipe.vocab_size)),
              0.5);  // near uniform at init

  int64_t steps_seen = 0;
  auto result =
      train_language_model(*model, train, validation, recipe,
                           {[&](const TrainProgress& p) { steps_seen = p.step; }, nullptr});
  EXPECT_EQ(steps_seen, recipe.steps);
  ASSERT_EQ(result.validation_curve.size(), 2u);
  EXPECT_LT(result.validation_loss, before - 1.0);
  EXPECT_LT(result.final_train_loss, result.train_losses.front() - 1.0);

  const auto saved = testing::scratch_dir("training_tiny_saved");
  std::filesystem::copy_file(dir / "config.json", saved / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  save_model_weights(*model, saved, at::kFloat);
  auto reloaded = load_model(saved);
  auto ids =
      at::tensor(std::vector<int64_t>(validation.begin(), validation.begin() + 16)).unsqueeze(0);
  at::NoGradGuard no_grad;
  auto a = model->forward(ForwardInput{ids, {}, {}, {}}).logits;
  auto b = reloaded->forward(ForwardInput{ids, {}, {}, {}}).logits;
  EXPECT_TRUE(at::equal(a, b));
}

TEST(Training, SameSeedSameLosses) {
  auto recipe = tiny_recipe();
  recipe.steps = 5;
  recipe.threads = 1;
  const auto train = patterned_tokens(2000, recipe.vocab_size);
  std::vector<double> losses[2];
  for (int run = 0; run < 2; ++run) {
    const auto dir = testing::scratch_dir("training_seed_" + std::to_string(run));
    write_initial_checkpoint(recipe.model_config(0), recipe.seed, dir);
    auto model = load_model(dir);
    losses[run] = train_language_model(*model, train, train, recipe).train_losses;
  }
  EXPECT_EQ(losses[0], losses[1]);
}

// Stopped after 5 steps with a checkpoint and resumed from it, a run takes exactly the steps of
// the uninterrupted one: the same losses and bit-identical weights.
TEST(Training, AResumedRunTakesTheSameStepsAsAnUninterruptedOne) {
  auto recipe = tiny_recipe();
  recipe.steps = 12;
  recipe.threads = 1;
  recipe.checkpoint_every = 100;
  const auto train = patterned_tokens(2000, recipe.vocab_size);
  const auto validation = patterned_tokens(500, recipe.vocab_size);
  const auto whole_dir = testing::scratch_dir("training_whole");
  write_initial_checkpoint(recipe.model_config(0), recipe.seed, whole_dir);
  auto whole = load_model(whole_dir);
  const auto expected = train_language_model(*whole, train, validation, recipe);

  const auto out = testing::scratch_dir("training_resumed");
  write_initial_checkpoint(recipe.model_config(0), recipe.seed, out / "init");
  std::filesystem::copy_file(out / "init" / "config.json", out / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  auto first = load_model(out / "init");
  int64_t done = 0;
  TrainCallbacks callbacks;
  callbacks.on_step = [&](const TrainProgress& p) { done = p.step; };
  callbacks.on_checkpoint = [&](const TrainState& state) {
    save_checkpoint(*first, state, recipe, out);
  };
  callbacks.stop_requested = [&] { return done == 5; };
  const auto stopped = train_language_model(*first, train, validation, recipe, callbacks);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_EQ(stopped.train_losses.size(), 5u);
  const auto checkpoint = latest_checkpoint(out);
  ASSERT_EQ(checkpoint, out / "checkpoint-5");

  auto second = load_model(checkpoint);
  const auto state = load_checkpoint_state(checkpoint, recipe, at::kCPU);
  EXPECT_EQ(state.step, 5);
  callbacks.stop_requested = nullptr;
  callbacks.on_checkpoint = [&](const TrainState& s) { save_checkpoint(*second, s, recipe, out); };
  const auto resumed = train_language_model(*second, train, validation, recipe, callbacks, &state);
  EXPECT_FALSE(resumed.stopped);
  EXPECT_EQ(resumed.train_losses, expected.train_losses);
  EXPECT_EQ(resumed.validation_curve, expected.validation_curve);
  EXPECT_EQ(resumed.tokens_seen, expected.tokens_seen);
  const auto want = whole->named_parameters();
  const auto got = second->named_parameters();
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(at::equal(want[i].second, got[i].second)) << want[i].first;
  }
  // Only the newest checkpoint stays.
  EXPECT_EQ(latest_checkpoint(out), out / "checkpoint-12");
  EXPECT_FALSE(std::filesystem::exists(out / "checkpoint-5"));

  auto other = recipe;
  other.lr *= 2;
  EXPECT_THAT(
      testing::error_of([&] { load_checkpoint_state(out / "checkpoint-12", other, at::kCPU); }),
      ::testing::HasSubstr("written by another recipe"));
  remove_checkpoints(out);
  EXPECT_EQ(latest_checkpoint(out), std::filesystem::path());
}

// A checkpoint folder damaged after the fact is refused naming the file, never half-loaded.
TEST(Training, ADamagedCheckpointIsRefusedNamingTheFile) {
  auto recipe = tiny_recipe();
  recipe.steps = 6;
  recipe.threads = 1;
  const auto out = testing::scratch_dir("training_damaged");
  write_initial_checkpoint(recipe.model_config(0), recipe.seed, out / "init");
  auto model = load_model(out / "init");
  TrainCallbacks callbacks;
  int64_t done = 0;
  callbacks.on_step = [&](const TrainProgress& p) { done = p.step; };
  callbacks.on_checkpoint = [&](const TrainState& s) { save_checkpoint(*model, s, recipe, out); };
  callbacks.stop_requested = [&] { return done == 2; };
  const auto train = patterned_tokens(1000, recipe.vocab_size);
  train_language_model(*model, train, train, recipe, callbacks);
  const auto checkpoint = out / "checkpoint-2";
  ASSERT_TRUE(std::filesystem::exists(checkpoint / "state.json"));

  const std::string whole = testing::read_text_file(checkpoint / "state.json");
  testing::write_text_file(checkpoint / "state.json", whole.substr(0, whole.size() / 2));
  std::string msg = testing::error_of([&] { load_checkpoint_state(checkpoint, recipe, at::kCPU); });
  EXPECT_THAT(msg, ::testing::HasSubstr((checkpoint / "state.json").string()));
  EXPECT_THAT(msg, ::testing::HasSubstr("not valid JSON (expected a training state)"));

  testing::write_text_file(checkpoint / "state.json", R"({"step": 3, "sampler": "",
      "train_losses": [1, 2, 3], "validation_curve": [], "tokens_seen": 0})");
  msg = testing::error_of([&] { load_checkpoint_state(checkpoint, recipe, at::kCPU); });
  EXPECT_THAT(msg, ::testing::HasSubstr("step 3 does not match the folder's name and losses"));

  testing::write_text_file(checkpoint / "state.json", R"({"step": "two"})");
  msg = testing::error_of([&] { load_checkpoint_state(checkpoint, recipe, at::kCPU); });
  EXPECT_THAT(msg, ::testing::HasSubstr("not a training state"));

  testing::write_text_file(checkpoint / "state.json", whole);
  std::filesystem::remove(checkpoint / "optimizer.safetensors");
  msg = testing::error_of([&] { load_checkpoint_state(checkpoint, recipe, at::kCPU); });
  EXPECT_THAT(msg, ::testing::HasSubstr("optimizer.safetensors"));
}

TEST(Training, BigramBaselineLearnsAPredictableStream) {
  const auto train = patterned_tokens(5000, 50);
  const auto baseline = bigram_baseline(train, patterned_tokens(1000, 50), 50);
  EXPECT_LT(baseline.loss, std::log(50.0) - 1.0);  // far better than uniform
  EXPECT_GT(baseline.lambda, 0.5);
}

}  // namespace
}  // namespace llmscope
