// Model loading: reads a checkpoint folder, finds the architecture for config.json in the table
// (architectures.cpp), and attaches the tokenizer found beside the weights.
#include <spdlog/spdlog.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "llmscope/error.hpp"
#include "llmscope/hub.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"
#include "models/architectures.hpp"

namespace llmscope {

struct Model::State {
  State(HookPointTable table, std::filesystem::path source_path)
      : hook_points(std::move(table)), hooks(&hook_points), source(std::move(source_path)) {}
  HookPointTable hook_points;
  HookRegistry hooks;  // points into hook_points: State never moves
  std::shared_ptr<const Tokenizer> tokenizer;
  std::filesystem::path source;
};

Model::Model(HookPointTable table, std::filesystem::path source)
    : state_(std::make_unique<State>(std::move(table), std::move(source))) {}
Model::~Model() = default;

ForwardOutput Model::forward_cached(const ForwardInput&, const ForwardOptions&, KvCache&) {
  throw Error("forward_cached: this " + architecture() + " model has no key/value cache");
}

at::Tensor Model::unembed(const at::Tensor&, bool) const {
  throw Error("unembed: this " + architecture() + " model has no output head");
}

const HookPointTable& Model::hook_points() const { return state_->hook_points; }
HookHandle Model::hook(const std::string& name, HookFn fn) {
  return state_->hooks.add(name, std::move(fn));
}
void Model::clear_hooks() { state_->hooks.clear(); }
const HookRegistry& Model::persistent_hooks() const { return state_->hooks; }
const Tokenizer* Model::tokenizer() const { return state_->tokenizer.get(); }
void Model::set_tokenizer(std::shared_ptr<const Tokenizer> tokenizer) {
  state_->tokenizer = std::move(tokenizer);
}
const std::filesystem::path& Model::source() const { return state_->source; }

int64_t Model::num_parameters() const {
  int64_t total = 0;
  for (const auto& [name, tensor] : named_parameters()) total += tensor.numel();
  return total;
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  throw Error("unknown dtype '" + name + "' (expected float32, bfloat16 or float16)");
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return "float32";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kDouble:
      return "float64";
    default:
      return c10::toString(type);
  }
}

at::Device parse_device(const std::string& name) {
  at::Device device(at::kCPU);
  try {
    device = at::Device(name);
  } catch (const c10::Error&) {
    throw Error("unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    throw Error("device '" + name +
                "' asked for, but this build of libtorch has no CUDA (or no GPU is visible)");
  }
  if (!device.is_cpu() && !device.is_cuda()) {
    throw Error("device '" + name + "' is not supported (expected cpu or cuda)");
  }
  return device;
}

namespace {

// config.json parsed, for load_model and random_model alike.
nlohmann::json read_config(const std::filesystem::path& config_path, const LoadOptions& options) {
  if (options.dtype == at::kHalf && options.device.is_cpu()) {
    throw Error(
        "float16 needs a CUDA device: this libtorch has no CPU kernels for float16 "
        "matmul and layer_norm (use bfloat16 or float32 on the CPU)");
  }
  std::ifstream in(config_path);
  if (!in) throw_file_error(config_path, "cannot open (every model folder needs a config.json)");
  nlohmann::json config;
  try {
    in >> config;
  } catch (const nlohmann::json::exception& e) {
    throw_file_error(config_path, std::string("not valid JSON: ") + e.what());
  }
  if (!config.is_object()) throw_file_error(config_path, "expected a JSON object");
  return config;
}

const models::Architecture* architecture_of(const nlohmann::json& config,
                                            const std::filesystem::path& config_path) {
  const std::string model_type = models::model_type_of(config);
  const models::Architecture* arch = models::find_architecture(model_type);
  if (!arch) {
    throw_file_error(config_path, "model_type '" + model_type + "' is not supported (expected " +
                                      models::supported_list() + ")");
  }
  return arch;
}

}  // namespace

std::unique_ptr<Model> random_model(const std::filesystem::path& config_json, uint64_t seed,
                                    const LoadOptions& options) {
  const nlohmann::json config = read_config(config_json, options);
  const models::Architecture* arch = architecture_of(config, config_json);
  models::Checkpoint checkpoint{config,  config_json.string(),      nullptr,
                                options, config_json.parent_path(), seed};
  return arch->load(checkpoint);
}

std::unique_ptr<Model> load_model(const std::filesystem::path& dir_or_name,
                                  const LoadOptions& options) {
  namespace fs = std::filesystem;
  // A folder wins; otherwise a hub name ("gpt2", "org/name@rev") resolves through the HF cache.
  const fs::path dir = fs::is_directory(dir_or_name) || !hub::is_model_ref(dir_or_name.string())
                           ? dir_or_name
                           : hub::resolve_model(hub::parse_model_ref(dir_or_name.string()));
  if (!fs::is_directory(dir)) {
    throw_file_error(
        dir, "not a folder (expected a model folder with config.json and model.safetensors)");
  }
  const auto config_path = dir / "config.json";
  const nlohmann::json config = read_config(config_path, options);
  const models::Architecture* arch = architecture_of(config, config_path);

  const auto weights_path = dir / "model.safetensors";
  const auto index_path = dir / "model.safetensors.index.json";
  if (!fs::exists(weights_path) && !fs::exists(index_path)) {
    if (fs::exists(dir / "pytorch_model.bin")) {
      throw_file_error(dir,
                       "has only pytorch_model.bin; convert it to safetensors first, e.g. in "
                       "Python: AutoModel.from_pretrained(dir).save_pretrained(dir, "
                       "safe_serialization=True)");
    }
    throw_file_error(weights_path,
                     "not found (expected the model's weights in safetensors format)");
  }

  // One file, or a sharded checkpoint whose index maps each tensor to its shard.
  const auto weights = fs::exists(weights_path)
                           ? SafetensorsSet(SafetensorsFile::open(weights_path))
                           : SafetensorsSet::open_index(index_path);
  std::unique_ptr<Model> model = arch->load({config, config_path.string(), &weights, options, dir});
  if (Tokenizer::exists_in(dir)) model->set_tokenizer(Tokenizer::load(dir));
  spdlog::debug("loaded {} from {}: {} parameters, {} on {}", model->architecture(), dir.string(),
                model->num_parameters(), dtype_name(model->dtype()), model->device().str());
  return model;
}

}  // namespace llmscope
