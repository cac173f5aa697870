// The plugin API shared by the host and every plugin: the descriptor a plugin exports, the
// Value type that carries Lua values across (nil, booleans, numbers, strings, tensors, models,
// lists and option tables), and Module, where a plugin registers plain C++ functions whose
// arguments are converted from Values by their declared types. Plugins never see Lua.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "llmscope/error.hpp"
#include "llmscope/hooks.hpp"
#include "llmscope/model.hpp"

namespace llmscope::plugin {

// Covers this header's types and Model's virtual interface (whose state plugins never see).
// Major: incompatible changes. Minor: additions; a plugin built against minor m loads in any
// host with minor >= m and the same major. 2.0: Model's state moved behind a pointer.
// 2.1: Tokenizer::is_special, Model::forward_cached. 2.2: Model::unembed. 2.3: llmscope/job.hpp
// (the job's rank and collectives) and the streaming reducers' merge_across_job. 2.4:
// job::all_gather_concat and add_to_counter, QuantileSketch and CovarianceStream's
// merge_across_job.
inline constexpr uint32_t kAbiMajor = 2;
inline constexpr uint32_t kAbiMinor = 4;

// Exported by every plugin as the C symbol `llmscope_plugin_descriptor`; read before any plugin
// code runs.
struct Descriptor {
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t torch_major;
  uint32_t torch_minor;
  int32_t cxx11_abi;  // _GLIBCXX_USE_CXX11_ABI the plugin was built with
  const char* name;
  const char* version;
  const char* description;
};

struct Value;
using List = std::vector<Value>;
using Table = std::map<std::string, Value>;
using ModelPtr = std::shared_ptr<Model>;

template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {};
template <typename T>
struct is_vector : std::false_type {};
template <typename T, typename A>
struct is_vector<std::vector<T, A>> : std::true_type {};

struct Value {
  using Storage = std::variant<std::monostate, bool, int64_t, double, std::string, at::Tensor,
                               ModelPtr, List, Table>;
  Storage data;

  Value() = default;
  template <typename T, typename = std::enable_if_t<!std::is_same_v<std::decay_t<T>, Value>>>
  Value(T&& value) : data(convert(std::forward<T>(value))) {}  // NOLINT: implicit by design

  bool is_nil() const { return std::holds_alternative<std::monostate>(data); }
  std::string type_name() const;

 private:
  template <typename T>
  static Storage convert(T&& value) {
    using D = std::decay_t<T>;
    if constexpr (std::is_same_v<D, bool>) {
      return value;
    } else if constexpr (std::is_integral_v<D>) {
      return static_cast<int64_t>(value);
    } else if constexpr (std::is_floating_point_v<D>) {
      return static_cast<double>(value);
    } else if constexpr (std::is_same_v<D, const char*> || std::is_same_v<D, char*>) {
      return std::string(value);
    } else if constexpr (std::is_same_v<D, std::nullopt_t>) {
      return std::monostate{};
    } else if constexpr (is_optional<D>::value) {
      return value ? convert(*std::forward<T>(value)) : Storage(std::monostate{});
    } else if constexpr (is_vector<D>::value && !std::is_same_v<D, std::vector<Value>>) {
      std::vector<Value> list;
      for (auto&& item : value) list.emplace_back(item);
      return list;
    } else {
      return Storage(std::forward<T>(value));
    }
  }
};

inline std::string Value::type_name() const {
  switch (data.index()) {
    case 0:
      return "nil";
    case 1:
      return "boolean";
    case 2:
    case 3:
      return "number";
    case 4:
      return "string";
    case 5:
      return "tensor";
    case 6:
      return "model";
    case 7:
      return "list";
    default:
      return "table";
  }
}

// A bad argument to a plugin function; the host reports it as "bad argument #N to 'fn' (...)".
struct ArgumentError : std::runtime_error {
  ArgumentError(int index, const std::string& message)
      : std::runtime_error(message), index(index) {}
  int index;  // 1-based, as Lua counts
};

// ---- Value -> C++ argument ----
template <typename T>
struct FromValue;

namespace detail {
[[noreturn]] inline void expected(int index, const char* what, const Value& got) {
  throw ArgumentError(index, std::string(what) + " expected, got " + got.type_name());
}
}  // namespace detail

template <>
struct FromValue<bool> {
  static bool get(const Value& v, int i) {
    if (auto* b = std::get_if<bool>(&v.data)) return *b;
    detail::expected(i, "boolean", v);
  }
};
template <>
struct FromValue<int64_t> {
  static int64_t get(const Value& v, int i) {
    if (auto* n = std::get_if<int64_t>(&v.data)) return *n;
    if (auto* d = std::get_if<double>(&v.data)) {
      if (static_cast<double>(static_cast<int64_t>(*d)) == *d) return static_cast<int64_t>(*d);
      throw ArgumentError(i, "number has no integer representation");
    }
    detail::expected(i, "integer", v);
  }
};
template <>
struct FromValue<int> {
  static int get(const Value& v, int i) { return static_cast<int>(FromValue<int64_t>::get(v, i)); }
};
template <>
struct FromValue<double> {
  static double get(const Value& v, int i) {
    if (auto* d = std::get_if<double>(&v.data)) return *d;
    if (auto* n = std::get_if<int64_t>(&v.data)) return static_cast<double>(*n);
    detail::expected(i, "number", v);
  }
};
template <>
struct FromValue<float> {
  static float get(const Value& v, int i) {
    return static_cast<float>(FromValue<double>::get(v, i));
  }
};
template <>
struct FromValue<std::string> {
  static std::string get(const Value& v, int i) {
    if (auto* s = std::get_if<std::string>(&v.data)) return *s;
    detail::expected(i, "string", v);
  }
};
template <>
struct FromValue<at::Tensor> {
  static at::Tensor get(const Value& v, int i) {
    if (auto* t = std::get_if<at::Tensor>(&v.data)) return *t;
    detail::expected(i, "tensor", v);
  }
};
template <>
struct FromValue<ModelPtr> {
  static ModelPtr get(const Value& v, int i) {
    if (auto* m = std::get_if<ModelPtr>(&v.data)) return *m;
    detail::expected(i, "model", v);
  }
};
template <>
struct FromValue<List> {
  static List get(const Value& v, int i) {
    if (auto* l = std::get_if<List>(&v.data)) return *l;
    if (auto* t = std::get_if<Table>(&v.data); t && t->empty()) return {};
    detail::expected(i, "list", v);
  }
};
template <>
struct FromValue<Table> {
  static Table get(const Value& v, int i) {
    if (v.is_nil()) return {};  // omitted options
    if (auto* t = std::get_if<Table>(&v.data)) return *t;
    if (auto* l = std::get_if<List>(&v.data); l && l->empty()) return {};
    detail::expected(i, "table", v);
  }
};
template <>
struct FromValue<Value> {
  static Value get(const Value& v, int) { return v; }
};
template <typename T>
struct FromValue<std::optional<T>> {
  static std::optional<T> get(const Value& v, int i) {
    if (v.is_nil()) return std::nullopt;
    return FromValue<T>::get(v, i);
  }
};
template <typename T>
struct FromValue<std::vector<T>> {
  static std::vector<T> get(const Value& v, int i) {
    std::vector<T> out;
    for (const auto& item : FromValue<List>::get(v, i)) out.push_back(FromValue<T>::get(item, i));
    return out;
  }
};

// An option from a Table, converted like an argument; `index` is the table's argument position.
template <typename T>
T option(const Table& options, const std::string& key, T fallback, int index = 0) {
  auto it = options.find(key);
  if (it == options.end() || it->second.is_nil()) return fallback;
  try {
    return FromValue<T>::get(it->second, index);
  } catch (const ArgumentError& e) {
    throw ArgumentError(index, "option '" + key + "': " + e.what());
  }
}

// Rejects option keys outside `known`, naming the first unknown one.
inline void check_options(const Table& options, const std::vector<std::string>& known, int index) {
  for (const auto& [key, value] : options) {
    bool found = false;
    for (const auto& k : known) found = found || k == key;
    if (!found) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ArgumentError(index, "unknown option '" + key + "' (expected " + list + ")");
    }
  }
}

// ---- Functions ----
struct Function {
  std::string name;
  std::string doc;  // first line: the one-line summary `llmscope plugins` shows
  std::function<Value(const List& args)> call;
};

namespace detail {
template <typename R, typename... A, size_t... I>
Value invoke(const std::function<R(A...)>& fn, const List& args, std::index_sequence<I...>) {
  static const Value nil;
  auto arg = [&](size_t i) -> const Value& { return i < args.size() ? args[i] : nil; };
  if constexpr (std::is_void_v<R>) {
    fn(FromValue<std::decay_t<A>>::get(arg(I), static_cast<int>(I) + 1)...);
    return Value();
  } else {
    return Value(fn(FromValue<std::decay_t<A>>::get(arg(I), static_cast<int>(I) + 1)...));
  }
}
}  // namespace detail

class Module {
 public:
  // Registers `fn`, a plain C++ callable. Its parameter types (bool, int, int64_t, double,
  // std::string, at::Tensor, ModelPtr, List, Table, std::vector<T>, std::optional<T>, Value)
  // say how Lua arguments convert; a missing argument is nil. It may return void or any of them.
  template <typename F>
  void def(const std::string& name, const std::string& doc, F fn) {
    std::function wrapped(std::move(fn));
    add(name, doc, make_call(std::move(wrapped)));
  }

  const std::vector<Function>& functions() const { return functions_; }
  const Function* find(const std::string& name) const {
    for (const auto& f : functions_) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }

  // Installs a native (C++) hook on `model` that keeps this plugin loaded for as long as the
  // hook exists, so unloading a plugin can never leave a model calling freed code. Defined in
  // the core library on purpose: the wrapper that finally releases the library must not be
  // code inside the library being released.
  HookHandle hook(Model& model, const std::string& name, HookFn fn);

 private:
  // The host (and only the host) sets what keeps the plugin's library loaded.
  friend class PluginHost;
  void set_keep_alive(std::function<std::shared_ptr<void>()> keep_alive) {
    keep_alive_ = std::move(keep_alive);
  }

  template <typename R, typename... A>
  static std::function<Value(const List&)> make_call(std::function<R(A...)> fn) {
    return [fn = std::move(fn)](const List& args) {
      return detail::invoke(fn, args, std::index_sequence_for<A...>{});
    };
  }
  void add(const std::string& name, const std::string& doc,
           std::function<Value(const List&)> call) {
    if (find(name)) throw Error("function '" + name + "' is defined twice");
    functions_.push_back(Function{name, doc, std::move(call)});
  }

  std::vector<Function> functions_;
  std::function<std::shared_ptr<void>()> keep_alive_;
};

}  // namespace llmscope::plugin
