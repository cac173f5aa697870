// LuaHost: one Lua 5.4 state with llmscope's modules (tensor, model, optim, log, progress,
// plugins)
// loaded, running scripts headless or as a REPL. Errors come back as "script.lua:12: message"
// plus a traceback; no C++ exception ever crosses into Lua, and Ctrl-C stops a running script.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "llmscope/model.hpp"

struct lua_State;

namespace llmscope::lua {

struct HostOptions {
  std::string model_dir;          // what model.load() loads when given no folder
  LoadOptions load;               // dtype and device for model.load()
  std::filesystem::path out_dir;  // where scripts should write results (llmscope.out_dir)
  bool quiet = false;             // no progress bars
  std::vector<std::filesystem::path> plugin_path;  // searched before the default plugin folders
  // A script running longer stops with a Lua error at its next Lua instruction; one stuck in a
  // native call past the limit plus a grace period ends the process (exit 124). 0: no limit.
  double timeout_s = 0;
};

class LuaHost {
 public:
  explicit LuaHost(HostOptions options = {});
  ~LuaHost();
  LuaHost(const LuaHost&) = delete;
  LuaHost& operator=(const LuaHost&) = delete;

  // Runs a script with its arguments (the global `arg`: arg[0] the script, arg[1..] the rest;
  // also passed as `...`). Returns 0 on success; on error prints the message and traceback to
  // stderr and returns 1 (130 when interrupted by Ctrl-C, 143 by SIGTERM, 124 when stopped by
  // timeout_s).
  int run_file(const std::filesystem::path& script, const std::vector<std::string>& args);
  // Runs a chunk of code; throws llmscope::Error with the Lua message on failure.
  void run_string(const std::string& code, const std::string& chunk_name = "=(string)");
  // An interactive prompt with line editing and history (libedit). Returns on end of input.
  int repl();
  // Makes `tensor` available to scripts as the global `name`.
  void set_global(const std::string& name, const at::Tensor& tensor);

  lua_State* state() const { return L_; }

 private:
  lua_State* L_;
};

}  // namespace llmscope::lua
