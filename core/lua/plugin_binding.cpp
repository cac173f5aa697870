// The `plugins` module and the global `plugin(name)`: loads a plugin through the host's
// PluginHost and exposes its functions as Lua functions. Lua values are converted to plugin
// Values and back here, so plugins never touch the Lua C API.
#include "binding.hpp"
#include "host_context.hpp"
#include "llmscope/error.hpp"
#include "llmscope/plugin_host.hpp"

namespace llmscope::lua {
namespace {

using plugin::List;
using plugin::Table;
using plugin::Value;

const char* const kPluginFunctionType = "llmscope.PluginFunction";

struct PluginFunctionBox {
  std::shared_ptr<const plugin::LoadedPlugin> plugin;  // keeps the library loaded while callable
  const plugin::Function* function;
};

plugin::PluginHost& plugin_host(lua_State* L) {
  HostContext& host = host_context(L);
  if (!host.plugins) host.plugins = std::make_unique<plugin::PluginHost>(host.options.plugin_path);
  return *host.plugins;
}

Value to_value(lua_State* L, int index, int arg, int depth);

Value table_to_value(lua_State* L, int index, int arg, int depth) {
  if (depth > 32) throw ArgError(arg, "table nested too deeply (a cycle?)");
  const auto n = static_cast<lua_Integer>(lua_rawlen(L, index));
  if (n > 0) {
    List list;
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, index, i);
      list.push_back(to_value(L, lua_gettop(L), arg, depth + 1));
      lua_pop(L, 1);
    }
    return list;
  }
  Table table;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      throw ArgError(arg, "tables passed to plugins are lists or have string keys");
    }
    std::string key = lua_tostring(L, -2);
    table[key] = to_value(L, lua_gettop(L), arg, depth + 1);
    lua_pop(L, 1);
  }
  return table;
}

Value to_value(lua_State* L, int index, int arg, int depth) {
  index = lua_absindex(L, index);
  switch (lua_type(L, index)) {
    case LUA_TNONE:
    case LUA_TNIL:
      return Value();
    case LUA_TBOOLEAN:
      return Value(lua_toboolean(L, index) != 0);
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) return Value(static_cast<int64_t>(lua_tointeger(L, index)));
      return Value(lua_tonumber(L, index));
    case LUA_TSTRING: {
      size_t length = 0;
      const char* text = lua_tolstring(L, index, &length);
      return Value(std::string(text, length));
    }
    case LUA_TTABLE:
      return table_to_value(L, index, arg, depth);
    default:
      if (at::Tensor* t = test_tensor(L, index)) return Value(*t);
      if (auto model = test_model(L, index)) return Value(model);
      throw ArgError(arg, "a " + type_name(L, index) + " cannot be passed to a plugin");
  }
}

void push_value(lua_State* L, const Value& value) {
  std::visit(
      [L](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          lua_pushnil(L);
        } else if constexpr (std::is_same_v<T, bool>) {
          lua_pushboolean(L, v);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          lua_pushinteger(L, v);
        } else if constexpr (std::is_same_v<T, double>) {
          lua_pushnumber(L, v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          lua_pushlstring(L, v.data(), v.size());
        } else if constexpr (std::is_same_v<T, at::Tensor>) {
          if (v.defined()) {
            push_tensor(L, v);
          } else {
            lua_pushnil(L);
          }
        } else if constexpr (std::is_same_v<T, plugin::ModelPtr>) {
          push_model(L, v);
        } else if constexpr (std::is_same_v<T, List>) {
          lua_createtable(L, static_cast<int>(v.size()), 0);
          for (size_t i = 0; i < v.size(); ++i) {
            push_value(L, v[i]);
            lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
          }
        } else {
          lua_createtable(L, 0, static_cast<int>(v.size()));
          for (const auto& [key, item] : v) {
            push_value(L, item);
            lua_setfield(L, -2, key.c_str());
          }
        }
      },
      value.data);
}

// The Lua side of every plugin function: arguments in, the plugin's C++ function, result out.
int call_plugin_function(lua_State* L) {
  auto& box = *static_cast<PluginFunctionBox*>(lua_touserdata(L, lua_upvalueindex(1)));
  List args;
  for (int i = 1; i <= lua_gettop(L); ++i) args.push_back(to_value(L, i, i, 0));
  Value result;
  try {
    result = box.plugin->call(*box.function, args);
  } catch (const plugin::ArgumentError& e) {
    throw ArgError(e.index, e.what());
  }
  push_value(L, result);
  return 1;
}

void push_plugin(lua_State* L, const std::shared_ptr<const plugin::LoadedPlugin>& loaded) {
  const auto& functions = loaded->module().functions();
  lua_createtable(L, 0, static_cast<int>(functions.size()) + 4);
  lua_newtable(L);  // docs
  for (const auto& fn : functions) {
    push_userdata<PluginFunctionBox>(L, kPluginFunctionType, PluginFunctionBox{loaded, &fn});
    lua_pushcclosure(L, entry<call_plugin_function>, 1);
    lua_setfield(L, -3, fn.name.c_str());
    lua_pushstring(L, fn.doc.c_str());
    lua_setfield(L, -2, fn.name.c_str());
  }
  lua_setfield(L, -2, "_doc");
  const auto& info = loaded->info();
  lua_pushstring(L, info.name.c_str());
  lua_setfield(L, -2, "_name");
  lua_pushstring(L, info.version.c_str());
  lua_setfield(L, -2, "_version");
  lua_pushstring(L, info.path.string().c_str());
  lua_setfield(L, -2, "_path");
}

// plugin(name) / plugins.load(name) -> table of the plugin's functions (+ _name, _version, _path,
// _doc)
int plugins_load(lua_State* L) {
  std::string name = check_string(L, 1);
  push_plugin(L, plugin_host(L).load(name));
  return 1;
}

// plugins.unload(name): later plugin(name) loads it afresh; functions already taken stay valid.
int plugins_unload(lua_State* L) {
  plugin_host(L).unload(check_string(L, 1));
  return 0;
}

// plugins.list() -> { {name=, version=, path=, functions={...}} or {path=, problem=} ... }
int plugins_list(lua_State* L) {
  auto listings = plugin_host(L).discover();
  lua_createtable(L, static_cast<int>(listings.size()), 0);
  for (size_t i = 0; i < listings.size(); ++i) {
    const auto& listing = listings[i];
    lua_newtable(L);
    lua_pushstring(L, listing.path.string().c_str());
    lua_setfield(L, -2, "path");
    if (listing.plugin) {
      lua_pushstring(L, listing.plugin->info().name.c_str());
      lua_setfield(L, -2, "name");
      lua_pushstring(L, listing.plugin->info().version.c_str());
      lua_setfield(L, -2, "version");
      lua_newtable(L);
      int n = 0;
      for (const auto& fn : listing.plugin->module().functions()) {
        lua_pushstring(L, fn.name.c_str());
        lua_rawseti(L, -2, ++n);
      }
      lua_setfield(L, -2, "functions");
    } else {
      lua_pushstring(L, listing.problem.c_str());
      lua_setfield(L, -2, "problem");
    }
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

}  // namespace

void open_plugins(lua_State* L) {
  luaL_newmetatable(L, kPluginFunctionType);
  lua_pushcfunction(L, destroy_userdata<PluginFunctionBox>);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"load", entry<plugins_load>},
      {"unload", entry<plugins_unload>},
      {"list", entry<plugins_list>},
      {nullptr, nullptr},
  };
  luaL_newlib(L, functions);
  lua_setglobal(L, "plugins");
  lua_pushcfunction(L, entry<plugins_load>);
  lua_setglobal(L, "plugin");
}

}  // namespace llmscope::lua
