// A well-formed plugin for the tests: functions that throw or crash, marshal every value type, and
// install a native hook that must keep the plugin loaded while the model has it.
#include <llmscope/plugin.hpp>

#include <atomic>
#include <csignal>
#include <stdexcept>

using namespace llmscope::plugin;

namespace {
std::atomic<int64_t> hook_calls{0};
}

LLMSCOPE_PLUGIN("testing", "2.1.0", "Plugin used by llmscope's own tests") {
  module.def("boom", "boom() -> never returns: throws std::runtime_error",
             []() -> int64_t { throw std::runtime_error("something broke inside"); });
  module.def("crash",
             "crash() -> never returns: the process dies of SIGSEGV, as a plugin bug would",
             []() -> int64_t {
               std::raise(SIGSEGV);
               return 0;
             });
  module.def("torch_boom", "torch_boom() -> never returns: a libtorch error",
             [] { return at::zeros({2}).view({3}); });
  module.def("echo", "echo(value) -> value: returns its argument unchanged",
             [](const Value& v) { return v; });
  module.def("add", "add(a, b) -> number", [](double a, double b) { return a + b; });
  module.def("count", "count(list) -> integer: the number of items",
             [](const List& items) { return static_cast<int64_t>(items.size()); });
  module.def("optional", "optional(x?) -> string", [](std::optional<int64_t> x) {
    return x ? "got " + std::to_string(*x) : std::string("nothing");
  });
  module.def("ids", "ids(list of integers) -> tensor",
             [](const std::vector<int64_t>& v) { return at::tensor(v); });
  module.def("options", "options(opts) -> number: opts.scale * 2, with checked option names",
             [](const Table& opts) {
               check_options(opts, {"scale"}, 1);
               return option<double>(opts, "scale", 1.0, 1) * 2;
             });
  module.def("install_hook", "install_hook(model, site): a persistent native hook counting calls",
             [&module](const ModelPtr& model, const std::string& site) {
               module.hook(*model, site, [](const at::Tensor&, const llmscope::HookContext&) {
                 ++hook_calls;
                 return at::Tensor();
               });
             });
  module.def("hook_calls", "hook_calls() -> integer", [] { return hook_calls.load(); });
}
