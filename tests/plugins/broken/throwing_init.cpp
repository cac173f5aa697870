// A plugin whose initialisation throws: the host must refuse it and keep running.
#include <llmscope/plugin.hpp>

#include <stdexcept>

LLMSCOPE_PLUGIN("throwing_init", "0.0.1", "init throws") {
  module.def("never", "never() -> nil", [] {});
  throw std::runtime_error("cannot find my data file");
}
