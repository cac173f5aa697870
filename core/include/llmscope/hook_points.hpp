// Hook points: the named sites of a model where activations can be read or replaced.
// Each architecture declares one table (Hugging Face module paths plus TransformerLens-style
// aliases, with {L} standing for the layer); HookPointTable expands it for a model's depth,
// resolves names and aliases to site ids, and suggests the closest names for typos.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmscope {

// One row of an architecture's table. `path` is the Hugging Face module path (with ":input" for
// the module's input); nullptr for sites no module owns (per-head q/k/v, attention scores).
// `alias` is the portable TransformerLens name, or nullptr.
struct HookPointSpec {
  const char* path;
  const char* alias;
  const char* shape;  // documentation: "[batch, pos, d_model]"
};

struct HookPoint {
  int id = 0;
  std::string name;                  // canonical: the module path, else the alias
  std::vector<std::string> aliases;  // other names of the same site
  int layer = -1;                    // -1 outside the blocks
  std::string shape;
};

class HookPointTable {
 public:
  HookPointTable() = default;
  // Sites before the blocks, one set per block (repeated n_layer times), and after the blocks.
  HookPointTable(const std::vector<HookPointSpec>& before, const std::vector<HookPointSpec>& block,
                 int n_layer, const std::vector<HookPointSpec>& after);

  size_t size() const { return points_.size(); }
  const HookPoint& at(int id) const { return points_.at(static_cast<size_t>(id)); }
  const std::vector<HookPoint>& points() const { return points_; }

  // Site ids in the order forward() reaches them; `local` indexes the architecture's table.
  int before_id(int local) const { return local; }
  int block_id(int layer, int local) const { return before_count_ + layer * block_count_ + local; }
  int after_id(int local) const { return before_count_ + n_layer_ * block_count_ + local; }

  // `pattern` with every "{L}" replaced by `layer`: the one expansion of site templates, used for
  // the tables and for the templates plugins take as options ("blocks.{L}.mlp.hook_post").
  static std::string expand(std::string_view pattern, int64_t layer);

  std::optional<int> find(std::string_view name) const;
  // Throws llmscope::Error: "unknown hook point 'x' (did you mean 'a', 'b'?)".
  int resolve(std::string_view name) const;
  // Names (canonical or alias) matching a glob; each site once, in table order.
  std::vector<int> match(std::string_view pattern) const;
  // Every name that resolves (canonical names and aliases), in table order.
  std::vector<std::string> all_names() const;

 private:
  std::vector<HookPoint> points_;
  std::unordered_map<std::string, int> by_name_;
  int before_count_ = 0;
  int block_count_ = 0;
  int n_layer_ = 0;
};

}  // namespace llmscope
