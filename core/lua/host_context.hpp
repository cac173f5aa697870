// What the host keeps for its bindings, reachable from any lua_State of the host.
#pragma once

#include <memory>

#include "binding.hpp"
#include "llmscope/lua/host.hpp"
#include "llmscope/plugin_host.hpp"
#include "llmscope/report.hpp"

namespace llmscope::lua {

struct HostContext {
  HostOptions options;
  // The thread (main state or coroutine) of the binding call that is running a forward pass:
  // hooks call their Lua functions on it.
  lua_State* current_thread = nullptr;
  // The lease of the pass in progress; activations handed to hooks carry it.
  std::shared_ptr<ActivationLease> current_lease;
  // Created on first use; destroyed with the context, after every Lua object (shutdown order:
  // Lua values -> plugin instances -> libraries).
  std::unique_ptr<plugin::PluginHost> plugins;
  // The run's report (null without an output folder) and what its manifest says.
  std::unique_ptr<Report> report;
  RunManifest manifest;
  std::vector<std::string> model_dirs;  // every folder model.load() read, in order
  int figure_count = 0;                 // names unnamed figures figure-1, figure-2, ...
  int64_t progress_bars = 0;            // bars made so far: a bar's name among the job's counters
};

}  // namespace llmscope::lua
