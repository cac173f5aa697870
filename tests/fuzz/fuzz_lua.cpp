// Fuzz target for Lua source run by the host with the built-in model (models/brown-gpt2: small,
// with a tokenizer) as the default model and the in-tree plugins: whatever a script does with
// tensors, hooks, models, statistics and plugins must end in a Lua error at worst, never a crash.
// Each input gets a fresh host.
#include <dlfcn.h>
#include <unistd.h>

#include "fuzz_targets.hpp"
#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/lua/host.hpp"
#include "llmscope/memory_cap.hpp"

namespace llmscope::fuzz {

namespace fs = std::filesystem;

namespace {

// Scripts come from mutation, so they run without what could touch the machine beyond the
// scratch folder they start in: no processes, no deleting or renaming files, no exit, no loading
// of C libraries. (The model's own file writers stay: they write where they are told, here.)
constexpr const char* kSandbox = R"lua(
os.execute, os.remove, os.rename, os.exit, os.tmpname = nil, nil, nil, nil, nil
io.popen = nil
package.loadlib, package.cpath = nil, ""
-- Printing still formats every value (tensors' __tostring included), then drops the text.
print = function(...) for i = 1, select("#", ...) do tostring((select(i, ...))) end end
)lua";

// libFuzzer keeps reading the coverage counters of every instrumented library it has seen; a
// plugin unloaded when its host closes would leave it reading freed memory. Opening each in-tree
// plugin once with RTLD_NODELETE keeps them mapped for the process.
void pin_plugins() {
  const fs::path dir = fs::read_symlink("/proc/self/exe").parent_path() / "../lib/llmscope/plugins";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".so") {
      (void)dlopen(entry.path().c_str(), RTLD_NOW | RTLD_NODELETE);
    }
  }
}

}  // namespace

int fuzz_lua(const uint8_t* data, size_t size) {
  static const bool once = [] {
    // An absurd tensor is refused with a message under the cap, as --max-memory does.
    cap_cpu_memory(int64_t{1} << 30);
    pin_plugins();
    return true;
  }();
  (void)once;
  const fs::path dir = fresh_scratch("lua");
  fs::current_path(dir);
  lua::HostOptions options;
  options.model_dir = testing::golden_path("../../models/brown-gpt2").lexically_normal().string();
  options.out_dir = dir / "out";
  options.quiet = true;
  options.timeout_s = 5;
  try {
    lua::LuaHost host(options);
    host.run_string(kSandbox, "=sandbox");
    host.run_string(std::string(reinterpret_cast<const char*>(data), size), "=fuzz");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace llmscope::fuzz
