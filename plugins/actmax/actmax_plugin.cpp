// actmax: activation maximisation of one unit at any hook site — gradient ascent on free input
// embeddings (optimize, repeat) and the data-sampling alternative over a token stream (sample).
// Everything runs in C++ on the model's device; the native hook keeps only the one unit.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <llmscope/matmul.hpp>
#include <llmscope/plugin.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

// The course's site on GPT-2 small: hidden_states[8] (the input of block 8) of 12 layers, dim 91.
constexpr int64_t kCourseHiddenState = 8;
constexpr int64_t kCourseLayers = 12;
constexpr int64_t kCourseUnit = 91;

// Where the unit lives and how to reach it cheaply: the hook point a native hook observes and
// the number of blocks the pass must run to get there.
struct Target {
  std::string description;  // "hidden_states[8]" or the site's name, for messages and results
  std::string hook;         // the hook point observed
  std::optional<int> stop_at_layer;
  int64_t unit = 0;
  int64_t width = -1;  // units at the site; known up front for hidden states, else after a pass
};

// What one pass through a Target gives: the unit and its neighbour, [batch, pos] each.
struct UnitActivation {
  at::Tensor unit;
  at::Tensor neighbour;
};

std::string str(int64_t v) { return std::to_string(v); }

// hidden_states[i] with Hugging Face's semantics as a hook point: the module output of block i-1
// (blocks.{i}.hook_resid_pre is "<block>:input" in every table, so its module path is the
// block's), the input of block 0 for i = 0, and ln_final (GPT) or the last block (BERT) for
// i = n_layer. The pass stops right after the site.
void hidden_state_target(const llmscope::Model& model, int64_t i, Target& target) {
  const auto& table = model.hook_points();
  const int64_t n = model.n_layer();
  target.description = "hidden_states[" + str(i) + "]";
  target.width = model.d_model();
  auto block_output = [&](int64_t layer) -> std::optional<std::string> {
    auto id = table.find("blocks." + str(layer) + ".hook_resid_pre");
    if (!id) return std::nullopt;
    std::string name = table.at(*id).name;
    const std::string suffix = ":input";
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      return std::nullopt;
    }
    name.resize(name.size() - suffix.size());
    if (!table.find(name)) return std::nullopt;
    return name;
  };
  if (i == n) {
    if (table.find("ln_final.hook_normalized")) {
      target.hook = "ln_final.hook_normalized";
    } else if (auto last = block_output(n - 1)) {
      target.hook = *last;  // no final LayerNorm (BERT): the last block's output
      target.stop_at_layer = static_cast<int>(n);  // skips the masked-LM head
    } else {
      throw llmscope::Error("actmax: cannot locate hidden_states[" + str(i) + "] on this " +
                            model.architecture() + " model");
    }
    return;
  }
  if (i > 0) {
    if (auto previous = block_output(i - 1)) {
      target.hook = *previous;
      target.stop_at_layer = static_cast<int>(i);
      return;
    }
  }
  target.hook = "blocks." + str(i) + ".hook_resid_pre";  // fires as block i starts
  target.stop_at_layer = static_cast<int>(std::min(i + 1, n));
}

// Reads hidden_state | site, and unit, from `opts` (argument `index`).
Target resolve_target(const llmscope::Model& model, const Table& opts, int index) {
  Target target;
  const int64_t n = model.n_layer();
  const auto site = option<std::optional<std::string>>(opts, "site", std::nullopt, index);
  auto hidden = option<std::optional<int64_t>>(opts, "hidden_state", std::nullopt, index);
  if (site && hidden)
    throw ArgumentError(index, "options 'site' and 'hidden_state' exclude each other");
  if (site) {
    const auto& table = model.hook_points();
    int id = 0;
    try {
      id = table.resolve(*site);  // throws with "did you mean" suggestions
    } catch (const std::exception& e) {
      throw ArgumentError(index, std::string("option 'site': ") + e.what());
    }
    const auto& point = table.at(id);
    if (!point.shape.empty() && point.shape.rfind("[batch, pos", 0) != 0) {
      throw ArgumentError(index, "option 'site': '" + *site + "' is " + point.shape +
                                     "; actmax needs a site shaped [batch, pos, ...]");
    }
    target.description = *site;
    target.hook = *site;
    if (point.layer >= 0) {
      target.stop_at_layer = point.layer + 1;  // for the last block too: skips ln_f and the head
    } else if (id < table.block_id(0, 0)) {
      target.stop_at_layer = 0;  // before the blocks
    }
  } else {
    const int64_t fallback = std::min<int64_t>(
        n, static_cast<int64_t>(
               std::floor(static_cast<double>(kCourseHiddenState * n) / kCourseLayers + 0.5)));
    int64_t i = hidden.value_or(fallback);
    if (i < 0) i += n + 1;  // -1 is the last, as in Python
    if (i < 0 || i > n) {
      throw ArgumentError(index, "option 'hidden_state': " + str(*hidden) + " is out of range (a " +
                                     str(n) + "-layer model has hidden_states[0.." + str(n) + "])");
    }
    hidden_state_target(model, i, target);
  }
  const int64_t unit = option<int64_t>(opts, "unit", kCourseUnit, index);
  if (unit < 0) throw ArgumentError(index, "option 'unit' must be >= 0, got " + str(unit));
  if (target.width >= 0 && unit >= target.width) {
    throw ArgumentError(index, "option 'unit': " + str(unit) + " is out of range for the " +
                                   str(target.width) + " units of " + target.description + " (0.." +
                                   str(target.width - 1) + ")");
  }
  target.unit = unit;
  return target;
}

int64_t neighbour_of(const Target& t) { return t.unit + 1 < t.width ? t.unit + 1 : t.unit - 1; }

// One pass to the target's site. The hook flattens per-head sites to [batch, pos, units] and
// keeps views of the unit and its neighbour only; `index` names the options argument.
UnitActivation run_target(llmscope::Model& model, Target& target,
                          const llmscope::ForwardInput& input, int index) {
  UnitActivation out;
  int64_t seen_width = -1;
  std::string bad_shape;
  llmscope::ForwardOptions forward;
  forward.stop_at_layer = target.stop_at_layer;
  forward.hooks.push_back({target.hook, [&](const at::Tensor& act, const llmscope::HookContext&) {
                             if (act.dim() < 3) {
                               bad_shape = std::to_string(act.dim()) + "-D";
                               return at::Tensor();
                             }
                             auto flat = act.flatten(2);  // [batch, pos, units]
                             seen_width = flat.size(2);
                             if (target.unit >= seen_width) return at::Tensor();
                             const int64_t nb =
                                 target.unit + 1 < seen_width ? target.unit + 1 : target.unit - 1;
                             out.unit = flat.select(2, target.unit);
                             out.neighbour = nb >= 0 ? flat.select(2, nb) : at::Tensor();
                             return at::Tensor();
                           }});
  model.forward(input, forward);
  if (!bad_shape.empty()) {
    throw ArgumentError(index, "site '" + target.hook + "' gave a " + bad_shape +
                                   " activation; actmax needs [batch, pos, units]");
  }
  if (seen_width < 0) {
    throw llmscope::Error("actmax: the hook at '" + target.hook + "' never fired" +
                          (input.inputs_embeds.defined()
                               ? " (a pass from input embeddings skips the token-embedding lookup)"
                               : ""));
  }
  target.width = seen_width;
  if (target.unit >= seen_width) {
    throw ArgumentError(index, "option 'unit': " + str(target.unit) + " is out of range for the " +
                                   str(seen_width) + " units of " + target.description + " (0.." +
                                   str(seen_width - 1) + ")");
  }
  if (!out.neighbour.defined()) out.neighbour = at::full_like(out.unit, NAN);
  return out;
}

// ---- gradient ascent ----

struct AscentOptions {
  int64_t seq_len = 5;
  int64_t steps = 500;
  double lr = 1e-3;
  double lambda = 0.01;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  uint64_t seed = 0;
};

AscentOptions ascent_options(const llmscope::Model& model, const Table& opts, int index,
                             int64_t default_steps) {
  AscentOptions a;
  a.seq_len = option<int64_t>(opts, "seq_len", a.seq_len, index);
  if (a.seq_len < 1 || a.seq_len > model.max_positions()) {
    throw ArgumentError(index, "option 'seq_len' must be in 1.." + str(model.max_positions()) +
                                   ", got " + str(a.seq_len));
  }
  a.steps = option<int64_t>(opts, "steps", default_steps, index);
  if (a.steps < 1) throw ArgumentError(index, "option 'steps' must be >= 1, got " + str(a.steps));
  a.lr = option<double>(opts, "lr", a.lr, index);
  if (!(a.lr > 0) || !std::isfinite(a.lr))
    throw ArgumentError(index, "option 'lr' must be a number > 0");
  a.lambda = option<double>(opts, "lambda", a.lambda, index);
  if (!(a.lambda >= 0) || !std::isfinite(a.lambda))
    throw ArgumentError(index, "option 'lambda' must be a number >= 0");
  const int64_t seed = option<int64_t>(opts, "seed", 0, index);
  if (seed < 0) throw ArgumentError(index, "option 'seed' must be >= 0, got " + str(seed));
  a.seed = static_cast<uint64_t>(seed);
  return a;
}

// The token-embedding matrix as float32 [vocab, d_model], and the std the course initialises with.
at::Tensor embedding_matrix(const llmscope::Model& model) {
  at::NoGradGuard no_grad;
  auto ids =
      at::arange(model.vocab_size(), at::TensorOptions().dtype(at::kLong).device(model.device()));
  return model.embed_tokens(ids).to(at::kFloat);
}

// Random starts N(0, std) drawn on the CPU from `seed`, so a seed means the same start everywhere.
at::Tensor random_starts(int64_t rows, int64_t seq_len, int64_t d_model, double std,
                         uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::normal(0.0, std, {rows, seq_len, d_model}, gen, at::TensorOptions().dtype(at::kFloat));
}

struct AscentResult {
  at::Tensor init;        // [rows, seq_len, d_model]
  at::Tensor embeddings;  // [rows, seq_len, d_model], optimised
  at::Tensor activation;  // [steps, rows]: mean over positions of the unit, before each update
  at::Tensor neighbour;   // [steps, rows]
  at::Tensor grad_norm;   // [steps, rows]
  at::Tensor final_activation;  // [rows], after the last update
  at::Tensor final_neighbour;   // [rows]
  double seconds = 0;
};

// Adam on `rows` independent sets of seq_len free embeddings, all in one batch: the rows never
// interact (attention stays within a row and Adam is elementwise), so this equals rows separate
// runs. Loss per row: -mean_pos(act) + lambda * ||E_row||^2.
AscentResult ascend(llmscope::Model& model, Target& target, const AscentOptions& a,
                    const at::Tensor& init, int index) {
  AscentResult r;
  const auto device = model.device();
  r.init = init;
  auto E = init.to(device).clone().set_requires_grad(true);  // [rows, seq, d_model], float32 leaf
  // Adam's first and second moments.
  at::Tensor m1 = at::zeros_like(E).detach();
  at::Tensor m2 = at::zeros_like(E).detach();
  std::vector<at::Tensor> acts, nbs, norms;
  acts.reserve(static_cast<size_t>(a.steps));
  nbs.reserve(static_cast<size_t>(a.steps));
  norms.reserve(static_cast<size_t>(a.steps));
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= a.steps; ++step) {
    at::Tensor grad;
    {
      at::AutoGradMode grad_mode(true);
      auto got = run_target(model, target, llmscope::ForwardInput{{}, E, {}, {}}, index);
      auto act = got.unit.to(at::kFloat).mean(1);  // [rows]
      auto loss = (-act).sum() + a.lambda * E.pow(2).sum();
      grad = torch::autograd::grad({loss}, {E})[0];
      acts.push_back(act.detach());
      nbs.push_back(got.neighbour.detach().to(at::kFloat).mean(1));
    }
    at::NoGradGuard no_grad;
    norms.push_back(grad.flatten(1).norm(2, 1));
    // Adam, as torch.optim.Adam does it (no weight decay; the L2 term is in the loss).
    m1.mul_(a.beta1).add_(grad, 1 - a.beta1);
    m2.mul_(a.beta2).addcmul_(grad, grad, 1 - a.beta2);
    const double c1 = 1 - std::pow(a.beta1, static_cast<double>(step));
    const double c2 = 1 - std::pow(a.beta2, static_cast<double>(step));
    auto denominator = (m2 / c2).sqrt_().add_(a.eps);
    E.addcdiv_(m1, denominator, -a.lr / c1);
  }
  {
    at::NoGradGuard no_grad;
    auto got = run_target(model, target, llmscope::ForwardInput{{}, E.detach(), {}, {}}, index);
    r.final_activation = got.unit.to(at::kFloat).mean(1).cpu();
    r.final_neighbour = got.neighbour.to(at::kFloat).mean(1).cpu();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.embeddings = E.detach().cpu();
  r.activation = at::stack(acts).cpu();
  r.neighbour = at::stack(nbs).cpu();
  r.grad_norm = at::stack(norms).cpu();
  return r;
}

// Cosine similarity of every vector of `vectors` [n, d] with every row of `embeddings`
// [vocab, d] -> [n, vocab]; as torch.nn.functional.cosine_similarity (norms clamped at 1e-8).
at::Tensor cosine_to_vocab(const at::Tensor& vectors, const at::Tensor& embeddings) {
  at::NoGradGuard no_grad;
  auto v = vectors.to(embeddings.device(), at::kFloat);
  auto vn = v / v.norm(2, 1, true).clamp_min(1e-8);
  auto en = embeddings / embeddings.norm(2, 1, true).clamp_min(1e-8);
  return llmscope::matmul(vn, en.t());
}

std::vector<std::string> token_texts(const llmscope::Model& model, const at::Tensor& ids) {
  std::vector<std::string> out;
  const auto* tok = model.tokenizer();
  if (tok == nullptr) return out;
  auto flat = ids.flatten().cpu();
  auto acc = flat.accessor<int64_t, 1>();
  for (int64_t i = 0; i < flat.numel(); ++i) {
    out.push_back(acc[i] < tok->vocab_size() ? tok->token_text(acc[i]) : "<" + str(acc[i]) + ">");
  }
  return out;
}

void put_target(Table& result, const Target& t) {
  result["site"] = t.description;
  result["hook"] = t.hook;
  result["unit"] = t.unit;
  result["neighbour_unit"] = neighbour_of(t);
  result["width"] = t.width;
  result["layers_run"] = t.stop_at_layer ? static_cast<int64_t>(*t.stop_at_layer) : int64_t{-1};
  result["threads"] =
      static_cast<int64_t>(at::get_num_threads());  // ATen's intra-op threads, for timings
}

const std::vector<std::string> kTargetOptions = {"hidden_state", "site", "unit"};

std::vector<std::string> with_target_options(std::vector<std::string> keys) {
  keys.insert(keys.end(), kTargetOptions.begin(), kTargetOptions.end());
  return keys;
}

// The token stream for sample(): int64 ids [n] (given as [n] or [1, n]).
at::Tensor token_stream(const at::Tensor& ids) {
  if (at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool) {
    throw ArgumentError(2, "token ids must be an integer tensor, got " +
                               std::string(c10::toString(ids.scalar_type())));
  }
  if (ids.dim() == 1) return ids.to(at::kLong);
  if (ids.dim() == 2 && ids.size(0) == 1) return ids.select(0, 0).to(at::kLong);
  throw ArgumentError(2, "token ids must be [n] or [1, n], got " + str(ids.dim()) + "-D");
}

}  // namespace

LLMSCOPE_PLUGIN(
    "actmax", "0.1.0",
    "Activation maximisation of one unit: gradient ascent on input embeddings, and data sampling") {
  module.def(
      "optimize",
      "optimize(model, opts) -> table: gradient ascent on input embeddings to maximise one unit\n"
      "The unit: hidden_state = i (Hugging Face hidden_states[i]: the input of block i;\n"
      "i = n_layer is the output after ln_f; negative counts from the end; default the course's\n"
      "8 of 12 layers at the same relative depth) or site = '<hook point>' (any [batch, pos, ...]\n"
      "site; per-head sites are flattened), and unit (default 91).\n"
      "Loss -mean_pos(act) + lambda * ||E||^2; Adam from N(0, std of the token embeddings).\n"
      "opts: seq_len (5), steps (500), lr (0.001), lambda (0.01), seed (0).\n"
      "Returns ids [seq_len] (the token of highest cosine similarity per vector), similarity\n"
      "[seq_len] (that cosine), cosine [seq_len, vocab], embeddings and init [seq_len, d_model],\n"
      "activation, neighbour, grad_norm [steps] (before each update; neighbour = unit + 1, or\n"
      "unit - 1 for the last unit), initial_activation, final_activation, final_neighbour,\n"
      "embedding_std, tokens and text (with a tokenizer), seconds, steps, and the target fields:\n"
      "site, hook, unit, neighbour_unit, width, layers_run, threads (ATen's, for timings).",
      [](const ModelPtr& model, const Table& opts) {
        check_options(opts, with_target_options({"seq_len", "steps", "lr", "lambda", "seed"}), 2);
        Target target = resolve_target(*model, opts, 2);
        const AscentOptions a = ascent_options(*model, opts, 2, 500);
        const at::Tensor vocab = embedding_matrix(*model);
        const double std = vocab.std().item<double>();
        auto r = ascend(*model, target, a,
                        random_starts(1, a.seq_len, model->d_model(), std, a.seed), 2);
        auto cosine = cosine_to_vocab(r.embeddings[0], vocab);  // [seq_len, vocab]
        auto [best, ids] = cosine.max(1);
        Table result;
        result["ids"] = ids.cpu();
        result["similarity"] = best.cpu();
        result["cosine"] = cosine.cpu();
        result["embeddings"] = r.embeddings[0];
        result["init"] = r.init[0];
        result["activation"] = r.activation.select(1, 0).contiguous();
        result["neighbour"] = r.neighbour.select(1, 0).contiguous();
        result["grad_norm"] = r.grad_norm.select(1, 0).contiguous();
        result["initial_activation"] = r.activation[0][0].item<double>();
        result["final_activation"] = r.final_activation[0].item<double>();
        result["final_neighbour"] = r.final_neighbour[0].item<double>();
        result["embedding_std"] = std;
        result["seconds"] = r.seconds;
        result["steps"] = a.steps;
        if (model->tokenizer() != nullptr) {
          result["tokens"] = token_texts(*model, ids);
          auto cpu = ids.cpu();
          result["text"] = model->tokenizer()->decode(
              std::vector<int64_t>(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel()));
        }
        put_target(result, target);
        return result;
      });

  module.def(
      "repeat",
      "repeat(model, opts) -> table: optimize from n random starts, as one batch\n"
      "The rows never interact, so this equals n separate runs. Start r is row r of one N(0, std)\n"
      "draw from seed, so row 0 starts where optimize with the same seed does.\n"
      "opts: n (10), steps (300), and optimize's seq_len, lr, lambda, seed, hidden_state, site,\n"
      "unit.\n"
      "Returns ids [n, seq_len], similarity [n, seq_len], unique (distinct ids among the\n"
      "n * seq_len), total (n * seq_len), initial_activation and final_activation [n], activation\n"
      "[steps, n], tokens (n lists of seq_len strings, with a tokenizer), seconds, steps, and the\n"
      "target fields.",
      [](const ModelPtr& model, const Table& opts) {
        check_options(opts, with_target_options({"n", "seq_len", "steps", "lr", "lambda", "seed"}),
                      2);
        Target target = resolve_target(*model, opts, 2);
        const AscentOptions a = ascent_options(*model, opts, 2, 300);
        const int64_t n = option<int64_t>(opts, "n", 10, 2);
        if (n < 1) throw ArgumentError(2, "option 'n' must be >= 1, got " + str(n));
        const at::Tensor vocab = embedding_matrix(*model);
        const double std = vocab.std().item<double>();
        auto r = ascend(*model, target, a,
                        random_starts(n, a.seq_len, model->d_model(), std, a.seed), 2);
        auto cosine = cosine_to_vocab(r.embeddings.flatten(0, 1), vocab);  // [n * seq_len, vocab]
        auto [best, ids] = cosine.max(1);
        auto flat_ids = ids.cpu();
        Table result;
        result["ids"] = flat_ids.view({n, a.seq_len});
        result["similarity"] = best.cpu().view({n, a.seq_len});
        result["unique"] = std::get<0>(at::_unique(flat_ids)).numel();
        result["total"] = n * a.seq_len;
        result["initial_activation"] = r.activation[0].contiguous();
        result["final_activation"] = r.final_activation;
        result["activation"] = r.activation;
        result["seconds"] = r.seconds;
        result["steps"] = a.steps;
        if (model->tokenizer() != nullptr) {
          std::vector<std::vector<std::string>> rows;
          auto texts = token_texts(*model, flat_ids);
          for (int64_t i = 0; i < n; ++i) {
            rows.emplace_back(texts.begin() + i * a.seq_len, texts.begin() + (i + 1) * a.seq_len);
          }
          result["tokens"] = rows;
        }
        put_target(result, target);
        return result;
      });

  module.def(
      "sample",
      "sample(model, ids, opts) -> table: the tokens that maximise a unit in random windows\n"
      "ids: a token stream ([n] or [1, n]). Each sample is one batch of `batch` random windows of\n"
      "seq_len tokens; the token at the unit's maximum over batch x positions wins the sample.\n"
      "opts: batch (32), seq_len (256), samples (1000), seed (0), hidden_state, site, unit.\n"
      "Returns ids and counts (the winning tokens and how many samples each won, most first, ties\n"
      "by id), total (= samples), tokens (with a tokenizer), winners [samples], peak [samples]\n"
      "(each sample's maximum), starts [samples, batch] (each window's first position), seconds,\n"
      "and the target fields.",
      [](const ModelPtr& model, const at::Tensor& ids, const Table& opts) {
        check_options(opts, with_target_options({"batch", "seq_len", "samples", "seed"}), 3);
        Target target = resolve_target(*model, opts, 3);
        const int64_t batch = option<int64_t>(opts, "batch", 32, 3);
        if (batch < 1) throw ArgumentError(3, "option 'batch' must be >= 1, got " + str(batch));
        const int64_t samples = option<int64_t>(opts, "samples", 1000, 3);
        if (samples < 1)
          throw ArgumentError(3, "option 'samples' must be >= 1, got " + str(samples));
        const int64_t seq_len = option<int64_t>(opts, "seq_len", 256, 3);
        if (seq_len < 1 || seq_len > model->max_positions()) {
          throw ArgumentError(3, "option 'seq_len' must be in 1.." + str(model->max_positions()) +
                                     ", got " + str(seq_len));
        }
        const int64_t seed = option<int64_t>(opts, "seed", 0, 3);
        if (seed < 0) throw ArgumentError(3, "option 'seed' must be >= 0, got " + str(seed));
        const auto device = model->device();
        at::Tensor stream = token_stream(ids).contiguous();
        const int64_t n = stream.numel();
        if (n < seq_len) {
          throw ArgumentError(
              2, "the token stream has " + str(n) + " tokens, fewer than seq_len " + str(seq_len));
        }
        const int64_t lo = stream.min().item<int64_t>();  // n >= seq_len >= 1
        const int64_t hi = stream.max().item<int64_t>();
        if (lo < 0 || hi >= model->vocab_size()) {
          throw ArgumentError(2, "token id " + str(lo < 0 ? lo : hi) +
                                     " is out of range (vocab_size is " + str(model->vocab_size()) +
                                     ")");
        }
        stream = stream.to(device);
        // Window starts for every sample, drawn up front on the host: [samples, batch].
        std::mt19937_64 rng(static_cast<uint64_t>(seed));
        std::uniform_int_distribution<int64_t> draw(0, n - seq_len);
        auto starts = at::empty({samples, batch}, at::kLong);
        auto* s = starts.data_ptr<int64_t>();
        for (int64_t i = 0; i < samples * batch; ++i) s[i] = draw(rng);
        starts = starts.to(device);
        const auto offsets =
            at::arange(seq_len, at::TensorOptions().dtype(at::kLong).device(device));
        auto winners = at::empty({samples}, at::TensorOptions().dtype(at::kLong).device(device));
        auto peaks = at::empty({samples}, at::TensorOptions().dtype(at::kFloat).device(device));

        at::NoGradGuard no_grad;
        const auto start = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < samples; ++i) {
          auto windows = stream.index_select(0, (starts[i].unsqueeze(1) + offsets).flatten())
                             .view({batch, seq_len});  // [batch, seq_len]
          auto got = run_target(*model, target, llmscope::ForwardInput{windows, {}, {}, {}}, 3);
          auto flat = got.unit.reshape({-1});
          auto where = flat.argmax().view({1});  // stays on the device: no sync per sample
          winners.narrow(0, i, 1).copy_(windows.reshape({-1}).index_select(0, where));
          peaks.narrow(0, i, 1).copy_(flat.index_select(0, where));
        }
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

        auto won = winners.cpu();
        std::map<int64_t, int64_t> count;
        const auto* w = won.data_ptr<int64_t>();
        for (int64_t i = 0; i < samples; ++i) ++count[w[i]];
        std::vector<std::pair<int64_t, int64_t>> order(count.begin(), count.end());
        std::stable_sort(order.begin(), order.end(),
                         [](const auto& x, const auto& y) { return x.second > y.second; });
        std::vector<int64_t> top_ids, top_counts;
        for (const auto& [id, c] : order) {
          top_ids.push_back(id);
          top_counts.push_back(c);
        }
        Table result;
        result["ids"] = at::tensor(top_ids, at::kLong);
        result["counts"] = at::tensor(top_counts, at::kLong);
        result["total"] = samples;
        result["winners"] = won;
        result["starts"] = starts.cpu();
        result["peak"] = peaks.cpu();
        result["seconds"] = seconds;
        if (model->tokenizer() != nullptr) {
          result["tokens"] = token_texts(*model, at::tensor(top_ids, at::kLong));
        }
        put_target(result, target);
        return result;
      });

  module.def("activation",
             "activation(model, input, opts) -> tensor [batch, pos]: the unit's activation\n"
             "input: token ids ([pos] or [batch, pos]) or embeddings ([batch, pos, d_model]).\n"
             "opts: hidden_state, site, unit (as optimize). Runs under no-grad with the native\n"
             "hook and early stop the other functions use, so it shows where they look.",
             [](const ModelPtr& model, const at::Tensor& input, const Table& opts) {
               check_options(opts, kTargetOptions, 3);
               Target target = resolve_target(*model, opts, 3);
               llmscope::ForwardInput in;
               if (at::isFloatingType(input.scalar_type())) {
                 in.inputs_embeds = input;
               } else {
                 in.input_ids = input.dim() == 1 ? input.unsqueeze(0) : input;
               }
               at::NoGradGuard no_grad;
               return run_target(*model, target, in, 3).unit.to(at::kFloat).clone();
             });
}
