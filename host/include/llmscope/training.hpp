// Training GPT-2-architecture language models from scratch: the recipe (a JSON file anyone can
// commit and rerun), GPT-2's initialisation written as a checkpoint, the AdamW loop with warm-up
// and cosine decay, held-out evaluation, the bigram baseline a model card compares against, and
// the checkpoints an interrupted run resumes from.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llmscope/corpus.hpp"
#include "llmscope/gpt2_config.hpp"
#include "llmscope/model.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope {

struct TrainRecipe {
  // Model shape (GPT-2 architecture; vocab_size is also the tokenizer's size when trained here).
  int64_t n_layer = 4, n_embd = 256, n_head = 4, n_positions = 256, vocab_size = 8192;
  // Data: windows of `context` tokens; every `validation_every`-th document is held out.
  int64_t context = 128, batch_size = 16, validation_every = 10;
  // Optimisation: AdamW, linear warm-up then cosine decay from lr to min_lr.
  int64_t steps = 2000, warmup_steps = 100;
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double grad_clip = 1.0;  // global gradient-norm clipping; 0 turns it off
  uint64_t seed = 1234;
  // Evaluation: mean loss over the first eval_tokens validation tokens every eval_every steps.
  int64_t eval_every = 200, eval_tokens = 65536, checkpoint_every = 500;
  int threads = 0;  // intra-op threads; 0 = libtorch's default

  // Reads a recipe file; unknown keys and wrong types are errors naming the file and key.
  static TrainRecipe from_file(const std::filesystem::path& path);
  static TrainRecipe from_json_text(const std::string& text, const std::string& source);
  std::string to_json_text() const;  // every field, pretty-printed
  Gpt2Config model_config(int64_t eos_token_id) const;
};

// Training text as documents, split into train and validation by document.
struct TextSplit {
  std::string description;  // for the model card
  std::vector<std::string> train, validation;
  // SHA-256 of the train documents, a separator, then the validation documents: the card's
  // corpus hash, which changes whenever the text a model was trained on would.
  std::string sha256() const;
};
// The Brown corpus as plain text, one document per file; every `every`-th held out.
TextSplit brown_text_split(const Corpus& corpus, int64_t every);
// Text files cut into paragraph blocks (at blank lines); every `every`-th block held out.
TextSplit text_files_split(const std::vector<std::filesystem::path>& files, int64_t every);
// The documents as one token stream, each followed by `eos`.
std::vector<int64_t> encode_documents(const Tokenizer& tokenizer,
                                      const std::vector<std::string>& documents, int64_t eos);

// Learning rate at `step` (0-based): linear warm-up to lr, then cosine decay to min_lr.
double scheduled_lr(const TrainRecipe& recipe, int64_t step);

// Writes config.json and a GPT-2-initialised model.safetensors (normal(0, 0.02); residual
// projections scaled by 1/sqrt(2 n_layer); LayerNorms 1 and 0; biases 0) into `dir`.
void write_initial_checkpoint(const Gpt2Config& config, uint64_t seed,
                              const std::filesystem::path& dir);

// Mean next-token cross-entropy (nats) over consecutive, non-overlapping windows of `context`
// tokens from the first `max_tokens` of `ids` (all of them when max_tokens <= 0).
double evaluate_loss(Model& model, const std::vector<int64_t>& ids, int64_t context,
                     int64_t max_tokens = 0, int64_t batch_size = 16);

// Cross-entropy (nats) on `validation` of a bigram model counted on `train`, interpolated with the
// add-one unigram distribution; the interpolation weight is the best of a grid on `validation`
// itself, so the baseline is as strong as a bigram gets. Scored on the same first `max_tokens`.
struct BigramBaseline {
  double loss = 0;
  double lambda = 0;  // weight of the bigram term
};
BigramBaseline bigram_baseline(const std::vector<int64_t>& train,
                               const std::vector<int64_t>& validation, int64_t vocab_size,
                               int64_t max_tokens = 0);

struct TrainProgress {
  int64_t step = 0, steps = 0;
  double loss = 0;  // this step's training loss
  double lr = 0;
  double tokens_per_second = 0;
  double elapsed_seconds = 0;
  double validation_loss = -1;  // set on evaluation steps
  double grad_norm = 0;
};

struct TrainResult {
  double final_train_loss = 0;  // mean of the last 50 steps
  double validation_loss = 0;
  double wall_seconds = 0;  // of this run (a resumed run counts from its resumption)
  int64_t tokens_seen = 0;
  std::vector<std::pair<int64_t, double>> validation_curve;  // (step, loss)
  std::vector<double> train_losses;                          // every step
  bool stopped = false;  // stop_requested ended the run before recipe.steps
};

// Where a run stands after `step` steps: what a checkpoint holds besides the weights, and what
// resuming restores, so a resumed run takes exactly the steps the uninterrupted one would.
struct TrainState {
  int64_t step = 0;
  std::string sampler;  // the window sampler's generator (std::mt19937_64), as text
  std::map<std::string, at::Tensor> first_moment, second_moment;  // AdamW's, by parameter
  TrainResult so_far;  // losses, validation curve and tokens seen up to `step`
};

struct TrainCallbacks {
  std::function<void(const TrainProgress&)> on_step;  // every step
  // Every checkpoint_every steps, at the last step, and when stopped.
  std::function<void(const TrainState&)> on_checkpoint;
  // Asked after each step; true ends the run there (after a checkpoint), result.stopped set.
  std::function<bool()> stop_requested;
};

// Trains `model`'s parameters in place (they must be float32) on random windows of `train`,
// evaluating on `validation`; from `resume` (a checkpoint's state, the model holding its
// weights) when given. Deterministic for a given recipe on one thread count, resumed or not.
TrainResult train_language_model(Model& model, const std::vector<int64_t>& train,
                                 const std::vector<int64_t>& validation, const TrainRecipe& recipe,
                                 const TrainCallbacks& callbacks = {},
                                 const TrainState* resume = nullptr);

// Checkpoints of a run folder `out`, in Hugging Face Trainer's layout: out/checkpoint-<step>/
// holding config.json and the float32 weights (a model folder load_model reads), the optimizer's
// moments (optimizer.safetensors), state.json and the recipe. Each is written under a temporary
// name and renamed, so a folder named checkpoint-N is always whole; older ones are removed.
void save_checkpoint(const Model& model, const TrainState& state, const TrainRecipe& recipe,
                     const std::filesystem::path& out);
// The newest checkpoint-N folder of `out`, or an empty path.
std::filesystem::path latest_checkpoint(const std::filesystem::path& out);
// A checkpoint's state (moments on `device`); throws naming the folder when it is not whole or
// was written for another recipe.
TrainState load_checkpoint_state(const std::filesystem::path& checkpoint, const TrainRecipe& recipe,
                                 at::Device device);
// Removes every checkpoint-N folder of `out` (a run that completed needs none).
void remove_checkpoints(const std::filesystem::path& out);

// The model's parameters as a checkpoint (model.safetensors in `dir`, cast to `dtype`), atomically.
void save_model_weights(const Model& model, const std::filesystem::path& dir, at::ScalarType dtype);

}  // namespace llmscope
