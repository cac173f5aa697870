// Hooks: functions attached to hook points that observe an activation or return a replacement.
// Persistent hooks live in a model's HookRegistry until their handle removes them; scoped hooks
// come with one forward pass. Before a pass starts, HookRun gathers both into a per-site plan,
// so an unhooked site costs one branch, and it counts how often each hook fired.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llmscope/hook_points.hpp"

namespace llmscope {

struct HookContext {
  const HookPoint& point;   // the site (canonical name, aliases, layer)
  const std::string& name;  // the name the hook was registered under
};

// Returns an undefined tensor to leave the activation as it is, or a tensor of the same shape
// to replace it (converted to the activation's dtype and device if needed).
using HookFn = std::function<at::Tensor(const at::Tensor& activation, const HookContext& context)>;

struct NamedHook {
  std::string name;  // hook point name or alias; a glob ("blocks.*.mlp.hook_pre") hooks each match
  HookFn fn;
};

// A removable reference to a persistent hook. Copies refer to the same hook; removing twice, or
// after the model is gone, is harmless.
class HookHandle {
 public:
  HookHandle() = default;
  void remove();
  bool active() const;
  const std::string& name() const { return name_; }

  struct Slot;  // defined in hooks.cpp; shared by the registry and in-flight passes

 private:
  friend class HookRegistry;
  HookHandle(std::weak_ptr<Slot> slot, std::string name)
      : slot_(std::move(slot)), name_(std::move(name)) {}
  std::weak_ptr<Slot> slot_;
  std::string name_;
};

class HookRegistry {
 public:
  explicit HookRegistry(const HookPointTable* table) : table_(table) {}
  // Resolves `name` (or a glob) now, so typos fail at registration, not silently at run time.
  HookHandle add(const std::string& name, HookFn fn);
  void clear();
  size_t size() const;

 private:
  friend class HookRun;
  struct Entry {
    std::shared_ptr<HookHandle::Slot> slot;
    std::vector<int> sites;
  };
  const HookPointTable* table_;
  std::vector<Entry> entries_;
};

// How many times one hook ran during a pass.
struct HookFiring {
  std::string name;
  int64_t calls = 0;
};

// Activations captured during a pass, keyed by canonical site name; lookups accept aliases.
class ActivationCache {
 public:
  ActivationCache() = default;
  explicit ActivationCache(const HookPointTable* table) : table_(table) {}
  bool contains(const std::string& name) const;
  const at::Tensor& get(const std::string& name) const;  // throws naming the missing site
  void put(const std::string& canonical_name, at::Tensor value);
  const std::map<std::string, at::Tensor>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  const HookPointTable* table_ = nullptr;
  std::map<std::string, at::Tensor> entries_;
};

// The plan and bookkeeping of one forward pass.
class HookRun {
 public:
  HookRun(const HookPointTable& table, const HookRegistry* persistent,
          const std::vector<NamedHook>& scoped, const std::vector<std::string>& cache_names);

  bool wants(int site) const { return wanted_[static_cast<size_t>(site)]; }
  // Runs the site's hooks in registration order (persistent first) and caches the result.
  at::Tensor fire(int site, at::Tensor activation);

  std::vector<HookFiring> firings() const;
  ActivationCache take_cache() { return std::move(cache_); }

 private:
  struct Bound {
    const HookFn* fn;
    size_t counter;
  };
  const HookPointTable& table_;
  std::vector<char> wanted_;
  std::vector<std::vector<Bound>> by_site_;
  std::vector<char> cached_;
  std::vector<HookFiring> counters_;
  std::vector<HookFn> scoped_fns_;
  std::vector<std::shared_ptr<HookHandle::Slot>>
      pinned_;  // persistent hooks removed mid-pass stay valid
  ActivationCache cache_;
};

// Fires a site when anything is attached to it; otherwise one branch.
inline at::Tensor at_site(HookRun* run, int site, at::Tensor activation) {
  if (run == nullptr || !run->wants(site)) return activation;
  return run->fire(site, std::move(activation));
}

}  // namespace llmscope
