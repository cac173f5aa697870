#include "llmscope/plugin_api.hpp"

namespace llmscope::plugin {
namespace {

// Member order matters: the plugin's function is destroyed first, while its library is still
// mapped, and only then the reference that may unload the library.
struct KeepAliveHook {
  std::shared_ptr<void> library;
  HookFn fn;
  at::Tensor operator()(const at::Tensor& activation, const HookContext& context) const {
    return fn(activation, context);
  }
};

}  // namespace

HookHandle Module::hook(Model& model, const std::string& name, HookFn fn) {
  return model.hook(name, KeepAliveHook{keep_alive_ ? keep_alive_() : nullptr, std::move(fn)});
}

}  // namespace llmscope::plugin
