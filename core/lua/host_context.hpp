// What the host keeps for its bindings, reachable from any lua_State of the host.
#pragma once

#include <memory>

#include "binding.hpp"
#include "llmscope/lua/host.hpp"

namespace llmscope::lua {

struct HostContext {
  HostOptions options;
  // The thread (main state or coroutine) of the binding call that is running a forward pass:
  // hooks call their Lua functions on it.
  lua_State* current_thread = nullptr;
  // The lease of the pass in progress; activations handed to hooks carry it.
  std::shared_ptr<ActivationLease> current_lease;
};

}  // namespace llmscope::lua
