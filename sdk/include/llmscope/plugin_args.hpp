// Arguments every plugin takes, read by one set of rules so that an option means the same in
// every plugin (docs/howto-write-plugin.md, "Layers and sites"):
//   layers  an integer or a list of integers, 0-based, negative ones counting from the end
//           (-1 is the last layer); a layer outside the model, one given twice, or an empty list
//           is an error naming the option; absent: every layer (or the plugin's default).
//   sites   a hook point name where "{L}" stands for the layer, resolved through the model's
//           hook-point table, so aliases work and a typo gets the closest names.
//   batch_size  rows (or interventions) per forward pass, at least 1; the default is the
//           plugin's.
// Header-only, on the public plugin API.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "llmscope/hook_points.hpp"
#include "llmscope/model.hpp"
#include "llmscope/plugin_api.hpp"

namespace llmscope::plugin {

// `layer` as an index of `model` (negative from the end); `what` names the option in errors.
inline int64_t layer_index(const Model& model, int64_t layer, int arg, const std::string& what) {
  const int64_t n = model.n_layer();
  if (layer < -n || layer >= n) {
    throw ArgumentError(arg, what + ": " + std::to_string(layer) + " is not a layer of this " +
                                 std::to_string(n) + "-layer model (0 to " + std::to_string(n - 1) +
                                 ", or -" + std::to_string(n) + " to -1 from the end)");
  }
  return layer < 0 ? layer + n : layer;
}

// A layer list from a Value: an integer or a list of integers (see the rules above).
inline std::vector<int64_t> layers(const Model& model, const Value& value, int arg,
                                   const std::string& what) {
  std::vector<int64_t> given;
  if (std::holds_alternative<int64_t>(value.data) || std::holds_alternative<double>(value.data)) {
    given.push_back(FromValue<int64_t>::get(value, arg));
  } else if (std::holds_alternative<List>(value.data)) {
    given = FromValue<std::vector<int64_t>>::get(value, arg);
  } else if (const auto* table = std::get_if<Table>(&value.data); table && table->empty()) {
    // An empty Lua table arrives as a table: it is the empty list.
  } else {
    throw ArgumentError(arg,
                        what + ": a layer or a list of layers expected, got " + value.type_name());
  }
  if (given.empty()) throw ArgumentError(arg, what + " is empty");
  std::vector<int64_t> out;
  for (int64_t l : given) {
    const int64_t layer = layer_index(model, l, arg, what);
    if (std::find(out.begin(), out.end(), layer) != out.end()) {
      throw ArgumentError(arg, what + ": layer " + std::to_string(layer) + " is given twice");
    }
    out.push_back(layer);
  }
  return out;
}

// The option `key` as layers; absent (or nil): `fallback`, and with no fallback every layer.
inline std::vector<int64_t> layers_option(const Model& model, const Table& opts,
                                          const std::string& key, int arg,
                                          std::optional<std::vector<int64_t>> fallback = {}) {
  auto it = opts.find(key);
  if (it == opts.end() || it->second.is_nil()) {
    if (fallback) return *fallback;
    std::vector<int64_t> all;
    for (int64_t l = 0; l < model.n_layer(); ++l) all.push_back(l);
    return all;
  }
  return layers(model, it->second, arg, "option '" + key + "'");
}

// The option `key` as one layer (negative from the end), `fallback` when absent.
inline int64_t layer_option(const Model& model, const Table& opts, const std::string& key,
                            int64_t fallback, int arg) {
  return layer_index(model, option<int64_t>(opts, key, fallback, arg), arg, "option '" + key + "'");
}

// A hook point of the model, resolved from a name or a template.
struct Site {
  std::string name;  // as asked for, with {L} replaced
  int id = -1;       // in model.hook_points()
  int layer = -1;    // the block the site belongs to; -1 outside the blocks
};

// `pattern` with every "{L}" replaced by `layer` (HookPointTable::expand), resolved through the
// model's hook-point table.
// `what` names the option in errors (an unknown name lists the closest ones).
inline Site site_at(const Model& model, const std::string& pattern, int64_t layer, int arg,
                    const std::string& what) {
  Site site;
  site.name = HookPointTable::expand(pattern, layer);
  try {
    site.id = model.hook_points().resolve(site.name);
  } catch (const Error& e) {
    throw ArgumentError(arg, what + ": " + e.what());
  }
  site.layer = model.hook_points().at(site.id).layer;
  return site;
}

// The template at each of `layers`; a template without {L} names one site, so it cannot serve
// several layers.
inline std::vector<Site> sites_at(const Model& model, const std::string& pattern,
                                  const std::vector<int64_t>& layers, int arg,
                                  const std::string& what) {
  if (pattern.find("{L}") == std::string::npos && layers.size() > 1) {
    throw ArgumentError(arg, what + ": '" + pattern +
                                 "' has no {L} for the layer, so it cannot name a site in each of "
                                 "several layers");
  }
  std::vector<Site> out;
  for (int64_t layer : layers) out.push_back(site_at(model, pattern, layer, arg, what));
  return out;
}

// The option `key` as sites: a hook point name or a list of them, each "{L}" template expanded
// over the layers of option `layers_key` (default every layer), a name without {L} read once.
// nullopt when `key` is absent; `layers_key` without `key` is an error (it would pick nothing).
inline std::optional<std::vector<Site>> sites_option(const Model& model, const Table& opts,
                                                     const std::string& key,
                                                     const std::string& layers_key, int arg) {
  const auto given = opts.find(key);
  if (given == opts.end() || given->second.is_nil()) {
    const auto layers_given = opts.find(layers_key);
    if (layers_given != opts.end() && !layers_given->second.is_nil()) {
      throw ArgumentError(arg, "option '" + layers_key + "' picks the layers of a '" + key +
                                   "' template; give '" + key + "' with it");
    }
    return std::nullopt;
  }
  std::vector<std::string> patterns;
  if (const auto* one = std::get_if<std::string>(&given->second.data)) {
    patterns.push_back(*one);
  } else {
    patterns = FromValue<std::vector<std::string>>::get(given->second, arg);
  }
  if (patterns.empty()) throw ArgumentError(arg, "option '" + key + "' is empty");
  const auto layers = layers_option(model, opts, layers_key, arg);
  std::vector<Site> out;
  for (const auto& pattern : patterns) {
    const bool templated = pattern.find("{L}") != std::string::npos;
    const auto found = sites_at(model, pattern, templated ? layers : std::vector<int64_t>{0}, arg,
                                "option '" + key + "'");
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

// Option "batch_size": rows per pass, at least 1, `fallback` when absent.
inline int64_t batch_size_option(const Table& opts, int64_t fallback, int arg) {
  const int64_t size = option<int64_t>(opts, "batch_size", fallback, arg);
  if (size < 1) {
    throw ArgumentError(arg, "option 'batch_size' must be at least 1, got " + std::to_string(size));
  }
  return size;
}

}  // namespace llmscope::plugin
