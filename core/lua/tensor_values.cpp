// Lua values to tensors and back (see tensor_binding.hpp).
#include "tensor_binding.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ScalarOps.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "binding.hpp"
#include "host_context.hpp"
#include "llmscope/error.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::lua::tensor_values {

// ---- dtypes and devices ----

struct DtypeName {
  const char* name;
  at::ScalarType type;
};

// Canonical names first (dtype() returns the first match), then PyTorch's aliases.
constexpr DtypeName kDtypes[] = {
    {"float32", at::kFloat},
    {"float64", at::kDouble},
    {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},
    {"int32", at::kInt},
    {"int16", at::kShort},
    {"int8", at::kChar},
    {"uint8", at::kByte},
    {"bool", at::kBool},
    {"complex64", at::kComplexFloat},
    {"complex128", at::kComplexDouble},
    {"float", at::kFloat},
    {"double", at::kDouble},
    {"half", at::kHalf},
    {"long", at::kLong},
    {"int", at::kInt},
    {"short", at::kShort},
};

std::optional<at::ScalarType> parse_dtype(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.type;
  }
  return std::nullopt;
}

std::string dtype_name(at::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (type == d.type) return d.name;
  }
  return c10::toString(type);
}

std::optional<at::Device> parse_device(const std::string& name) {
  try {
    return at::Device(name);
  } catch (const c10::Error&) {
    return std::nullopt;
  }
}

at::ScalarType check_dtype_option(int opts, const std::string& name) {
  if (auto type = parse_dtype(name)) return *type;
  throw ArgError(opts, "unknown dtype '" + name +
                           "' (expected float32, float64, float16, bfloat16, int64, int32, int16, "
                           "int8, uint8, bool, complex64 or complex128)");
}

// ---- plain arguments ----

// c10::optional: ATen 1.13's signatures take it, not std::optional.
c10::optional<int64_t> optional_integer(lua_State* L, int arg) {
  if (is_none_or_nil(L, arg)) return c10::nullopt;
  return check_integer(L, arg);
}

int64_t integer_or(lua_State* L, int arg, int64_t fallback) {
  return optional_integer(L, arg).value_or(fallback);
}

double number_or(lua_State* L, int arg, double fallback) {
  return is_none_or_nil(L, arg) ? fallback : check_number(L, arg);
}

bool boolean_or(lua_State* L, int arg, bool fallback) {
  return is_none_or_nil(L, arg) ? fallback : check_boolean(L, arg);
}

// A Lua array of integers: a shape, a permutation, a list of dims.
std::vector<int64_t> check_integer_list(lua_State* L, int arg) {
  check_table(L, arg);
  arg = lua_absindex(L, arg);
  std::vector<int64_t> values;
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, arg));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, arg, i);
    int ok = 0;
    lua_Integer value = lua_tointegerx(L, -1, &ok);
    if (!ok || lua_type(L, -1) != LUA_TNUMBER) {
      std::string got = lua_type(L, -1) == LUA_TNUMBER ? "a non-integer" : "a " + type_name(L, -1);
      throw ArgError(arg, "list of integers expected, entry " + std::to_string(i) + " is " + got);
    }
    values.push_back(value);
    lua_pop(L, 1);
  }
  return values;
}

// A dim argument that may also be a list of dims (sum, mean, std, ...).
std::vector<int64_t> check_dims(lua_State* L, int arg) {
  if (lua_type(L, arg) == LUA_TTABLE) return check_integer_list(L, arg);
  return {check_integer(L, arg)};
}

bool is_scalar(lua_State* L, int arg) {
  int type = lua_type(L, arg);
  return type == LUA_TNUMBER || type == LUA_TBOOLEAN;
}

// A Lua number keeps its subtype: integers become integral Scalars, floats double ones.
at::Scalar to_scalar(lua_State* L, int arg) {
  if (lua_type(L, arg) == LUA_TBOOLEAN) return at::Scalar(lua_toboolean(L, arg) != 0);
  if (lua_isinteger(L, arg)) return at::Scalar(static_cast<int64_t>(lua_tointeger(L, arg)));
  return at::Scalar(lua_tonumber(L, arg));
}

at::Scalar check_scalar(lua_State* L, int arg) {
  if (!is_scalar(L, arg)) type_error(L, arg, "number");
  return to_scalar(L, arg);
}

// ---- Lua tables -> tensors ----

constexpr size_t kMaxDims = 64;

// Nested Lua arrays -> a CPU tensor, by torch.tensor's rule: the first entry at each depth
// fixes that dimension and every other row must match. Integers only -> int64, booleans only ->
// bool, anything else float32 (PyTorch's default dtype) unless `dtype` says otherwise.
class TableReader {
 public:
  TableReader(lua_State* L, int arg) : L_(L), arg_(lua_absindex(L, arg)) {}

  at::Tensor read(std::optional<at::ScalarType> dtype) {
    if (!lua_checkstack(L_, static_cast<int>(kMaxDims) + 8)) throw Error("Lua stack overflow");
    int top = lua_gettop(L_);
    find_shape();
    lua_settop(L_, top);
    walk(arg_, 0);
    lua_settop(L_, top);

    at::Tensor result;
    if (reals_.empty()) {
      result = at::empty(shape_, at::kFloat);
    } else if (integers_) {
      result = at::tensor(ints_, at::kLong).reshape(shape_);
      if (booleans_) result = result.to(at::kBool);
    } else {
      result = at::tensor(reals_, at::kDouble).reshape(shape_);
      if (!dtype) result = result.to(at::kFloat);
    }
    return dtype ? result.to(*dtype) : result;
  }

 private:
  void find_shape() {
    int index = arg_;
    for (;;) {
      int64_t n = static_cast<int64_t>(lua_rawlen(L_, index));
      shape_.push_back(n);
      if (n == 0 || lua_rawgeti(L_, index, 1) != LUA_TTABLE) return;
      // A table that contains itself would otherwise recurse forever.
      if (shape_.size() >= kMaxDims) throw ArgError(arg_, "nested table is too deep");
      index = lua_gettop(L_);
    }
  }

  void walk(int index, size_t depth) {
    int64_t n = static_cast<int64_t>(lua_rawlen(L_, index));
    if (n != shape_[depth]) {
      throw ArgError(arg_, "nested table is not rectangular (rows of " +
                               std::to_string(shape_[depth]) + " and " + std::to_string(n) +
                               " entries)");
    }
    bool leaf = depth + 1 == shape_.size();
    for (int64_t i = 1; i <= n; ++i) {
      int type = lua_rawgeti(L_, index, static_cast<lua_Integer>(i));
      if (type == LUA_TTABLE) {
        if (leaf) throw ArgError(arg_, "nested table is not rectangular (a table among numbers)");
        walk(lua_gettop(L_), depth + 1);
      } else if (!leaf && (type == LUA_TNUMBER || type == LUA_TBOOLEAN)) {
        throw ArgError(arg_, "nested table is not rectangular (a number among rows)");
      } else if (type == LUA_TNUMBER) {
        booleans_ = false;
        if (lua_isinteger(L_, -1)) {
          lua_Integer value = lua_tointeger(L_, -1);
          ints_.push_back(value);
          reals_.push_back(static_cast<double>(value));
        } else {
          integers_ = false;
          reals_.push_back(lua_tonumber(L_, -1));
        }
      } else if (type == LUA_TBOOLEAN) {
        int value = lua_toboolean(L_, -1);
        ints_.push_back(value);
        reals_.push_back(value);
      } else {
        throw ArgError(arg_, "table of numbers expected, found a " + type_name(L_, -1) + " inside");
      }
      lua_pop(L_, 1);
    }
  }

  lua_State* L_;
  int arg_;
  std::vector<int64_t> shape_;
  std::vector<double> reals_;
  std::vector<int64_t> ints_;
  bool integers_ = true;
  bool booleans_ = true;
};

at::Tensor table_to_tensor(lua_State* L, int arg, std::optional<at::ScalarType> dtype) {
  return TableReader(L, arg).read(dtype);
}

// A tensor argument, or a Lua value made into one the way PyTorch treats Python values:
// numbers become "wrapped numbers", which do not widen the result (float16 + 1.5 stays
// float16); tables become tensors on `device`.
at::Tensor operand(lua_State* L, int arg, at::Device device) {
  if (at::Tensor* t = test_tensor(L, arg)) return *t;
  switch (lua_type(L, arg)) {
    case LUA_TNUMBER:
    case LUA_TBOOLEAN:
      return at::native::wrapped_scalar_tensor(to_scalar(L, arg), device);
    case LUA_TTABLE:
      return table_to_tensor(L, arg).to(device);
    default:
      type_error(L, arg, "tensor, number or table of numbers");
  }
}

// Indices: a tensor, an integer or a table of integers, as an int64 tensor on `device`.
at::Tensor index_operand(lua_State* L, int arg, at::Device device) {
  if (at::Tensor* t = test_tensor(L, arg)) return *t;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    return at::full({1}, check_integer(L, arg), at::TensorOptions(device).dtype(at::kLong));
  }
  if (lua_type(L, arg) == LUA_TTABLE) return table_to_tensor(L, arg).to(device);
  type_error(L, arg, "tensor, integer or table of integers");
}

// Two operands for value comparisons (equal, allclose), promoted to one dtype.
std::pair<at::Tensor, at::Tensor> promoted(const at::Tensor& a, const at::Tensor& b) {
  at::ScalarType type = at::result_type(a, b);
  return {a.to(type), b.to(type)};
}

std::vector<at::Tensor> check_tensor_list(lua_State* L, int arg) {
  check_table(L, arg);
  arg = lua_absindex(L, arg);
  std::vector<at::Tensor> tensors;
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, arg));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, arg, i);
    at::Tensor* t = test_tensor(L, -1);
    if (t == nullptr) {
      throw ArgError(arg, "list of tensors expected, entry " + std::to_string(i) + " is a " +
                              type_name(L, -1));
    }
    tensors.push_back(*t);
    lua_pop(L, 1);
  }
  return tensors;
}

// ---- pushing results ----

void push_tensors(lua_State* L, const std::vector<at::Tensor>& tensors) {
  lua_createtable(L, static_cast<int>(tensors.size()), 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    push_tensor(L, tensors[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

void push_integer_list(lua_State* L, at::IntArrayRef values) {
  lua_createtable(L, static_cast<int>(values.size()), 0);
  for (size_t i = 0; i < values.size(); ++i) {
    lua_pushinteger(L, values[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

int push_pair(lua_State* L, const std::tuple<at::Tensor, at::Tensor>& pair) {
  push_tensor(L, std::get<0>(pair));
  push_tensor(L, std::get<1>(pair));
  return 2;
}

// A 0-d tensor's value as the matching Lua type: integer, float or boolean.
void push_scalar(lua_State* L, const at::Scalar& value) {
  if (value.isBoolean()) {
    lua_pushboolean(L, value.toBool());
  } else if (value.isIntegral(false)) {
    lua_pushinteger(L, value.toLong());
  } else if (value.isFloatingPoint()) {
    lua_pushnumber(L, value.toDouble());
  } else {
    throw Error("complex values have no Lua number (take :real() or :abs() first)");
  }
}

int return_self(lua_State* L) {
  lua_pushvalue(L, 1);
  return 1;
}

// The whole contiguous CPU copy walked by hand: one select() per element would be slow.
template <typename T>
void push_nested(lua_State* L, const T* data, at::IntArrayRef sizes, at::IntArrayRef strides,
                 size_t depth) {
  int64_t n = sizes[depth];
  lua_createtable(L, static_cast<int>(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    const T* item = data + i * strides[depth];
    if (depth + 1 < sizes.size()) {
      push_nested(L, item, sizes, strides, depth + 1);
    } else if constexpr (std::is_same_v<T, bool>) {
      lua_pushboolean(L, *item);
    } else if constexpr (std::is_same_v<T, int64_t>) {
      lua_pushinteger(L, *item);
    } else {
      lua_pushnumber(L, *item);
    }
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

void push_list(lua_State* L, const at::Tensor& tensor) {
  at::NoGradGuard no_grad;
  at::Tensor t = tensor.detach().cpu();
  if (t.dim() == 0) {
    push_scalar(L, t.item());
    return;
  }
  if (!lua_checkstack(L, static_cast<int>(t.dim()) + 4)) throw Error("Lua stack overflow");
  if (t.scalar_type() == at::kBool) {
    t = t.contiguous();
    push_nested(L, t.data_ptr<bool>(), t.sizes(), t.strides(), 0);
  } else if (at::isIntegralType(t.scalar_type(), false)) {
    t = t.to(at::kLong).contiguous();
    push_nested(L, t.data_ptr<int64_t>(), t.sizes(), t.strides(), 0);
  } else if (at::isFloatingType(t.scalar_type())) {
    t = t.to(at::kDouble).contiguous();
    push_nested(L, t.data_ptr<double>(), t.sizes(), t.strides(), 0);
  } else {
    throw Error("tolist: " + dtype_name(t.scalar_type()) + " tensors have no Lua numbers");
  }
}

// ---- __tostring ----

std::string format_number(const at::Scalar& value) {
  if (value.isBoolean()) return value.toBool() ? "true" : "false";
  if (value.isIntegral(false)) return std::to_string(value.toLong());
  auto real = [](double v) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.4g", v);
    std::string text = buffer;
    // Like Lua's own "1.0": a float never reads as an integer.
    if (std::isfinite(v) && text.find_first_of(".e") == std::string::npos) text += ".0";
    return text;
  };
  if (value.isComplex()) {
    auto c = value.toComplexDouble();
    return real(c.real()) + (c.imag() < 0 ? "-" : "+") + real(std::abs(c.imag())) + "i";
  }
  return real(value.toDouble());
}

// At most 3 + 3 entries per row, and as many rows in a matrix; beyond 2-D only the first and
// last entry of each outer dim. Even [1024, 50257] logits print as one short line.
void format_values(std::string& out, const at::Tensor& t, int64_t total_dims) {
  if (t.dim() == 0) {
    out += format_number(t.item());
    return;
  }
  int64_t n = t.size(0);
  int64_t edge = t.dim() == 1 || total_dims <= 2 ? 3 : 1;
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) out += ", ";
    if (n > 2 * edge && i == edge) {
      out += "...";
      i = n - edge - 1;
      continue;
    }
    format_values(out, t.select(0, i), total_dims);
  }
  out += ']';
}

std::string describe(const at::Tensor& t) {
  std::string out = "tensor([";
  for (int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  out += "] " + dtype_name(t.scalar_type());
  if (!t.device().is_cpu()) out += " " + t.device().str();
  if (t.requires_grad()) out += " requires_grad";
  out += ") ";
  at::NoGradGuard no_grad;
  format_values(out, t.detach(), t.dim());
  return out;
}

Creation creation_options(lua_State* L, int opts, bool seeded) {
  if (seeded) {
    check_option_keys(L, opts, {"dtype", "device", "requires_grad", "seed"});
  } else {
    check_option_keys(L, opts, {"dtype", "device", "requires_grad"});
  }
  Creation c;
  if (auto name = opt_string(L, opts, "dtype")) c.dtype = check_dtype_option(opts, *name);
  if (auto name = opt_string(L, opts, "device")) {
    auto device = parse_device(*name);
    if (!device) {
      throw ArgError(opts, "option 'device' must be a device such as \"cpu\" or \"cuda:0\", got '" +
                               *name + "'");
    }
    c.device = *device;
  }
  c.requires_grad = opt_boolean(L, opts, "requires_grad").value_or(false);
  if (seeded) c.seed = opt_integer(L, opts, "seed");
  return c;
}

// Index of a trailing options table after `positional` arguments (0 if there is none).
int trailing_options(lua_State* L, int& positional) {
  positional = lua_gettop(L);
  if (positional > 0 && lua_type(L, positional) == LUA_TTABLE) return positional--;
  return positional + 1;
}

}  // namespace llmscope::lua::tensor_values
