#include "llmscope/lua/host.hpp"

#include <editline/readline.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>

#include "host_context.hpp"
#include "llmscope/error.hpp"
#include "llmscope/memory_cap.hpp"
#include "llmscope/stop_signals.hpp"

namespace llmscope::lua {
namespace {

const char* const kHostKey = "llmscope.host";

// ---- Ctrl-C and SIGTERM: the signal handler only arms a Lua hook; the hook raises the error
// from Lua, so the script's <close> handlers run and the report is written. ----
lua_State* interruptible = nullptr;

void interrupt_hook(lua_State* L, lua_Debug*) {
  lua_sethook(L, nullptr, 0, 0);
  luaL_error(L, StopSignals::received() == SIGTERM ? "terminated (SIGTERM)" : "interrupted");
}

void arm_interrupt_hook(int) {
  if (interruptible)
    lua_sethook(interruptible, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

class InterruptScope {
 public:
  explicit InterruptScope(lua_State* L) : signals_(arm_interrupt_hook) { interruptible = L; }
  ~InterruptScope() { interruptible = nullptr; }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  StopSignals signals_;
};

// ---- --timeout: a count hook stops Lua code past the deadline; a watchdog ends the process when
// a native call (a long forward pass, a plugin) outlasts the deadline by a grace period. ----
using Clock = std::chrono::steady_clock;
Clock::time_point deadline;
double timeout_seconds = 0;
bool timed_out = false;

void deadline_hook(lua_State* L, lua_Debug*) {
  if (Clock::now() < deadline) return;
  timed_out = true;
  lua_sethook(L, nullptr, 0, 0);
  luaL_error(L, "stopped by --timeout: the script ran for more than %f s", timeout_seconds);
}

class DeadlineScope {
 public:
  DeadlineScope(lua_State* L, double seconds) : L_(L) {
    timed_out = false;
    if (seconds <= 0) return;
    active_ = true;
    timeout_seconds = seconds;
    const auto span = [](double s) {
      return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
    };
    deadline = Clock::now() + span(seconds);
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1000);
    const double grace = std::max(10.0, 0.1 * seconds);
    watchdog_ = std::thread([this, seconds, grace, until = deadline + span(grace)] {
      std::unique_lock<std::mutex> lock(mutex_);
      if (finished_.wait_until(lock, until, [this] { return done_; })) return;
      std::fprintf(stderr,
                   "llmscope: stopped by --timeout: the script ran for more than %g s and has been "
                   "inside a native call for %g s more; exiting\n",
                   seconds, grace);
      std::fflush(stderr);
      std::_Exit(124);
    });
  }
  ~DeadlineScope() {
    if (!active_) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    finished_.notify_all();
    watchdog_.join();
    lua_sethook(L_, nullptr, 0, 0);
  }
  DeadlineScope(const DeadlineScope&) = delete;
  DeadlineScope& operator=(const DeadlineScope&) = delete;

 private:
  lua_State* L_;
  bool active_ = false;
  std::thread watchdog_;
  std::mutex mutex_;
  std::condition_variable finished_;
  bool done_ = false;
};

int traceback(lua_State* L) {
  const char* message = lua_tostring(L, 1);
  if (message == nullptr) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, message, 1);
  return 1;
}

// Runs the function below `nargs` arguments with a traceback handler; returns the status and
// leaves the error message (with traceback) on the stack on failure.
int protected_call(lua_State* L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}

// Scripts can `require` modules that sit beside them.
void prepend_package_path(lua_State* L, const std::filesystem::path& dir) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  std::string path = (dir / "?.lua").string() + ";" + lua_tostring(L, -1);
  lua_pop(L, 1);
  lua_pushstring(L, path.c_str());
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

// `llmscope` global: version, out_dir and the default model folder, for scripts to read.
void open_info(lua_State* L, const HostOptions& options) {
  lua_newtable(L);
  lua_pushstring(L, "0.1.0");
  lua_setfield(L, -2, "version");
  lua_pushstring(L, options.out_dir.string().c_str());
  lua_setfield(L, -2, "out_dir");
  lua_pushstring(L, options.model_dir.c_str());
  lua_setfield(L, -2, "model_dir");
  lua_pushstring(L, "0-based: layers, neurons, heads, positions, tensor dims and indices");
  lua_setfield(L, -2, "indexing");
  lua_setglobal(L, "llmscope");
}

// Lua's allocations count against --max-memory with the CPU tensors': past the cap an
// allocation fails and Lua raises its "not enough memory" error, which run_file explains.
void* capped_lua_alloc(void*, void* block, size_t old_size, size_t new_size) {
  const int64_t old_bytes = block ? static_cast<int64_t>(old_size) : 0;  // else a type tag
  if (new_size == 0) {
    std::free(block);
    charge_capped_memory(-old_bytes);
    return nullptr;
  }
  const int64_t delta = static_cast<int64_t>(new_size) - old_bytes;
  if (delta > 0 && !charge_capped_memory(delta)) return nullptr;
  void* grown = std::realloc(block, new_size);
  if (grown == nullptr) {
    if (delta > 0) charge_capped_memory(-delta);
    return nullptr;
  }
  if (delta < 0) charge_capped_memory(delta);
  return grown;
}

int lua_panic(lua_State* L) {
  const char* message = lua_tostring(L, -1);
  std::fprintf(stderr, "llmscope: unprotected Lua error: %s\n", message ? message : "?");
  return 0;  // Lua aborts
}

// Lua runs precompiled chunks without verifying them, and a crafted one can crash the process;
// scripts are text, so every way in (the host's own loading and load/loadfile/dofile) takes text
// chunks only. The env argument is passed on only when given: an explicit nil would clear _ENV.
constexpr const char* kTextChunksOnly = R"lua(
local load, loadfile = load, loadfile
_G.load = function(chunk, name, _, ...)
  if select("#", ...) > 0 then return load(chunk, name, "t", ...) end
  return load(chunk, name, "t")
end
_G.loadfile = function(file, _, ...)
  if select("#", ...) > 0 then return loadfile(file, "t", ...) end
  return loadfile(file, "t")
end
_G.dofile = function(file)
  local chunk, message = loadfile(file, "t")
  if not chunk then error(message, 2) end
  return chunk()
end
)lua";

}  // namespace

HostContext& host_context(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kHostKey);
  auto* context = static_cast<HostContext*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return *context;
}

LuaHost::LuaHost(HostOptions options) : L_(lua_newstate(capped_lua_alloc, nullptr)) {
  if (!L_) throw Error("cannot create a Lua state (out of memory)");
  lua_atpanic(L_, lua_panic);
  luaL_openlibs(L_);
  if (luaL_dostring(L_, kTextChunksOnly) != LUA_OK) throw Error(lua_tostring(L_, -1));
  // The context is a full userdata so Lua frees it, after every binding object, on lua_close.
  luaL_newmetatable(L_, "llmscope.HostContext");
  lua_pushcfunction(L_, destroy_userdata<HostContext>);
  lua_setfield(L_, -2, "__gc");
  lua_pop(L_, 1);
  push_userdata<HostContext>(L_, "llmscope.HostContext").options = std::move(options);
  lua_setfield(L_, LUA_REGISTRYINDEX, kHostKey);
  open_tensor(L_);
  open_model(L_);
  open_optim(L_);
  open_log(L_);
  open_plugins(L_);
  open_stats(L_);
  open_figure(L_);
  open_report(L_);
  open_corpus(L_);
  open_dist(L_);
  HostContext& context = host_context(L_);
  open_info(L_, context.options);
  context.manifest.dtype = dtype_name(context.options.load.dtype);
  context.manifest.device = context.options.load.device.str();
  if (!context.options.out_dir.empty())
    context.report = std::make_unique<Report>(context.options.out_dir);
}

LuaHost::~LuaHost() { lua_close(L_); }

int LuaHost::run_file(const std::filesystem::path& script, const std::vector<std::string>& args) {
  lua_State* L = L_;
  prepend_package_path(L, std::filesystem::absolute(script).parent_path());
  lua_createtable(L, static_cast<int>(args.size()), 1);
  lua_pushstring(L, script.string().c_str());
  lua_rawseti(L, -2, 0);
  for (size_t i = 0; i < args.size(); ++i) {
    lua_pushstring(L, args[i].c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setglobal(L, "arg");

  HostContext& context = host_context(L);
  context.manifest.script = script.string();
  if (context.report) context.report->set_title(script.filename().string());
  const auto started = std::chrono::steady_clock::now();
  int code = 0;
  // A signal after the script (a job's launcher stopping the ranks, a second Ctrl-C) waits
  // until the report is written, so the report of what ran is never lost half-way.
  StopSignals until_reported;
  {
    InterruptScope interrupts(L);
    DeadlineScope time_limit(L, context.options.timeout_s);
    if (luaL_loadfilex(L, script.string().c_str(), "t") != LUA_OK) {
      std::cerr << lua_tostring(L, -1) << "\n";
      lua_pop(L, 1);
      return 1;  // nothing ran: no report
    }
    if (context.report) {
      try {
        context.report->lock();
      } catch (const std::exception& e) {
        lua_pop(L, 1);
        std::cerr << "llmscope: " << e.what() << "\n";
        return 1;  // nothing ran; the other run's report is left alone
      }
    }
    for (const auto& a : args) lua_pushstring(L, a.c_str());
    if (protected_call(L, static_cast<int>(args.size()), 0) != LUA_OK) {
      std::string message = lua_tostring(L, -1) ? lua_tostring(L, -1) : "error";
      if (message.rfind("not enough memory", 0) == 0 && cpu_memory_cap() > 0) {
        message += " (--max-memory: the script's Lua values and CPU tensors reached the cap of " +
                   mebibytes(cpu_memory_cap()) + ")";
      }
      std::cerr << message << "\n";
      lua_pop(L, 1);
      const int interrupted = StopSignals::received();
      code = interrupted ? 128 + interrupted : timed_out ? 124 : 1;
      context.manifest.status = interrupted == SIGTERM ? "terminated (SIGTERM)"
                                : interrupted          ? "interrupted"
                                              : "failed: " + message.substr(0, message.find('\n'));
    } else {
      context.manifest.status = "ok";
    }
  }
  context.manifest.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  try {
    write_report(L);
    if (StopSignals::received() != 0 && context.report) {
      std::cerr << "llmscope: " << context.manifest.status << "; the report of what ran is in "
                << (context.report->dir() / "report.html").string() << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "llmscope: could not write the report: " << e.what() << "\n";
    if (code == 0) code = 1;
  }
  return code;
}

void LuaHost::run_string(const std::string& code, const std::string& chunk_name) {
  InterruptScope interrupts(L_);
  DeadlineScope time_limit(L_, host_context(L_).options.timeout_s);
  if (luaL_loadbufferx(L_, code.data(), code.size(), chunk_name.c_str(), "t") != LUA_OK ||
      protected_call(L_, 0, 0) != LUA_OK) {
    std::string message = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "error";
    lua_pop(L_, 1);
    throw Error(message);
  }
}

void LuaHost::set_global(const std::string& name, const at::Tensor& tensor) {
  push_tensor(L_, tensor);
  lua_setglobal(L_, name.c_str());
}

int LuaHost::repl() {
  lua_State* L = L_;
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::cout << "llmscope "
            << "0.1.0"
            << " (Lua 5.4). Indices are 0-based. Ctrl-D quits.\n";
  while (true) {
    std::string chunk;
    const char* prompt = "> ";
    // Read lines until they form a complete chunk (Lua reports '<eof>' for unfinished ones).
    while (true) {
      char* raw = interactive ? readline(prompt) : nullptr;
      std::string line;
      if (interactive) {
        if (!raw) {
          std::cout << "\n";
          return 0;
        }
        line = raw;
        free(raw);
      } else {
        std::cout << prompt << std::flush;
        if (!std::getline(std::cin, line)) {
          std::cout << "\n";
          return 0;
        }
      }
      chunk += (chunk.empty() ? "" : "\n") + line;
      // Like lua.c: first try the line as an expression, printing its values.
      std::string as_return = "return " + chunk;
      int status = luaL_loadbufferx(L, as_return.data(), as_return.size(), "=stdin", "t");
      if (status != LUA_OK) {
        lua_pop(L, 1);
        status = luaL_loadbufferx(L, chunk.data(), chunk.size(), "=stdin", "t");
      }
      if (status == LUA_ERRSYNTAX) {
        std::string message = lua_tostring(L, -1);
        const std::string eof = "<eof>";
        if (message.size() >= eof.size() &&
            message.compare(message.size() - eof.size(), eof.size(), eof) == 0) {
          lua_pop(L, 1);
          prompt = ">> ";
          continue;
        }
      }
      if (interactive && !chunk.empty()) add_history(chunk.c_str());
      if (status != LUA_OK) {
        std::cerr << lua_tostring(L, -1) << "\n";
        lua_pop(L, 1);
        break;
      }
      int base = lua_gettop(L) - 1;
      InterruptScope interrupts(L);
      if (protected_call(L, 0, LUA_MULTRET) != LUA_OK) {
        std::cerr << lua_tostring(L, -1) << "\n";
        lua_pop(L, 1);
        break;
      }
      int results = lua_gettop(L) - base;
      if (results > 0) {
        lua_getglobal(L, "print");
        lua_insert(L, base + 1);
        if (protected_call(L, results, 0) != LUA_OK) {
          std::cerr << lua_tostring(L, -1) << "\n";
          lua_pop(L, 1);
        }
      }
      break;
    }
  }
}

}  // namespace llmscope::lua
