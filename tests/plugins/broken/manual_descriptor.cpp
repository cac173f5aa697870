// A plugin that writes its descriptor by hand, so a test can give it any ABI or libtorch
// version (set with -D at compile time). The factory is exported like LLMSCOPE_PLUGIN does.
#include <llmscope/plugin.hpp>

#ifndef ABI_MAJOR
#define ABI_MAJOR ::llmscope::plugin::kAbiMajor
#endif
#ifndef ABI_MINOR
#define ABI_MINOR ::llmscope::plugin::kAbiMinor
#endif
#ifndef TORCH_MAJOR
#define TORCH_MAJOR TORCH_VERSION_MAJOR
#endif
#ifndef CXX11_ABI
#define CXX11_ABI _GLIBCXX_USE_CXX11_ABI
#endif

extern "C" BOOST_SYMBOL_EXPORT const ::llmscope::plugin::Descriptor llmscope_plugin_descriptor;
extern "C" const ::llmscope::plugin::Descriptor llmscope_plugin_descriptor = {
    ABI_MAJOR, ABI_MINOR,   TORCH_MAJOR, TORCH_VERSION_MINOR,
    CXX11_ABI, PLUGIN_NAME, "0.0.1",     "a test plugin"};

#ifndef NO_FACTORY
static std::shared_ptr<::llmscope::plugin::Module> make_module() {
  auto module = std::make_shared<::llmscope::plugin::Module>();
  module->def("ping", "ping() -> string", [] { return std::string("pong"); });
  return module;
}
BOOST_DLL_ALIAS(make_module, llmscope_plugin_factory)
#endif
