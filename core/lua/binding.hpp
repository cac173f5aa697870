// The Lua bridge's plumbing, shared by every binding file: metatable names, the trampoline that
// turns C++ exceptions into Lua errors, argument checks that read like Lua's own
// ("bad argument #2 to 'hook' (hook point expected, got nil)"), and userdata helpers.
//
// Rules every binding follows: a lua_CFunction is always wrapped by entry<F>; F never calls a
// Lua function that can raise (luaL_check*, lua_error, lua_call) — it throws instead, and calls
// Lua code only through pcall() below — so longjmp never crosses a C++ frame.
#pragma once

#include <ATen/ATen.h>
#include <lua.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "llmscope/error.hpp"
#include "llmscope/model.hpp"

namespace llmscope::lua {

inline constexpr const char* kTensorType = "llmscope.Tensor";
inline constexpr const char* kModelType = "llmscope.Model";
inline constexpr const char* kHookHandleType = "llmscope.HookHandle";
inline constexpr const char* kOptimizerType = "llmscope.Optimizer";
inline constexpr const char* kProgressType = "llmscope.Progress";

// A bad argument: formatted like luaL_argerror (method calls count `self` as argument 0).
struct ArgError : std::runtime_error {
  ArgError(int arg, const std::string& message) : std::runtime_error(message), arg(arg) {}
  int arg;
};

// "bad argument #arg to 'fn' (expected expected, got <type>)" as an ArgError.
[[noreturn]] void type_error(lua_State* L, int arg, const char* expected);
// The Lua type name of a value, using a userdata's __name ("llmscope.Tensor") when it has one.
std::string type_name(lua_State* L, int index);

// Pushes the message of the exception being handled, prefixed with the caller's position.
void push_current_exception(lua_State* L);

template <lua_CFunction F>
int entry(lua_State* L) {
  {
    try {
      return F(L);
    } catch (...) {
      push_current_exception(L);
    }
  }  // every C++ object of F and of the handler is destroyed before the longjmp below
  return lua_error(L);
}

// An error raised by Lua code that C++ called back (a hook, tensor.no_grad's function); its
// message already starts with the Lua position, so it is passed on unchanged.
struct LuaError : Error {
  using Error::Error;
};

// Calls the function below its `nargs` arguments in protected mode; on error pops the message
// and throws LuaError carrying it.
void pcall(lua_State* L, int nargs, int nresults);

// ---- Argument checks (throw ArgError) ----
double check_number(lua_State* L, int arg);
int64_t check_integer(lua_State* L, int arg);
std::string check_string(lua_State* L, int arg);
bool check_boolean(lua_State* L, int arg);
void check_function(lua_State* L, int arg);
void check_table(lua_State* L, int arg);
bool is_none_or_nil(lua_State* L, int arg);

// Options in a trailing table: `opts` may be absent/nil. Missing keys give the fallback; a
// value of the wrong type is an ArgError naming the option.
std::optional<double> opt_number(lua_State* L, int opts, const char* key);
std::optional<int64_t> opt_integer(lua_State* L, int opts, const char* key);
std::optional<bool> opt_boolean(lua_State* L, int opts, const char* key);
std::optional<std::string> opt_string(lua_State* L, int opts, const char* key);
// Every key of the options table must be one of `known` (catches typos such as {lr_=1}).
void check_option_keys(lua_State* L, int opts, const std::vector<const char*>& known);
// The first key of the table at `table` that is not one of `known`, as text (a key that is not
// a string as "(a number key)", with *is_string false), or nullopt when every key is known.
std::optional<std::string> unknown_key(lua_State* L, int table,
                                       const std::vector<const char*>& known,
                                       bool* is_string = nullptr);
// "a, b, c": the known keys, for the message that names an unknown one.
std::string key_list(const std::vector<const char*>& known);

// ---- Userdata ----
template <typename T, typename... Args>
T& push_userdata(lua_State* L, const char* type, Args&&... args) {
  void* memory = lua_newuserdatauv(L, sizeof(T), 0);
  T* object = new (memory) T(std::forward<Args>(args)...);
  luaL_setmetatable(L, type);
  return *object;
}

template <typename T>
T* test_userdata(lua_State* L, int arg, const char* type) {
  return static_cast<T*>(luaL_testudata(L, arg, type));
}

template <typename T>
T& check_userdata(lua_State* L, int arg, const char* type, const char* expected) {
  if (T* object = test_userdata<T>(L, arg, type)) return *object;
  type_error(L, arg, expected);
}

// __gc for any userdata made by push_userdata.
template <typename T>
int destroy_userdata(lua_State* L) {
  static_cast<T*>(lua_touserdata(L, 1))->~T();
  return 0;
}

// Creates (or fetches) the metatable `type` with __gc, __name and `methods` as __index.
// `methods` is a luaL_Reg list ending in {nullptr, nullptr}. Leaves the metatable on the stack.
void new_type(lua_State* L, const char* type, const luaL_Reg* methods, lua_CFunction gc);

// ---- Tensors ----

// Activations handed to a hook are valid only during the forward pass; afterwards using one
// raises "expired activation '<site>' (call :clone() to keep it)".
// The lease owns the activations it hands out, so they are released when the pass ends even
// if Lua collects their userdata much later (the allocator can then reuse the memory at once).
struct ActivationLease {
  bool expired = false;
  std::deque<at::Tensor> held;  // a deque: references stay valid while more are added
  void expire() {
    expired = true;
    held.clear();
  }
};

struct TensorBox {
  at::Tensor tensor;                       // ordinary tensors; undefined for activations
  std::shared_ptr<ActivationLease> lease;  // activations: the pass's lease, and
  size_t held_index = 0;                   //   the position in lease->held
  std::string site;                        // the hook point, for the expiry message
};

// The tensor at `arg`; throws ArgError if it is not a tensor, llmscope::Error if expired.
at::Tensor& check_tensor(lua_State* L, int arg);
at::Tensor* test_tensor(lua_State* L, int arg);  // nullptr if not a tensor (throws if expired)
void push_tensor(lua_State* L, at::Tensor tensor);
void push_activation(lua_State* L, at::Tensor tensor, std::shared_ptr<ActivationLease> lease,
                     const std::string& site);
// A tensor argument, or a number / nested table of numbers turned into one.
at::Tensor to_tensor(lua_State* L, int arg);

// Models in Lua (model_binding.cpp): nullptr when the value is not a model.
std::shared_ptr<Model> test_model(lua_State* L, int arg);
void push_model(lua_State* L, std::shared_ptr<Model> model);

// The registry key under which the host keeps its state (see host.cpp).
struct HostContext;
HostContext& host_context(lua_State* L);

// Module openers: each sets one global table.
void open_tensor(lua_State* L);   // tensor
void open_model(lua_State* L);    // model
void open_optim(lua_State* L);    // optim
void open_log(lua_State* L);      // log, progress
void open_plugins(lua_State* L);  // plugins, plugin()
void open_stats(lua_State* L);    // stats
void open_figure(lua_State* L);   // figure
void open_report(lua_State* L);   // report
void open_corpus(lua_State* L);   // corpus
void open_dist(lua_State* L);     // dist
// Writes report.html with the run manifest (model hashes computed now); no-op without a report.
void write_report(lua_State* L);

}  // namespace llmscope::lua
