#include "llmscope/hooks.hpp"

#include <algorithm>
#include <sstream>

#include "llmscope/error.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope {

struct HookHandle::Slot {
  std::string name;
  HookFn fn;
  bool removed = false;
};

void HookHandle::remove() {
  if (auto slot = slot_.lock()) slot->removed = true;
}

bool HookHandle::active() const {
  auto slot = slot_.lock();
  return slot && !slot->removed;
}

namespace {

std::vector<int> resolve_sites(const HookPointTable& table, const std::string& name) {
  if (!has_glob_chars(name)) return {table.resolve(name)};
  auto sites = table.match(name);
  if (sites.empty()) throw Error("hook pattern '" + name + "' matches no hook point");
  return sites;
}

}  // namespace

HookHandle HookRegistry::add(const std::string& name, HookFn fn) {
  if (!fn) throw Error("hook for '" + name + "' has no function");
  auto sites = resolve_sites(*table_, name);
  // Drop entries whose handles were removed, so a long session does not accumulate them.
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [](const Entry& e) { return e.slot->removed; }),
                 entries_.end());
  auto slot = std::make_shared<HookHandle::Slot>();
  slot->name = name;
  slot->fn = std::move(fn);
  entries_.push_back(Entry{slot, std::move(sites)});
  return HookHandle(slot, name);
}

void HookRegistry::clear() {
  for (auto& entry : entries_) entry.slot->removed = true;
  entries_.clear();
}

size_t HookRegistry::size() const {
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(),
                                           [](const Entry& e) { return !e.slot->removed; }));
}

bool ActivationCache::contains(const std::string& name) const {
  if (entries_.count(name)) return true;
  if (table_) {
    if (auto id = table_->find(name)) return entries_.count(table_->at(*id).name) > 0;
  }
  return false;
}

const at::Tensor& ActivationCache::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() && table_) {
    if (auto id = table_->find(name)) it = entries_.find(table_->at(*id).name);
  }
  if (it == entries_.end()) {
    std::vector<std::string> names;
    for (const auto& [key, value] : entries_) names.push_back(key);
    std::string hint = names.empty() ? "the cache is empty"
                                     : "cached: " + join(closest_names(name, names, 3), ", ");
    throw Error("activation '" + name + "' was not cached (" + hint + ")");
  }
  return it->second;
}

void ActivationCache::put(const std::string& canonical_name, at::Tensor value) {
  entries_[canonical_name] = std::move(value);
}

HookRun::HookRun(const HookPointTable& table, const HookRegistry* persistent,
                 const std::vector<NamedHook>& scoped, const std::vector<std::string>& cache_names)
    : table_(table),
      wanted_(table.size(), 0),
      by_site_(table.size()),
      cached_(table.size(), 0),
      cache_(&table) {
  auto bind = [this](const std::string& name, const HookFn* fn, const std::vector<int>& sites) {
    size_t counter = counters_.size();
    counters_.push_back(HookFiring{name, 0});
    for (int site : sites) {
      by_site_[static_cast<size_t>(site)].push_back(Bound{fn, counter});
      wanted_[static_cast<size_t>(site)] = 1;
    }
  };
  if (persistent) {
    for (const auto& entry : persistent->entries_) {
      if (entry.slot->removed) continue;
      pinned_.push_back(entry.slot);
      bind(entry.slot->name, &entry.slot->fn, entry.sites);
    }
  }
  // Resolve every scoped name before binding any, so one typo fails the pass before it starts.
  std::vector<std::vector<int>> scoped_sites;
  scoped_sites.reserve(scoped.size());
  for (const auto& hook : scoped) {
    if (!hook.fn) throw Error("hook for '" + hook.name + "' has no function");
    scoped_sites.push_back(resolve_sites(table, hook.name));
  }
  scoped_fns_.reserve(scoped.size());
  for (size_t i = 0; i < scoped.size(); ++i) {
    scoped_fns_.push_back(scoped[i].fn);
    bind(scoped[i].name, &scoped_fns_.back(), scoped_sites[i]);
  }
  for (const auto& name : cache_names) {
    for (int site : resolve_sites(table, name)) {
      cached_[static_cast<size_t>(site)] = 1;
      wanted_[static_cast<size_t>(site)] = 1;
    }
  }
}

at::Tensor HookRun::fire(int site, at::Tensor activation) {
  const HookPoint& point = table_.at(site);
  for (const Bound& bound : by_site_[static_cast<size_t>(site)]) {
    HookFiring& firing = counters_[bound.counter];
    ++firing.calls;
    at::Tensor replacement = (*bound.fn)(activation, HookContext{point, firing.name});
    if (!replacement.defined()) continue;
    if (replacement.sizes() != activation.sizes()) {
      std::ostringstream msg;
      msg << "hook '" << firing.name << "' returned a tensor of shape " << replacement.sizes()
          << " for '" << point.name << "', expected " << activation.sizes() << " " << point.shape;
      throw Error(msg.str());
    }
    if (replacement.scalar_type() != activation.scalar_type() ||
        replacement.device() != activation.device()) {
      replacement = replacement.to(activation.device(), activation.scalar_type());
    }
    activation = std::move(replacement);
  }
  if (cached_[static_cast<size_t>(site)]) cache_.put(point.name, activation);
  return activation;
}

std::vector<HookFiring> HookRun::firings() const { return counters_; }

}  // namespace llmscope
