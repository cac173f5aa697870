// Writing an llmscope plugin: include this header and declare the plugin once with
//
//   LLMSCOPE_PLUGIN("hello", "1.0.0", "Greets people and scales tensors") {
//     module.def("greet", "greet(name) -> string: a greeting", [](std::string name) {
//       return "hello, " + name;
//     });
//   }
//
// The macro exports the descriptor the host checks before running any plugin code (ABI
// version, libtorch version, C++ ABI, name, version, description) and the factory that builds
// the Module (exported with BOOST_DLL_ALIAS). Functions take and return plain C++ types; see
// llmscope/plugin_api.hpp; options every plugin shares (layers, sites) are read by
// llmscope/plugin_args.hpp, batched passes read at sites by llmscope/plugin_passes.hpp. Build with
// llmscope_add_plugin() from find_package(llmscope).
#pragma once

#ifndef BOOST_DLL_USE_STD_FS
#define BOOST_DLL_USE_STD_FS
#endif
#include <torch/version.h>
#include <boost/dll/alias.hpp>

#include "llmscope/plugin_api.hpp"
#include "llmscope/plugin_args.hpp"
#include "llmscope/plugin_inputs.hpp"
#include "llmscope/plugin_passes.hpp"

#define LLMSCOPE_PLUGIN(NAME, VERSION, DESCRIPTION)                                               \
  static void llmscope_plugin_init(::llmscope::plugin::Module& module);                           \
  extern "C" BOOST_SYMBOL_EXPORT const ::llmscope::plugin::Descriptor llmscope_plugin_descriptor; \
  extern "C" const ::llmscope::plugin::Descriptor llmscope_plugin_descriptor = {                  \
      ::llmscope::plugin::kAbiMajor,                                                              \
      ::llmscope::plugin::kAbiMinor,                                                              \
      TORCH_VERSION_MAJOR,                                                                        \
      TORCH_VERSION_MINOR,                                                                        \
      _GLIBCXX_USE_CXX11_ABI,                                                                     \
      NAME,                                                                                       \
      VERSION,                                                                                    \
      DESCRIPTION};                                                                               \
  static std::shared_ptr<::llmscope::plugin::Module> llmscope_plugin_make_module() {              \
    auto module = std::make_shared<::llmscope::plugin::Module>();                                 \
    llmscope_plugin_init(*module);                                                                \
    return module;                                                                                \
  }                                                                                               \
  BOOST_DLL_ALIAS(llmscope_plugin_make_module, llmscope_plugin_factory)                           \
  static void llmscope_plugin_init(::llmscope::plugin::Module& module)
