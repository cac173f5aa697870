#include "llmscope/hook_points.hpp"

#include "llmscope/error.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope {
std::string HookPointTable::expand(std::string_view pattern, int64_t layer) {
  std::string out(pattern);
  const std::string_view key = "{L}";
  for (size_t at = out.find(key); at != std::string::npos; at = out.find(key, at)) {
    out.replace(at, key.size(), std::to_string(layer));
  }
  return out;
}

HookPointTable::HookPointTable(const std::vector<HookPointSpec>& before,
                               const std::vector<HookPointSpec>& block, int n_layer,
                               const std::vector<HookPointSpec>& after)
    : before_count_(static_cast<int>(before.size())),
      block_count_(static_cast<int>(block.size())),
      n_layer_(n_layer) {
  auto add = [this](const HookPointSpec& spec, int layer) {
    HookPoint point;
    point.id = static_cast<int>(points_.size());
    point.layer = layer;
    point.shape = spec.shape;
    if (spec.path) {
      point.name = expand(spec.path, layer);
      if (spec.alias) point.aliases.push_back(expand(spec.alias, layer));
    } else {
      point.name = expand(spec.alias, layer);
    }
    by_name_.emplace(point.name, point.id);
    for (const auto& alias : point.aliases) by_name_.emplace(alias, point.id);
    points_.push_back(std::move(point));
  };
  for (const auto& spec : before) add(spec, -1);
  for (int layer = 0; layer < n_layer; ++layer) {
    for (const auto& spec : block) add(spec, layer);
  }
  for (const auto& spec : after) add(spec, -1);
}

std::optional<int> HookPointTable::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

int HookPointTable::resolve(std::string_view name) const {
  if (auto id = find(name)) return *id;
  auto near = closest_names(name, all_names(), 3);
  for (auto& n : near) n = "'" + n + "'";
  throw Error("unknown hook point '" + std::string(name) + "' (did you mean " + join(near, ", ") +
              "? `llmscope info --hooks` lists them all)");
}

std::vector<int> HookPointTable::match(std::string_view pattern) const {
  std::vector<int> ids;
  for (const auto& point : points_) {
    bool hit = glob_match(pattern, point.name);
    for (const auto& alias : point.aliases) hit = hit || glob_match(pattern, alias);
    if (hit) ids.push_back(point.id);
  }
  return ids;
}

std::vector<std::string> HookPointTable::all_names() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& point : points_) {
    names.push_back(point.name);
    names.insert(names.end(), point.aliases.begin(), point.aliases.end());
  }
  return names;
}

}  // namespace llmscope
