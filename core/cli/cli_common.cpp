#include "cli_common.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "llmscope/error.hpp"

namespace llmscope::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"info", "architecture, size, dtype and hook points of a model", run_info},
      {"tokenize", "token ids of texts, one JSON line per text", run_tokenize},
      {"train-tokenizer", "learn a GPT-2-style byte-level BPE tokenizer from text files",
       run_train_tokenizer},
      {"capture", "run a model and save logits, hidden states, attentions and hooked activations",
       run_capture},
      {"generate", "continue a prompt, greedy or sampled", run_generate},
      {"fill-mask", "the most likely tokens for each [MASK] (BERT)", run_fill_mask},
      {"run", "run a Lua script headless: llmscope run script.lua [-- args]", run_script},
      {"repl", "an interactive Lua prompt with llmscope loaded", run_repl},
      {"bench", "forward throughput without hooks, with native and with Lua hooks", run_bench},
      {"plugins", "list plugins and their functions; `plugins info NAME` shows full docs",
       run_plugins},
      {"pull", "download a model from the Hugging Face hub into its cache: pull NAME[@REVISION]",
       run_pull},
      {"lesson",
       "the course's lessons: `lesson list`, `lesson run NAME` (headless, writes a report)",
       run_lesson},
      {"train", "train a GPT-2-architecture model from a corpus and a recipe", run_train},
  };
  return table;
}

bool parse_args(const std::string& command, const std::string& usage,
                const std::vector<std::string>& args, po::options_description& options,
                po::variables_map& vm, const po::positional_options_description* positional) {
  options.add_options()("help,h", "show this help");
  try {
    auto parser = po::command_line_parser(args).options(options);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: llmscope " << command << " " << usage << "\n\n" << options << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::ostringstream help;
    help << e.what() << "\n\nusage: llmscope " << command << " " << usage << "\n\n" << options;
    throw UsageError(help.str());
  }
  return true;
}

std::filesystem::path shipped_path(const std::string& relative) {
  const std::filesystem::path in_source = std::filesystem::path(LLMSCOPE_SOURCE_DIR) / relative;
  if (std::filesystem::exists(in_source)) return in_source;
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? in_source : exe.parent_path().parent_path() / "share" / "llmscope" / relative;
}

int64_t peak_resident_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

int64_t weights_on_disk(const std::filesystem::path& folder) {
  int64_t total = 0;
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) return 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (entry.path().extension() == ".safetensors" && entry.is_regular_file(ec))
      total += static_cast<int64_t>(entry.file_size(ec));
  }
  return total;
}

std::string default_model_dir() {
  if (const char* chosen = std::getenv("LLMSCOPE_MODEL"); chosen && *chosen) return chosen;
  const auto builtin = shipped_path("models/brown-gpt2");
  return std::filesystem::exists(builtin / "config.json") ? builtin.string() : std::string();
}

void add_host_options(po::options_description& options) {
  const std::string model = default_model_dir();
  options.add_options()("model,m", po::value<std::string>()->default_value(model),
                        "model folder or hub name for model.load() (default: the built-in model)")(
      "dtype", po::value<std::string>()->default_value("float32"), "float32 | bfloat16 | float16")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:N")(
      "plugin-path", po::value<std::vector<std::string>>()->composing(),
      "extra plugin folder (repeatable)")(
      "timeout", po::value<double>()->default_value(0),
      "stop a script (run, lesson run) after this many seconds, with a message and exit code 124 "
      "(0: no limit)")(
      "max-memory", po::value<std::string>(),
      "cap the memory CPU tensors and the script's Lua values may take (512M, 8G, ...): an "
      "allocation past it is an error");
}

lua::HostOptions host_options(const po::variables_map& vm) {
  lua::HostOptions options;
  options.model_dir = vm["model"].as<std::string>();
  options.load.dtype = parse_dtype(vm["dtype"].as<std::string>());
  options.load.device = parse_device(vm["device"].as<std::string>());
  options.quiet = spdlog::get_level() >= spdlog::level::err;
  if (vm.count("plugin-path")) {
    for (const auto& p : vm["plugin-path"].as<std::vector<std::string>>())
      options.plugin_path.emplace_back(p);
  }
  options.timeout_s = vm["timeout"].as<double>();
  if (!(options.timeout_s >= 0)) throw UsageError("--timeout must be 0 (no limit) or more seconds");
  if (vm.count("max-memory")) {
    try {
      cap_cpu_memory(parse_memory_size(vm["max-memory"].as<std::string>(), "--max-memory"));
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
  }
  return options;
}

std::pair<std::vector<std::string>, std::vector<std::string>> split_script_args(
    const std::vector<std::string>& all) {
  const auto split = std::find(all.begin(), all.end(), "--");
  std::vector<std::string> script(split == all.end() ? split : split + 1, all.end());
  return {std::vector<std::string>(all.begin(), split), std::move(script)};
}

std::filesystem::path timestamped_out_dir(const std::filesystem::path& name) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::ostringstream stamp;
  stamp << std::put_time(&local, "%Y%m%d-%H%M%S");
  // Runs started in the same second get distinct folders: each claims its own by creating it
  // (atomic), taking -2, -3... when the name is taken.
  const std::filesystem::path base = std::filesystem::path("out") / name / stamp.str();
  std::filesystem::create_directories(base.parent_path());
  for (int n = 1;; ++n) {
    const std::filesystem::path candidate =
        n == 1 ? base : std::filesystem::path(base.string() + "-" + std::to_string(n));
    std::error_code ec;
    if (std::filesystem::create_directory(candidate, ec)) return candidate;
    if (ec)
      throw Error("cannot create the output folder " + candidate.string() + ": " + ec.message());
  }
}

void add_model_options(po::options_description& options) {
  const std::string builtin = default_model_dir();
  auto* model = po::value<std::string>();
  if (builtin.empty()) {
    model->required();
  } else {
    model->default_value(builtin);
  }
  options.add_options()(
      "model,m", model,
      "model folder, or hub name (gpt2, EleutherAI/gpt-neo-125m@main) from the Hugging Face cache "
      "(default: the built-in model)")("dtype", po::value<std::string>()->default_value("float32"),
                                       "float32 | bfloat16 | float16")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu | cuda | cuda:N");
}

std::unique_ptr<Model> load_model_from(const po::variables_map& vm) {
  LoadOptions options;
  options.dtype = parse_dtype(vm["dtype"].as<std::string>());
  options.device = parse_device(vm["device"].as<std::string>());
  return load_model(vm["model"].as<std::string>(), options);
}

void add_text_or_ids_options(po::options_description& options) {
  options.add_options()("text,t", po::value<std::string>(),
                        "input text (needs the model's tokenizer)")(
      "ids", po::value<std::string>(), "input token ids, comma-separated: 1,2,3");
}

std::vector<int64_t> parse_id_list(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto first = item.find_first_not_of(" \t");
    auto last = item.find_last_not_of(" \t");
    if (first == std::string::npos) throw UsageError("--ids: empty entry in '" + text + "'");
    item = item.substr(first, last - first + 1);
    size_t used = 0;
    int64_t value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size())
      throw UsageError("--ids: '" + item + "' is not an integer (expected e.g. 1,2,3)");
    ids.push_back(value);
  }
  if (ids.empty()) throw UsageError("--ids: no ids given (expected e.g. 1,2,3)");
  return ids;
}

at::Tensor input_ids_from(const po::variables_map& vm, const Tokenizer* tokenizer,
                          bool allow_special) {
  const bool text = vm.count("text") > 0, ids = vm.count("ids") > 0;
  if (text == ids) throw UsageError("give exactly one of --text and --ids");
  std::vector<int64_t> tokens;
  if (ids) {
    tokens = parse_id_list(vm["ids"].as<std::string>());
  } else {
    if (!tokenizer) {
      throw Error(
          "--text needs a tokenizer, and the model folder has none (tokenizer.json, "
          "tokenizer.model, vocab.json + merges.txt or vocab.txt); pass --ids instead");
    }
    tokens = tokenizer->encode(vm["text"].as<std::string>(), EncodeOptions{allow_special});
    if (tokens.empty()) throw Error("--text: the text encodes to no tokens");
  }
  return at::tensor(tokens, at::kLong).unsqueeze(0);
}

}  // namespace llmscope::cli
