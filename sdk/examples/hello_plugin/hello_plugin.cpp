// An example third-party plugin: plain C++ functions over strings, numbers, tensors and
// models. It builds in this repository and, out of tree, against an installed llmscope SDK.
#include <llmscope/plugin.hpp>

using llmscope::plugin::ModelPtr;
using llmscope::plugin::Table;

LLMSCOPE_PLUGIN("hello", "1.0.0", "Example plugin: greetings, tensor scaling, a native hook") {
  module.def("greet", "greet(name) -> string: a greeting for `name`",
             [](const std::string& name) { return "hello, " + name + "!"; });

  module.def("scale", "scale(t, factor) -> tensor: t * factor, computed in C++",
             [](const at::Tensor& t, double factor) { return t * factor; });

  module.def(
      "mean_activation",
      "mean_activation(model, ids, site) -> number: mean of a site's activation over a pass\n"
      "Runs one forward pass with a native (C++) observer hook on `site` (a hook point name or\n"
      "alias such as blocks.0.mlp.hook_post), so the activation never goes through Lua.",
      [](const ModelPtr& model, const at::Tensor& ids, const std::string& site) {
        double mean = 0;
        llmscope::ForwardOptions options;
        options.hooks.push_back(
            {site, [&mean](const at::Tensor& act, const llmscope::HookContext&) {
               mean = act.mean().item<double>();
               return at::Tensor();
             }});
        at::NoGradGuard no_grad;
        model->forward({ids}, options);
        return mean;
      });

  module.def("describe",
             "describe(options) -> table: echoes option types back, for marshalling tests",
             [](const Table& options) {
               Table out;
               for (const auto& [key, value] : options) out[key] = value.type_name();
               return out;
             });
}
