#include "binding.hpp"

#include <algorithm>

#include <c10/util/Exception.h>

#include "llmscope/error.hpp"

namespace llmscope::lua {

std::string type_name(lua_State* L, int index) {
  if (luaL_getmetafield(L, index, "__name") == LUA_TSTRING) {
    std::string name = lua_tostring(L, -1);
    lua_pop(L, 1);
    return name;
  }
  if (lua_type(L, index) == LUA_TLIGHTUSERDATA) return "light userdata";
  return luaL_typename(L, index);
}

void type_error(lua_State* L, int arg, const char* expected) {
  throw ArgError(arg, std::string(expected) + " expected, got " + type_name(L, arg));
}

namespace {

// luaL_argerror's wording, without its longjmp.
std::string argument_message(lua_State* L, int arg, const std::string& detail) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar)) return "bad argument #" + std::to_string(arg) + " (" + detail + ")";
  lua_getinfo(L, "n", &ar);
  std::string name = ar.name ? ar.name : "?";
  if (ar.namewhat && std::string(ar.namewhat) == "method") {
    --arg;
    if (arg == 0) return "calling '" + name + "' on bad self (" + detail + ")";
  }
  return "bad argument #" + std::to_string(arg) + " to '" + name + "' (" + detail + ")";
}

}  // namespace

void push_current_exception(lua_State* L) {
  std::string message;
  try {
    throw;
  } catch (const LuaError& e) {
    // Raised by Lua code called back from C++: it already carries its own position.
    lua_pushstring(L, e.what());
    return;
  } catch (const ArgError& e) {
    message = argument_message(L, e.arg, e.what());
  } catch (const c10::Error& e) {
    message = e.what_without_backtrace();
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "unknown C++ exception";
  }
  luaL_where(L, 1);
  lua_pushlstring(L, message.data(), message.size());
  lua_concat(L, 2);
}

void pcall(lua_State* L, int nargs, int nresults) {
  if (lua_pcall(L, nargs, nresults, 0) != LUA_OK) {
    std::string message = lua_tostring(L, -1)
                              ? lua_tostring(L, -1)
                              : "(error object is a " + type_name(L, -1) + " value)";
    lua_pop(L, 1);
    throw LuaError(message);
  }
}

double check_number(lua_State* L, int arg) {
  int is_number = 0;
  double value = lua_tonumberx(L, arg, &is_number);
  if (!is_number) type_error(L, arg, "number");
  return value;
}

int64_t check_integer(lua_State* L, int arg) {
  int is_integer = 0;
  lua_Integer value = lua_tointegerx(L, arg, &is_integer);
  if (!is_integer) {
    if (lua_type(L, arg) == LUA_TNUMBER)
      throw ArgError(arg, "number has no integer representation");
    type_error(L, arg, "number");
  }
  return value;
}

std::string check_string(lua_State* L, int arg) {
  if (lua_type(L, arg) != LUA_TSTRING) type_error(L, arg, "string");
  size_t length = 0;
  const char* text = lua_tolstring(L, arg, &length);
  return std::string(text, length);
}

bool check_boolean(lua_State* L, int arg) {
  if (lua_type(L, arg) != LUA_TBOOLEAN) type_error(L, arg, "boolean");
  return lua_toboolean(L, arg) != 0;
}

void check_function(lua_State* L, int arg) {
  if (lua_type(L, arg) != LUA_TFUNCTION) type_error(L, arg, "function");
}

void check_table(lua_State* L, int arg) {
  if (lua_type(L, arg) != LUA_TTABLE) type_error(L, arg, "table");
}

bool is_none_or_nil(lua_State* L, int arg) { return lua_type(L, arg) <= LUA_TNIL; }

namespace {

// Pushes opts[key] (raw) and returns its type; LUA_TNIL when there is no options table.
int push_option(lua_State* L, int opts, const char* key) {
  if (is_none_or_nil(L, opts)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  if (lua_type(L, opts) != LUA_TTABLE) type_error(L, opts, "table of options");
  return lua_getfield(L, opts, key);  // options tables are plain tables: no metamethods run
}

[[noreturn]] void option_error(lua_State* L, int opts, const char* key, const char* expected) {
  std::string got = type_name(L, -1);
  lua_pop(L, 1);
  throw ArgError(opts, "option '" + std::string(key) + "' must be " + expected + ", got " + got);
}

}  // namespace

std::optional<double> opt_number(lua_State* L, int opts, const char* key) {
  if (push_option(L, opts, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return std::nullopt;
  }
  int ok = 0;
  double value = lua_tonumberx(L, -1, &ok);
  if (!ok || lua_type(L, -1) != LUA_TNUMBER) option_error(L, opts, key, "a number");
  lua_pop(L, 1);
  return value;
}

std::optional<int64_t> opt_integer(lua_State* L, int opts, const char* key) {
  if (push_option(L, opts, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return std::nullopt;
  }
  int ok = 0;
  lua_Integer value = lua_tointegerx(L, -1, &ok);
  if (!ok || lua_type(L, -1) != LUA_TNUMBER) option_error(L, opts, key, "an integer");
  lua_pop(L, 1);
  return value;
}

std::optional<bool> opt_boolean(lua_State* L, int opts, const char* key) {
  int type = push_option(L, opts, key);
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return std::nullopt;
  }
  if (type != LUA_TBOOLEAN) option_error(L, opts, key, "a boolean");
  bool value = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  return value;
}

std::optional<std::string> opt_string(lua_State* L, int opts, const char* key) {
  int type = push_option(L, opts, key);
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return std::nullopt;
  }
  if (type != LUA_TSTRING) option_error(L, opts, key, "a string");
  std::string value = lua_tostring(L, -1);
  lua_pop(L, 1);
  return value;
}

std::optional<std::string> unknown_key(lua_State* L, int table,
                                       const std::vector<const char*>& known, bool* is_string) {
  table = lua_absindex(L, table);
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {
    lua_pop(L, 1);  // value
    const bool string_key = lua_type(L, -1) == LUA_TSTRING;
    std::string key = string_key ? lua_tostring(L, -1) : "(a " + type_name(L, -1) + " key)";
    bool found = false;
    for (const char* k : known) found = found || (string_key && key == k);
    if (!found) {
      lua_pop(L, 1);  // the key: the walk ends here
      if (is_string) *is_string = string_key;
      return key;
    }
  }
  return std::nullopt;
}

std::string key_list(const std::vector<const char*>& known) {
  std::string list;
  for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
  return list;
}

void check_option_keys(lua_State* L, int opts, const std::vector<const char*>& known) {
  if (is_none_or_nil(L, opts)) return;
  if (lua_type(L, opts) != LUA_TTABLE) type_error(L, opts, "table of options");
  opts = lua_absindex(L, opts);  // the argument number the error names
  bool is_string = true;
  if (auto key = unknown_key(L, opts, known, &is_string)) {
    if (!is_string) throw ArgError(opts, "options must have string keys");
    throw ArgError(opts, "unknown option '" + *key + "' (expected " + key_list(known) + ")");
  }
}

void new_type(lua_State* L, const char* type, const luaL_Reg* methods, lua_CFunction gc) {
  if (luaL_newmetatable(L, type) == 0) return;  // already registered: leave it on the stack
  if (gc) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
}

// ---- Tensors ----

namespace {

TensorBox* tensor_box(lua_State* L, int arg) {
  return test_userdata<TensorBox>(L, arg, kTensorType);
}

at::Tensor& unexpired(TensorBox& box) {
  if (!box.lease) return box.tensor;
  if (box.lease->expired) {
    throw Error("expired activation '" + box.site +
                "' (it was valid only inside its hook; call :clone() there to keep it)");
  }
  return box.lease->held[box.held_index];
}

}  // namespace

at::Tensor* test_tensor(lua_State* L, int arg) {
  TensorBox* box = tensor_box(L, arg);
  return box ? &unexpired(*box) : nullptr;
}

at::Tensor& check_tensor(lua_State* L, int arg) {
  if (at::Tensor* t = test_tensor(L, arg)) return *t;
  type_error(L, arg, "tensor");
}

void push_tensor(lua_State* L, at::Tensor tensor) {
  // Lua sees only the small userdata, not the tensor's memory; for large tensors, advance the
  // collector in proportion so loops that make big results (logits) do not pile them up.
  const size_t bytes = tensor.defined() && tensor.has_storage() ? tensor.storage().nbytes() : 0;
  push_userdata<TensorBox>(L, kTensorType, TensorBox{std::move(tensor), nullptr, 0, {}});
  if (bytes >= (size_t{1} << 16))
    lua_gc(L, LUA_GCSTEP, static_cast<int>(std::min<size_t>(bytes >> 10, 1 << 20)));
}

void push_activation(lua_State* L, at::Tensor tensor, std::shared_ptr<ActivationLease> lease,
                     const std::string& site) {
  lease->held.push_back(std::move(tensor));
  size_t index = lease->held.size() - 1;
  push_userdata<TensorBox>(L, kTensorType, TensorBox{at::Tensor(), std::move(lease), index, site});
}

}  // namespace llmscope::lua
