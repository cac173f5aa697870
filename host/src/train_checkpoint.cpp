// Checkpoints of a training run (llmscope/training.hpp): out/checkpoint-<step>/ with config.json,
// model.safetensors (float32), optimizer.safetensors (AdamW's moments), recipe.json and
// state.json (step, sampler, losses so far), written under a temporary name and renamed whole.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "base/file_reading.hpp"
#include "llmscope/atomic_file.hpp"
#include "llmscope/error.hpp"
#include "llmscope/safetensors.hpp"
#include "llmscope/training.hpp"

namespace llmscope {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kPrefix = "checkpoint-";

// The step of a folder named checkpoint-<step>, or -1.
int64_t checkpoint_step(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (name.rfind(kPrefix, 0) != 0 || name.size() == std::string(kPrefix).size()) return -1;
  int64_t step = 0;
  for (size_t i = std::string(kPrefix).size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || step > (int64_t{1} << 50)) return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

std::vector<std::pair<int64_t, fs::path>> checkpoints_of(const fs::path& out) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(out, ec)) {
    const int64_t step = checkpoint_step(entry.path());
    if (step >= 0 && entry.is_directory()) found.emplace_back(step, entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

void save_checkpoint(const Model& model, const TrainState& state, const TrainRecipe& recipe,
                     const fs::path& out) {
  const fs::path final_dir = out / (kPrefix + std::to_string(state.step));
  const fs::path temp = temp_path_beside(final_dir);
  fs::create_directories(temp);
  try {
    if (fs::exists(out / "config.json")) fs::copy_file(out / "config.json", temp / "config.json");
    save_model_weights(model, temp, at::kFloat);
    std::vector<std::pair<std::string, at::Tensor>> moments;
    for (const auto& [name, m] : state.first_moment) {
      moments.emplace_back("first_moment." + name, m.to(at::kCPU));
    }
    for (const auto& [name, v] : state.second_moment) {
      moments.emplace_back("second_moment." + name, v.to(at::kCPU));
    }
    save_safetensors(temp / "optimizer.safetensors", moments);
    write_file_atomic(temp / "recipe.json", recipe.to_json_text() + "\n");
    const json saved = {{"step", state.step},
                        {"sampler", state.sampler},
                        {"train_losses", state.so_far.train_losses},
                        {"validation_curve", state.so_far.validation_curve},
                        {"tokens_seen", state.so_far.tokens_seen}};
    write_file_atomic(temp / "state.json", saved.dump() + "\n");
    fs::remove_all(final_dir);  // a stale folder of the same step from an abandoned run
    fs::rename(temp, final_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(temp, ec);
    throw;
  }
  for (const auto& [step, dir] : checkpoints_of(out)) {
    if (step != state.step) fs::remove_all(dir);
  }
}

fs::path latest_checkpoint(const fs::path& out) {
  const auto found = checkpoints_of(out);
  return found.empty() ? fs::path() : found.back().second;
}

TrainState load_checkpoint_state(const fs::path& checkpoint, const TrainRecipe& recipe,
                                 at::Device device) {
  const TrainRecipe saved = TrainRecipe::from_file(checkpoint / "recipe.json");
  if (saved.to_json_text() != recipe.to_json_text()) {
    throw_file_error(checkpoint / "recipe.json",
                     "the checkpoint was written by another recipe; resume with the same recipe "
                     "and --steps/--threads, or start over with --force");
  }
  const fs::path state_path = checkpoint / "state.json";
  const json saved_state = detail::parse_json(state_path, "a training state");
  try {
    TrainState state;
    state.step = saved_state.at("step").get<int64_t>();
    state.sampler = saved_state.at("sampler").get<std::string>();
    state.so_far.train_losses = saved_state.at("train_losses").get<std::vector<double>>();
    state.so_far.validation_curve =
        saved_state.at("validation_curve").get<std::vector<std::pair<int64_t, double>>>();
    state.so_far.tokens_seen = saved_state.at("tokens_seen").get<int64_t>();
    if (state.step != checkpoint_step(checkpoint) ||
        static_cast<int64_t>(state.so_far.train_losses.size()) != state.step) {
      throw_file_error(state_path, "step " + std::to_string(state.step) +
                                       " does not match the folder's name and losses");
    }
    const auto moments = SafetensorsFile::open(checkpoint / "optimizer.safetensors");
    for (const auto& entry : moments.entries()) {
      auto tensor = moments.load(entry.name, at::kFloat, device).clone();
      if (entry.name.rfind("first_moment.", 0) == 0) {
        state.first_moment[entry.name.substr(13)] = tensor;
      } else if (entry.name.rfind("second_moment.", 0) == 0) {
        state.second_moment[entry.name.substr(14)] = tensor;
      }
    }
    return state;
  } catch (const json::exception& e) {
    throw_file_error(state_path, std::string("not a training state: ") + e.what());
  }
}

void remove_checkpoints(const fs::path& out) {
  for (const auto& [step, dir] : checkpoints_of(out)) fs::remove_all(dir);
}

}  // namespace llmscope
