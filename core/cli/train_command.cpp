// llmscope train: a GPT-2-architecture model from a corpus and a recipe file — tokenizer
// (trained here unless given), GPT-2 initialisation, AdamW with warm-up and cosine decay,
// held-out evaluation, checkpoints an interrupted run resumes from (Ctrl-C and SIGTERM stop at
// the next step with one), and the final model in the Hugging Face layout with a model card.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "llmscope/atomic_file.hpp"
#include "llmscope/bpe_trainer.hpp"
#include "llmscope/corpus.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"
#include "llmscope/sha256.hpp"
#include "llmscope/training.hpp"

namespace llmscope::cli {
namespace {

constexpr const char* kLogHeader = "step,loss,lr,grad_norm,validation_loss\n";

// Keeps the header and the rows of steps <= `step` (a resumed run writes the rest again); a row
// cut short by the interruption, or any other that does not start with a step, goes too.
void truncate_log(const std::filesystem::path& path, int64_t step) {
  std::ifstream in(path);
  std::string kept = kLogHeader, line;
  std::getline(in, line);  // the header, written anew
  while (std::getline(in, line)) {
    char* end = nullptr;
    const long long row_step = std::strtoll(line.c_str(), &end, 10);
    const bool whole =
        end != line.c_str() && *end == ',' && std::count(line.begin(), line.end(), ',') == 4;
    if (whole && row_step >= 1 && row_step <= step) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

std::string fixed(double x, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << x;
  return out.str();
}

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << " h ";
  if (s >= 60) out << (s / 60) % 60 << " min ";
  out << s % 60 << " s";
  return out.str();
}

struct Sample {
  std::string prompt, greedy, sampled;
};

std::vector<Sample> sample_generations(Model& model, const Tokenizer& tokenizer, uint64_t seed) {
  std::vector<Sample> samples;
  for (const std::string prompt :
       {"The", "He said that", "In the morning", "The government of the United States"}) {
    auto ids = tokenizer.encode(prompt);
    auto input = at::tensor(ids).unsqueeze(0);
    GenerationOptions greedy;
    greedy.max_new_tokens =
        std::min<int64_t>(30, model.max_positions() - static_cast<int64_t>(ids.size()));
    if (greedy.max_new_tokens < 1) continue;
    GenerationOptions sampled = greedy;
    sampled.greedy = false;
    sampled.temperature = 0.8;
    sampled.top_k = 40;
    sampled.seed = seed;
    auto continuation = [&](const GenerationOptions& options) {
      auto out = generate(model, GenerationInput{input, {}}, options)[0];
      std::vector<int64_t> new_ids(out.data_ptr<int64_t>() + ids.size(),
                                   out.data_ptr<int64_t>() + out.numel());
      return tokenizer.decode(new_ids);
    };
    samples.push_back({prompt, continuation(greedy), continuation(sampled)});
  }
  return samples;
}

struct CardFacts {
  std::string command, corpus_description, corpus_sha256, weights_sha256, hardware, save_dtype;
  TrainRecipe recipe;
  TrainResult result;
  BigramBaseline bigram;
  int64_t train_tokens = 0, validation_tokens = 0, parameters = 0;
  std::vector<Sample> samples;
};

std::string quoted_block(const std::string& text) {
  std::string out = "> ";
  for (char c : text) out += c == '\n' ? std::string("\n> ") : std::string(1, c);
  return out;
}

std::string model_card(const CardFacts& f) {
  std::ostringstream md;
  const auto& r = f.recipe;
  md << "# brown-gpt2: a small GPT-2 trained by llmscope\n\n"
     << "A " << r.n_layer << "-layer GPT-2-architecture language model (d_model " << r.n_embd
     << ", " << r.n_head << " heads, context " << r.n_positions << ", vocabulary " << r.vocab_size
     << ", " << f.parameters << " parameters) trained from scratch by `llmscope train` on "
     << f.corpus_description
     << ". It exists so that every lesson and example runs offline on a real, trained model.\n\n"
     << "| | |\n|---|---|\n"
     << "| corpus | " << f.corpus_description << " |\n"
     << "| corpus sha256 (train + validation text) | `" << f.corpus_sha256 << "` |\n"
     << "| tokens | " << f.train_tokens << " train, " << f.validation_tokens << " validation |\n"
     << "| weights | `model.safetensors`, " << f.save_dtype << ", sha256 `" << f.weights_sha256
     << "` |\n"
     << "| steps | " << r.steps << " × " << r.batch_size << " × " << r.context << " tokens ("
     << f.result.tokens_seen << " tokens seen, "
     << fixed(static_cast<double>(f.result.tokens_seen) /
                  static_cast<double>(std::max<int64_t>(1, f.train_tokens)),
              2)
     << " epochs) |\n"
     << "| final train loss (mean of the last 50 steps) | " << fixed(f.result.final_train_loss, 4)
     << " |\n"
     << "| **validation loss** (first " << r.eval_tokens << " validation tokens, windows of "
     << r.context << ") | **" << fixed(f.result.validation_loss, 4) << "** (perplexity "
     << fixed(std::exp(f.result.validation_loss), 1) << ") |\n"
     << "| **bigram baseline** on the same tokens (counted on the train split, interpolated with "
        "add-one unigram, "
        "λ = "
     << fixed(f.bigram.lambda, 2) << ") | **" << fixed(f.bigram.loss, 4) << "** (perplexity "
     << fixed(std::exp(f.bigram.loss), 1) << ") |\n"
     << "| wall time | " << duration_text(f.result.wall_seconds) << " |\n"
     << "| hardware | " << f.hardware << " |\n\n"
     << "## Recipe\n\nReproduce with:\n\n```sh\n"
     << f.command << "\n```\n\n```json\n"
     << r.to_json_text()
     << "\n```\n\nAdamW (decoupled weight decay on matrices and embeddings only), linear warm-up "
        "then cosine decay, "
        "global gradient-norm clipping, GPT-2 initialisation (normal 0.02; residual projections "
        "scaled by "
        "1/sqrt(2·n_layer)), no dropout. Training windows are drawn at random from the train split "
        "with a seeded "
        "generator, so a rerun on the same thread count gives the same numbers up to "
        "floating-point noise.\n\n"
     << "## Validation loss during training\n\n| step | validation loss |\n|---|---|\n";
  for (const auto& [step, loss] : f.result.validation_curve)
    md << "| " << step << " | " << fixed(loss, 4) << " |\n";
  md << "\n## Generations\n\nGreedy, and sampled (temperature 0.8, top-k 40, seed " << r.seed
     << "), 30 new tokens each:\n\n";
  for (const auto& s : f.samples) {
    md << "**" << s.prompt << "**\n\n- greedy:\n\n"
       << quoted_block(s.prompt + s.greedy) << "\n\n- sampled:\n\n"
       << quoted_block(s.prompt + s.sampled) << "\n\n";
  }
  md << "## Files\n\n`config.json` (GPT-2), `model.safetensors`, `vocab.json` + `merges.txt` "
        "(byte-level BPE "
        "trained by `llmscope train` on the train split), `recipe.json`, `training_log.csv` (step, "
        "loss, lr, "
        "validation loss), `training_summary.json` (this card's numbers), this card.\n\n"
        "The Brown corpus: W. N. Francis and H. Kučera, Brown University, 1964–1979; its manual "
        "says "
        "\"redistribution permitted\".\n";
  return md.str();
}

}  // namespace

int run_train(const std::vector<std::string>& args) {
  po::options_description options("train options");
  options.add_options()("recipe", po::value<std::string>()->required(),
                        "recipe JSON (model shape, data, schedule; see docs/training.md)")(
      "out,o", po::value<std::string>()->required(),
      "output folder (a Hugging Face checkpoint folder)")(
      "text", po::value<std::vector<std::string>>()->composing(),
      "train on these UTF-8 text files instead of the Brown corpus (repeatable)")(
      "tokenizer", po::value<std::string>(), "use this folder's tokenizer instead of training one")(
      "steps", po::value<int64_t>(), "override the recipe's steps")(
      "threads", po::value<int>(), "override the recipe's thread count")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:N")(
      "save-dtype", po::value<std::string>()->default_value("float16"),
      "dtype of the final weights")("force", "overwrite a folder that already holds a model")(
      "resume", "continue the interrupted run in --out from its newest checkpoint-N");
  po::variables_map vm;
  if (!parse_args("train",
                  "--recipe FILE --out DIR [--text FILE ...] [--tokenizer DIR] [--steps N] "
                  "[--resume]",
                  args, options, vm)) {
    return 0;
  }
  auto recipe = TrainRecipe::from_file(vm["recipe"].as<std::string>());
  if (vm.count("steps")) recipe.steps = vm["steps"].as<int64_t>();
  if (vm.count("threads")) recipe.threads = vm["threads"].as<int>();
  if (recipe.steps < 1) throw UsageError("--steps must be positive");
  const std::filesystem::path out = vm["out"].as<std::string>();
  const bool resume = vm.count("resume") > 0;
  if (resume && vm.count("force")) throw UsageError("--resume and --force exclude each other");
  const std::filesystem::path checkpoint = latest_checkpoint(out);
  if (resume && checkpoint.empty()) {
    throw UsageError(out.string() +
                     " holds no checkpoint-N folder to resume from; run without --resume");
  }
  if (!resume && !vm.count("force")) {
    if (std::filesystem::exists(out / "model.safetensors")) {
      throw UsageError(out.string() +
                       " already holds a model; choose another --out or pass --force");
    }
    if (!checkpoint.empty()) {
      throw UsageError(out.string() + " holds " + checkpoint.filename().string() +
                       " of an interrupted run; pass --resume to continue it or --force to "
                       "start over");
    }
  }
  if (vm.count("force")) remove_checkpoints(out);
  const auto save_dtype = parse_dtype(vm["save-dtype"].as<std::string>());
  const auto device = parse_device(vm["device"].as<std::string>());
  std::filesystem::create_directories(out);
  if (recipe.threads > 0) at::set_num_threads(recipe.threads);

  std::ostringstream command;
  command << "llmscope train --recipe " << vm["recipe"].as<std::string>() << " --out "
          << out.string();
  for (const auto& a : {"steps", "threads"}) {
    if (vm.count(a))
      command << " --" << a << " "
              << (std::string(a) == "steps" ? std::to_string(recipe.steps)
                                            : std::to_string(recipe.threads));
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<std::string> text_files;
  if (vm.count("text")) text_files = vm["text"].as<std::vector<std::string>>();
  for (const auto& f : text_files) command << " --text " << f;
  std::vector<std::filesystem::path> text_paths(text_files.begin(), text_files.end());
  const auto texts = text_paths.empty() ? brown_text_split(load_brown(default_corpus_dir()),
                                                           recipe.validation_every)
                                        : text_files_split(text_paths, recipe.validation_every);
  spdlog::info("corpus: {} ({} train / {} validation documents)", texts.description,
               texts.train.size(), texts.validation.size());

  if (resume) {
    spdlog::info("resuming from {}", checkpoint.string());  // its tokenizer is already in --out
  } else if (vm.count("tokenizer")) {
    const std::filesystem::path from = vm["tokenizer"].as<std::string>();
    command << " --tokenizer " << from.string();
    for (const char* file : {"vocab.json", "merges.txt", "tokenizer.json"}) {
      if (std::filesystem::exists(from / file)) {
        std::filesystem::copy_file(from / file, out / file,
                                   std::filesystem::copy_options::overwrite_existing);
      }
    }
  } else {
    BpeTrainOptions bpe;
    bpe.vocab_size = static_cast<int>(recipe.vocab_size);
    auto result = train_bpe(texts.train, bpe);
    save_bpe(result, out);
    spdlog::info("tokenizer: {} tokens ({} merges) trained on the train split in {:.1f} s",
                 result.vocab.size(), result.merges.size(), since());
  }
  auto tokenizer = Tokenizer::load(out);
  recipe.vocab_size = tokenizer->vocab_size();
  const int64_t eos = tokenizer->special_token_id("<|endoftext|>");
  if (eos < 0) throw Error("the tokenizer has no <|endoftext|> token to separate documents");
  const auto train_ids = encode_documents(*tokenizer, texts.train, eos);
  const auto validation_ids = encode_documents(*tokenizer, texts.validation, eos);
  spdlog::info("tokens: {} train, {} validation ({:.1f} s)", train_ids.size(),
               validation_ids.size(), since());

  LoadOptions load;
  load.device = device;
  std::unique_ptr<Model> model;
  TrainState resumed;
  if (resume) {
    model = load_model(checkpoint, load);
    resumed = load_checkpoint_state(checkpoint, recipe, device);
    truncate_log(out / "training_log.csv", resumed.step);
  } else {
    // GPT-2's initialisation, loaded from a folder of its own: --out gets model.safetensors
    // only when training is done, so nothing there passes for a trained model before.
    const auto initial = out / ".initial";
    std::filesystem::remove_all(initial);
    write_initial_checkpoint(recipe.model_config(eos), recipe.seed, initial);
    std::filesystem::copy_file(initial / "config.json", out / "config.json",
                               std::filesystem::copy_options::overwrite_existing);
    write_file_atomic(out / "recipe.json", recipe.to_json_text() + "\n");
    model = load_model(initial, load);
    std::filesystem::remove_all(initial);  // the weights stay mapped
    std::ofstream(out / "training_log.csv") << kLogHeader;
  }
  const auto bigram =
      bigram_baseline(train_ids, validation_ids, recipe.vocab_size, recipe.eval_tokens);
  spdlog::info("model: {} parameters; bigram baseline validation loss {:.4f}",
               model->num_parameters(), bigram.loss);

  std::ofstream log(out / "training_log.csv", std::ios::app);
  const bool tty = isatty(STDERR_FILENO) && spdlog::get_level() < spdlog::level::err;
  double last_validation = -1;
  TrainCallbacks callbacks;
  callbacks.on_step = [&](const TrainProgress& p) {
    if (p.validation_loss >= 0) last_validation = p.validation_loss;
    log << p.step << "," << p.loss << "," << p.lr << "," << p.grad_norm << ",";
    if (p.validation_loss >= 0) log << p.validation_loss;
    log << "\n";
    const double eta =
        p.elapsed_seconds / static_cast<double>(p.step) * static_cast<double>(p.steps - p.step);
    std::ostringstream line;
    line << "step " << p.step << "/" << p.steps << " | loss " << fixed(p.loss, 3) << " | val "
         << (last_validation >= 0 ? fixed(last_validation, 3) : std::string("-")) << " | lr "
         << std::setprecision(2) << p.lr << " | " << static_cast<int64_t>(p.tokens_per_second)
         << " tok/s | ETA " << duration_text(eta);
    if (tty) {
      const int width = 30;
      const int filled = static_cast<int>(width * p.step / p.steps);
      std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
                << line.str() << "\033[K" << std::flush;
    } else if (p.validation_loss >= 0) {
      spdlog::info("{}", line.str());
    }
  };
  callbacks.on_checkpoint = [&](const TrainState& state) {
    log.flush();
    save_checkpoint(*model, state, recipe, out);
    spdlog::debug("checkpoint at step {}", state.step);
  };
  callbacks.stop_requested = [] { return StopSignals::received() != 0; };
  TrainResult result;
  int stopped_by = 0;
  {
    // Ctrl-C or SIGTERM: stop after the current step, with a checkpoint.
    StopSignals signals;
    result = train_language_model(*model, train_ids, validation_ids, recipe, callbacks,
                                  resume ? &resumed : nullptr);
    stopped_by = StopSignals::received();
  }
  if (tty) std::cerr << "\n";
  log.close();
  if (result.stopped) {
    const auto kept = latest_checkpoint(out);
    std::cerr << "llmscope train: " << (stopped_by == SIGTERM ? "terminated" : "interrupted")
              << " at step " << result.train_losses.size() << " of " << recipe.steps
              << "; the run so far is in " << kept.string() << " (no model.safetensors in "
              << out.string() << " yet). Continue with the same command and --resume.\n";
    return 128 + stopped_by;
  }

  save_model_weights(*model, out, save_dtype);
  // The card describes the weights as shipped: reload them to measure and sample.
  load.dtype = at::kFloat;
  auto shipped = load_model(out, load);
  CardFacts facts;
  facts.command = command.str();
  facts.corpus_description = texts.description;
  facts.corpus_sha256 = texts.sha256();
  facts.weights_sha256 = sha256_file(out / "model.safetensors");
  facts.save_dtype = dtype_name(save_dtype);
  facts.recipe = recipe;
  facts.result = result;
  facts.result.validation_loss =
      evaluate_loss(*shipped, validation_ids, recipe.context, recipe.eval_tokens);
  facts.bigram = bigram;
  facts.train_tokens = static_cast<int64_t>(train_ids.size());
  facts.validation_tokens = static_cast<int64_t>(validation_ids.size());
  facts.parameters = shipped->num_parameters();
  facts.hardware = (device.is_cuda() ? std::string("CUDA device, ") : std::string()) + cpu_name() +
                   ", " + std::to_string(at::get_num_threads()) + " threads, libtorch " +
                   TORCH_VERSION;
  facts.samples = sample_generations(*shipped, *tokenizer, recipe.seed);
  write_file_atomic(out / "README.md", model_card(facts));
  // The card's numbers for programs (the built-in model's test checks them).
  nlohmann::ordered_json summary = {{"weights_sha256", facts.weights_sha256},
                                    {"corpus_sha256", facts.corpus_sha256},
                                    {"validation_loss", facts.result.validation_loss},
                                    {"bigram_loss", bigram.loss},
                                    {"bigram_lambda", bigram.lambda},
                                    {"final_train_loss", result.final_train_loss},
                                    {"eval_tokens", recipe.eval_tokens},
                                    {"context", recipe.context},
                                    {"validation_every", recipe.validation_every},
                                    {"train_tokens", facts.train_tokens},
                                    {"validation_tokens", facts.validation_tokens},
                                    {"wall_seconds", result.wall_seconds}};
  write_file_atomic(out / "training_summary.json", summary.dump(2) + "\n");
  remove_checkpoints(out);  // the run is complete
  std::cout << "trained " << out.string() << ": validation loss "
            << fixed(facts.result.validation_loss, 4) << " (bigram baseline "
            << fixed(bigram.loss, 4) << ") in " << duration_text(since()) << "\n";
  return 0;
}

}  // namespace llmscope::cli
