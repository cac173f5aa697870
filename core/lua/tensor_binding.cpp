// The `tensor` module and the llmscope.Tensor type: ATen tensors in Lua userdata, with
// PyTorch's names and PyTorch's 0-based dims and indices. Lua numbers stand in wherever PyTorch
// takes a Python scalar, and tables made from tensors are ordinary (1-based) Lua arrays.
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

namespace llmscope::lua {
namespace {

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

at::Tensor table_to_tensor(lua_State* L, int arg, std::optional<at::ScalarType> dtype = {}) {
  return TableReader(L, arg).read(dtype);
}

// A tensor argument, or a Lua value made into one the way PyTorch treats Python values:
// numbers become "wrapped numbers", which do not widen the result (float16 + 1.5 stays
// float16); tables become tensors on `device`.
at::Tensor operand(lua_State* L, int arg, at::Device device = at::kCPU) {
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

// ---- creation options ----

struct Creation {
  std::optional<at::ScalarType> dtype;
  at::Device device = at::kCPU;
  bool requires_grad = false;
  std::optional<int64_t> seed;

  at::TensorOptions options() const {
    at::TensorOptions o = at::TensorOptions().device(device);
    return dtype ? o.dtype(*dtype) : o;
  }
  at::Tensor finish(at::Tensor t) const {
    if (dtype && t.scalar_type() != *dtype) t = t.to(*dtype);
    if (t.device() != device) t = t.to(device);
    if (requires_grad) t.set_requires_grad(true);
    return t;
  }
};

Creation creation_options(lua_State* L, int opts, bool seeded = false) {
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

// ---- module functions ----

int t_zeros(lua_State* L) {
  auto shape = check_integer_list(L, 1);
  Creation c = creation_options(L, 2);
  push_tensor(L, c.finish(at::zeros(shape, c.options())));
  return 1;
}

int t_ones(lua_State* L) {
  auto shape = check_integer_list(L, 1);
  Creation c = creation_options(L, 2);
  push_tensor(L, c.finish(at::ones(shape, c.options())));
  return 1;
}

int t_full(lua_State* L) {
  auto shape = check_integer_list(L, 1);
  at::Scalar value = check_scalar(L, 2);
  Creation c = creation_options(L, 3);
  // Without a dtype, a float fills float32 (not float64) as in PyTorch; integers int64.
  at::TensorOptions options = c.options();
  if (!c.dtype && value.isFloatingPoint()) options = options.dtype(at::kFloat);
  push_tensor(L, c.finish(at::full(shape, value, options)));
  return 1;
}

// randn/rand: with opts.seed the numbers come from a private CPU generator (then move to the
// device), so a seed gives the same tensor on every device and leaves the global stream alone.
template <bool Normal>
int t_random(lua_State* L) {
  auto shape = check_integer_list(L, 1);
  Creation c = creation_options(L, 2, /*seeded=*/true);
  at::Tensor result;
  if (c.seed) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(*c.seed);
    at::TensorOptions cpu = at::TensorOptions(at::kCPU).dtype(c.dtype.value_or(at::kFloat));
    result = Normal ? at::randn(shape, generator, cpu) : at::rand(shape, generator, cpu);
  } else {
    result = Normal ? at::randn(shape, c.options()) : at::rand(shape, c.options());
  }
  push_tensor(L, c.finish(result));
  return 1;
}

int t_arange(lua_State* L) {
  int count = 0;
  int opts = trailing_options(L, count);
  Creation c = creation_options(L, opts);
  at::Scalar start = 0, stop, step = 1;
  if (count <= 1) {
    stop = check_scalar(L, 1);
  } else {
    start = check_scalar(L, 1);
    stop = check_scalar(L, 2);
    if (count >= 3) step = check_scalar(L, 3);
  }
  // Integers give int64, as torch.arange does; any float gives float32.
  at::TensorOptions options = c.options();
  if (!c.dtype) {
    bool integral = !start.isFloatingPoint() && !stop.isFloatingPoint() && !step.isFloatingPoint();
    options = options.dtype(integral ? at::kLong : at::kFloat);
  }
  push_tensor(L, c.finish(at::arange(start, stop, step, options)));
  return 1;
}

int t_linspace(lua_State* L) {
  double start = check_number(L, 1);
  double stop = check_number(L, 2);
  int64_t steps = check_integer(L, 3);
  Creation c = creation_options(L, 4);
  push_tensor(L, c.finish(at::linspace(start, stop, steps, c.options())));
  return 1;
}

int t_eye(lua_State* L) {
  int count = 0;
  int opts = trailing_options(L, count);
  int64_t n = check_integer(L, 1);
  int64_t m = count >= 2 ? check_integer(L, 2) : n;
  Creation c = creation_options(L, opts);
  push_tensor(L, c.finish(at::eye(n, m, c.options())));
  return 1;
}

int t_new(lua_State* L) {
  Creation c = creation_options(L, 2);
  at::Tensor result;
  if (at::Tensor* t = test_tensor(L, 1)) {
    result = t->detach().clone();
  } else if (lua_type(L, 1) == LUA_TTABLE) {
    result = table_to_tensor(L, 1, c.dtype);
  } else if (is_scalar(L, 1)) {
    at::Scalar value = to_scalar(L, 1);
    at::ScalarType type = value.isFloatingPoint() ? at::kFloat
                          : value.isBoolean()     ? at::kBool
                                                  : at::kLong;
    result = at::scalar_tensor(value, c.dtype.value_or(type));
  } else {
    type_error(L, 1, "table or number");
  }
  push_tensor(L, c.finish(result));
  return 1;
}

int t_from_string(lua_State* L) {
  std::string text = check_string(L, 1);
  Creation c = creation_options(L, 2);
  std::vector<double> reals;
  std::vector<int64_t> ints;
  bool integers = true;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find_first_of(" \t\r\n,", i);
    if (end == std::string::npos) end = text.size();
    if (end > i) {
      std::string token = text.substr(i, end - i);
      // Lua's own reader: "3" is an integer, "3.0" and "1e3" floats, "0x10" hex; strtod
      // adds the "nan" and "inf" that dumps from other tools contain.
      if (lua_stringtonumber(L, token.c_str()) != 0) {
        if (lua_isinteger(L, -1)) {
          ints.push_back(lua_tointeger(L, -1));
        } else {
          integers = false;
        }
        reals.push_back(lua_tonumber(L, -1));
        lua_pop(L, 1);
      } else {
        char* end = nullptr;
        double value = std::strtod(token.c_str(), &end);
        if (end != token.c_str() + token.size()) {
          throw ArgError(
              1, "not a number: '" + token + "' (entry " + std::to_string(reals.size() + 1) + ")");
        }
        integers = false;
        reals.push_back(value);
      }
    }
    i = end + 1;
  }
  at::Tensor result;
  if (reals.empty()) {
    result = at::empty({0}, at::kFloat);
  } else if (integers) {
    result = at::tensor(ints, at::kLong);
  } else {
    result = at::tensor(reals, at::kDouble);
    if (!c.dtype) result = result.to(at::kFloat);
  }
  push_tensor(L, c.finish(result));
  return 1;
}

int t_cat(lua_State* L) {
  auto tensors = check_tensor_list(L, 1);
  push_tensor(L, at::cat(tensors, integer_or(L, 2, 0)));
  return 1;
}

int t_stack(lua_State* L) {
  auto tensors = check_tensor_list(L, 1);
  push_tensor(L, at::stack(tensors, integer_or(L, 2, 0)));
  return 1;
}

int t_where(lua_State* L) {
  at::Tensor condition;
  if (at::Tensor* t = test_tensor(L, 1)) {
    condition = *t;
  } else if (lua_type(L, 1) == LUA_TTABLE) {
    condition = table_to_tensor(L, 1);
  } else {
    type_error(L, 1, "tensor");
  }
  push_tensor(L, at::where(condition, operand(L, 2, condition.device()),
                           operand(L, 3, condition.device())));
  return 1;
}

int t_cosine_similarity_fn(lua_State* L) {
  at::Tensor a = operand(L, 1);
  at::Tensor b = operand(L, 2, a.device());
  push_tensor(L, at::cosine_similarity(a, b, integer_or(L, 3, -1), number_or(L, 4, 1e-8)));
  return 1;
}

int t_matmul_fn(lua_State* L) {
  at::Tensor a = operand(L, 1);
  push_tensor(L, at::matmul(a, operand(L, 2, a.device())));
  return 1;
}

// Returns name -> tensor and the file's metadata; the tensors are views into the mapping.
int t_load(lua_State* L) {
  std::string path = check_string(L, 1);
  SafetensorsFile file = SafetensorsFile::open(path);
  lua_createtable(L, 0, static_cast<int>(file.entries().size()));
  for (const auto& entry : file.entries()) {
    lua_pushlstring(L, entry.name.data(), entry.name.size());
    push_tensor(L, file.tensor(entry.name));
    lua_rawset(L, -3);
  }
  lua_createtable(L, 0, static_cast<int>(file.metadata().size()));
  for (const auto& [key, value] : file.metadata()) {
    lua_pushlstring(L, key.data(), key.size());
    lua_pushlstring(L, value.data(), value.size());
    lua_rawset(L, -3);
  }
  return 2;
}

int t_save(lua_State* L) {
  std::string path = check_string(L, 1);
  check_table(L, 2);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      throw ArgError(2, "table of name = tensor expected, found a " + type_name(L, -2) + " key");
    }
    std::string name = lua_tostring(L, -2);
    at::Tensor* t = test_tensor(L, -1);
    if (t == nullptr) {
      throw ArgError(2, "table of name = tensor expected, '" + name + "' is a " + type_name(L, -1));
    }
    tensors.emplace_back(name, *t);
    lua_pop(L, 1);
  }
  // Sorted, so the same table always writes the same bytes.
  std::sort(tensors.begin(), tensors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  std::map<std::string, std::string> metadata;
  if (!is_none_or_nil(L, 3)) {
    check_table(L, 3);
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {
      int value_type = lua_type(L, -1);
      if (lua_type(L, -2) != LUA_TSTRING ||
          (value_type != LUA_TSTRING && value_type != LUA_TNUMBER)) {
        throw ArgError(3, "metadata must map strings to strings or numbers");
      }
      // lua_tostring turns a number value into a string in place; harmless for lua_next,
      // which only needs the key untouched.
      metadata[lua_tostring(L, -2)] = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
  }
  save_safetensors(path, tensors, metadata);
  return 0;
}

int t_is_tensor(lua_State* L) {
  // An expired activation is still a tensor; test_tensor would throw for it.
  lua_pushboolean(L, test_userdata<TensorBox>(L, 1, kTensorType) != nullptr);
  return 1;
}

int t_no_grad(lua_State* L) {
  check_function(L, 1);
  at::NoGradGuard no_grad;
  pcall(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

int t_manual_seed(lua_State* L) {
  uint64_t seed = static_cast<uint64_t>(check_integer(L, 1));
  host_context(L).manifest.seed = std::to_string(seed);  // the run manifest records it
  {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(seed);
  }
  if (at::hasCUDA()) {
    for (int i = 0; i < at::detail::getCUDAHooks().getNumGPUs(); ++i) {
      auto generator = at::globalContext().defaultGenerator(at::Device(at::kCUDA, i));
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(seed);
    }
  }
  return 0;
}

int t_cuda_available(lua_State* L) {
  lua_pushboolean(L, at::hasCUDA());
  return 1;
}

// ---- methods: information ----

int m_shape(lua_State* L) {
  push_integer_list(L, check_tensor(L, 1).sizes());
  return 1;
}

int m_size(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  if (is_none_or_nil(L, 2)) return m_shape(L);
  lua_pushinteger(L, self.size(check_integer(L, 2)));
  return 1;
}

int m_dim(lua_State* L) {
  lua_pushinteger(L, check_tensor(L, 1).dim());
  return 1;
}

int m_numel(lua_State* L) {
  lua_pushinteger(L, check_tensor(L, 1).numel());
  return 1;
}

int m_dtype(lua_State* L) {
  lua_pushstring(L, dtype_name(check_tensor(L, 1).scalar_type()).c_str());
  return 1;
}

int m_device(lua_State* L) {
  lua_pushstring(L, check_tensor(L, 1).device().str().c_str());
  return 1;
}

int m_is_contiguous(lua_State* L) {
  lua_pushboolean(L, check_tensor(L, 1).is_contiguous());
  return 1;
}

int m_requires_grad(lua_State* L) {
  lua_pushboolean(L, check_tensor(L, 1).requires_grad());
  return 1;
}

int m_set_requires_grad(lua_State* L) {
  check_tensor(L, 1).set_requires_grad(boolean_or(L, 2, true));
  return return_self(L);
}

int m_grad(lua_State* L) {
  const at::Tensor& grad = check_tensor(L, 1).grad();
  if (grad.defined()) {
    push_tensor(L, grad);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

int m_backward(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  at::Tensor gradient;
  if (!is_none_or_nil(L, 2)) gradient = operand(L, 2, self.device()).to(self.scalar_type());
  self.backward(gradient);
  return 0;
}

// Drops the accumulated gradient (grad() is nil until the next backward()), as optimizers'
// zero_grad() and PyTorch's set_to_none do.
int m_zero_grad(lua_State* L) {
  check_tensor(L, 1).mutable_grad() = at::Tensor();
  return return_self(L);
}

int m_item(lua_State* L) {
  push_scalar(L, check_tensor(L, 1).item());
  return 1;
}

int m_tolist(lua_State* L) {
  push_list(L, check_tensor(L, 1));
  return 1;
}

int m_tostring(lua_State* L) {
  // Never throws for an expired activation: printing one is how people find out.
  TensorBox* box = test_userdata<TensorBox>(L, 1, kTensorType);
  if (box == nullptr) type_error(L, 1, "tensor");
  if (box->lease && box->lease->expired) {
    lua_pushstring(L, ("tensor(expired activation '" + box->site + "')").c_str());
    return 1;
  }
  std::string text = describe(check_tensor(L, 1));
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

// ---- methods: conversion ----

int m_to(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  std::optional<at::ScalarType> dtype;
  std::optional<at::Device> device;
  for (int i = 2; i <= lua_gettop(L); ++i) {
    if (at::Tensor* other = test_tensor(L, i)) {
      dtype = other->scalar_type();
      device = other->device();
      continue;
    }
    std::string name = check_string(L, i);
    if (auto type = parse_dtype(name)) {
      dtype = type;
    } else if (auto dev = parse_device(name)) {
      device = dev;
    } else {
      throw ArgError(i, "dtype or device expected, got '" + name + "'");
    }
  }
  push_tensor(L, self.to(device.value_or(self.device()), dtype.value_or(self.scalar_type())));
  return 1;
}

template <at::ScalarType Type>
int m_as(lua_State* L) {
  push_tensor(L, check_tensor(L, 1).to(Type));
  return 1;
}

int m_contiguous(lua_State* L) {
  push_tensor(L, check_tensor(L, 1).contiguous());
  return 1;
}

int m_clone(lua_State* L) {
  push_tensor(L, check_tensor(L, 1).clone());
  return 1;
}

int m_detach(lua_State* L) {
  push_tensor(L, check_tensor(L, 1).detach());
  return 1;
}

int m_cpu(lua_State* L) {
  push_tensor(L, check_tensor(L, 1).cpu());
  return 1;
}

int m_cuda(lua_State* L) {
  push_tensor(L, check_tensor(L, 1).to(at::Device(at::kCUDA)));
  return 1;
}

// ---- methods: shape ----

int m_view(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.view(check_integer_list(L, 2)));
  return 1;
}

int m_reshape(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.reshape(check_integer_list(L, 2)));
  return 1;
}

int m_flatten(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.flatten(integer_or(L, 2, 0), integer_or(L, 3, -1)));
  return 1;
}

int m_squeeze(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  auto dim = optional_integer(L, 2);
  push_tensor(L, dim ? self.squeeze(*dim) : self.squeeze());
  return 1;
}

int m_unsqueeze(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.unsqueeze(check_integer(L, 2)));
  return 1;
}

int m_transpose(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.transpose(check_integer(L, 2), check_integer(L, 3)));
  return 1;
}

int m_permute(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.permute(check_integer_list(L, 2)));
  return 1;
}

int m_t(lua_State* L) {
  push_tensor(L, check_tensor(L, 1).t());
  return 1;
}

int m_expand(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.expand(check_integer_list(L, 2)));
  return 1;
}

int m_split(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  int64_t dim = integer_or(L, 3, 0);
  if (lua_type(L, 2) == LUA_TTABLE) {
    push_tensors(L, self.split_with_sizes(check_integer_list(L, 2), dim));
  } else {
    push_tensors(L, self.split(check_integer(L, 2), dim));
  }
  return 1;
}

int m_chunk(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensors(L, self.chunk(check_integer(L, 2), integer_or(L, 3, 0)));
  return 1;
}

// ---- methods: indexing ----

// A 0-based index along `dim`, negative counting from the end, checked with a message that
// says so (ATen's own does not mention either).
int64_t checked_index(const at::Tensor& t, int64_t dim, int64_t index) {
  if (t.dim() == 0) throw Error("cannot index a 0-d tensor (use :item())");
  dim = at::maybe_wrap_dim(dim, t.dim());
  int64_t size = t.size(dim);
  if (index < -size || index >= size) {
    throw Error("index " + std::to_string(index) + " is out of range for dimension " +
                std::to_string(dim) + " of size " + std::to_string(size) +
                " (indices are 0-based: 0 to " + std::to_string(size - 1) + ", or -" +
                std::to_string(size) + " to -1 from the end)");
  }
  return index < 0 ? index + size : index;
}

int m_select(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  int64_t dim = check_integer(L, 2);
  int64_t index = check_integer(L, 3);
  push_tensor(L, self.select(dim, checked_index(self, dim, index)));
  return 1;
}

int m_narrow(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.narrow(check_integer(L, 2), check_integer(L, 3), check_integer(L, 4)));
  return 1;
}

int m_slice(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  int64_t dim = check_integer(L, 2);
  auto start = optional_integer(L, 3);
  auto stop = optional_integer(L, 4);
  push_tensor(L, self.slice(dim, start, stop, integer_or(L, 5, 1)));
  return 1;
}

int m_index(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  int64_t dim = check_integer(L, 2);
  at::Tensor index = index_operand(L, 3, self.device());
  // Negative indices count from the end, as they do for t[i] and select().
  if (self.dim() > 0 && at::isIntegralType(index.scalar_type(), false)) {
    index = at::where(index < 0, index + self.size(dim), index);
  }
  push_tensor(L, self.index_select(dim, index.flatten()));
  return 1;
}

int m_masked_select(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.masked_select(operand(L, 2, self.device())));
  return 1;
}

int m_masked_fill(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  at::Tensor mask = operand(L, 2, self.device());
  if (at::Tensor* value = test_tensor(L, 3)) {
    push_tensor(L, self.masked_fill(mask, *value));
  } else {
    push_tensor(L, self.masked_fill(mask, check_scalar(L, 3)));
  }
  return 1;
}

int m_index_fill(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  int64_t dim = check_integer(L, 2);
  at::Tensor index = index_operand(L, 3, self.device());
  push_tensor(L, self.index_fill(dim, index.flatten(), check_scalar(L, 4)));
  return 1;
}

int m_gather(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  int64_t dim = check_integer(L, 2);
  push_tensor(L, self.gather(dim, index_operand(L, 3, self.device())));
  return 1;
}

int m_fill(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  if (at::Tensor* value = test_tensor(L, 2)) {
    self.fill_(*value);
  } else {
    self.fill_(check_scalar(L, 2));
  }
  return return_self(L);
}

int m_copy(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  self.copy_(operand(L, 2, self.device()));
  return return_self(L);
}

// __index: method names come from the methods table (upvalue 1); an integer selects along
// dim 0, so t[0] is the first row.
int meta_index(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
  }
  if (lua_type(L, 2) != LUA_TNUMBER) {
    lua_pushnil(L);
    return 1;
  }
  int is_integer = 0;
  lua_Integer index = lua_tointegerx(L, 2, &is_integer);
  if (!is_integer) {
    char number[32];
    std::snprintf(number, sizeof number, "%.14g", lua_tonumber(L, 2));
    throw Error(std::string("tensor index must be an integer, got ") + number);
  }
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.select(0, checked_index(self, 0, index)));
  return 1;
}

// __newindex: t[i] = number | tensor | table copies into row i (broadcasting).
int meta_newindex(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  int is_integer = 0;
  lua_Integer index = lua_tointegerx(L, 2, &is_integer);
  if (lua_type(L, 2) != LUA_TNUMBER || !is_integer) {
    throw Error("tensors take only t[i] = value with an integer index, not a " + type_name(L, 2) +
                " key");
  }
  at::Tensor row = self.select(0, checked_index(self, 0, index));
  if (is_scalar(L, 3)) {
    row.fill_(to_scalar(L, 3));
  } else {
    row.copy_(operand(L, 3, self.device()));
  }
  return 0;
}

// ---- methods: arithmetic ----

using Binary = at::Tensor (*)(const at::Tensor&, const at::Tensor&);

at::Tensor op_add(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }
at::Tensor op_sub(const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }
at::Tensor op_mul(const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }
at::Tensor op_div(const at::Tensor& a, const at::Tensor& b) { return at::div(a, b); }
at::Tensor op_pow(const at::Tensor& a, const at::Tensor& b) { return at::pow(a, b); }
// Lua's % and // round toward minus infinity, as Python's do: remainder, not fmod.
at::Tensor op_mod(const at::Tensor& a, const at::Tensor& b) { return at::remainder(a, b); }
at::Tensor op_idiv(const at::Tensor& a, const at::Tensor& b) { return at::div(a, b, "floor"); }
at::Tensor op_eq(const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }
at::Tensor op_ne(const at::Tensor& a, const at::Tensor& b) { return at::ne(a, b); }
at::Tensor op_lt(const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }
at::Tensor op_le(const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }
at::Tensor op_gt(const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }
at::Tensor op_ge(const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }
at::Tensor op_matmul(const at::Tensor& a, const at::Tensor& b) { return at::matmul(a, b); }
at::Tensor op_mm(const at::Tensor& a, const at::Tensor& b) { return at::mm(a, b); }
at::Tensor op_dot(const at::Tensor& a, const at::Tensor& b) { return at::dot(a, b); }
at::Tensor op_outer(const at::Tensor& a, const at::Tensor& b) { return at::outer(a, b); }

// t:op(other)
template <Binary Op>
int binary_method(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, Op(self, operand(L, 2, self.device())));
  return 1;
}

// a op b where either side may be the tensor (2 * t, t - 1, {1, 2} + t).
template <Binary Op>
int binary_meta(lua_State* L) {
  at::Tensor* a = test_tensor(L, 1);
  at::Tensor* b = test_tensor(L, 2);
  at::Device device = a ? a->device() : b ? b->device() : at::Device(at::kCPU);
  push_tensor(L, Op(operand(L, 1, device), operand(L, 2, device)));
  return 1;
}

int meta_unm(lua_State* L) {
  push_tensor(L, at::neg(check_tensor(L, 1)));
  return 1;
}

int meta_len(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  if (self.dim() == 0) throw Error("a 0-d tensor has no length (use :item())");
  lua_pushinteger(L, self.size(0));
  return 1;
}

int m_add(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  at::Tensor other = operand(L, 2, self.device());
  push_tensor(
      L, is_none_or_nil(L, 3) ? at::add(self, other) : at::add(self, other, check_scalar(L, 3)));
  return 1;
}

int m_add_(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  at::Tensor other = operand(L, 2, self.device());
  if (is_none_or_nil(L, 3)) {
    self.add_(other);
  } else {
    self.add_(other, check_scalar(L, 3));
  }
  return return_self(L);
}

int m_sub_(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  self.sub_(operand(L, 2, self.device()));
  return return_self(L);
}

int m_mul_(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  self.mul_(operand(L, 2, self.device()));
  return return_self(L);
}

int m_div_(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  self.div_(operand(L, 2, self.device()));
  return return_self(L);
}

int m_zero_(lua_State* L) {
  check_tensor(L, 1).zero_();
  return return_self(L);
}

using Unary = at::Tensor (*)(const at::Tensor&);

at::Tensor op_neg(const at::Tensor& t) { return at::neg(t); }
at::Tensor op_abs(const at::Tensor& t) { return at::abs(t); }
at::Tensor op_sqrt(const at::Tensor& t) { return at::sqrt(t); }
at::Tensor op_exp(const at::Tensor& t) { return at::exp(t); }
at::Tensor op_log(const at::Tensor& t) { return at::log(t); }
at::Tensor op_sin(const at::Tensor& t) { return at::sin(t); }
at::Tensor op_cos(const at::Tensor& t) { return at::cos(t); }
at::Tensor op_tanh(const at::Tensor& t) { return at::tanh(t); }
at::Tensor op_sigmoid(const at::Tensor& t) { return at::sigmoid(t); }
at::Tensor op_relu(const at::Tensor& t) { return at::relu(t); }
at::Tensor op_round(const at::Tensor& t) { return at::round(t); }
at::Tensor op_floor(const at::Tensor& t) { return at::floor(t); }
at::Tensor op_ceil(const at::Tensor& t) { return at::ceil(t); }
at::Tensor op_sign(const at::Tensor& t) { return at::sign(t); }
at::Tensor op_isnan(const at::Tensor& t) { return at::isnan(t); }
at::Tensor op_nonzero(const at::Tensor& t) { return at::nonzero(t); }

template <Unary Op>
int unary_method(lua_State* L) {
  push_tensor(L, Op(check_tensor(L, 1)));
  return 1;
}

// gelu(approximate?): "none" (exact erf) or "tanh" (GPT-2's gelu_new).
int m_gelu(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  std::string approximate = is_none_or_nil(L, 2) ? "none" : check_string(L, 2);
  if (approximate != "none" && approximate != "tanh") {
    throw ArgError(2, "\"none\" or \"tanh\" expected, got '" + approximate + "'");
  }
  push_tensor(L, at::gelu(self, approximate));
  return 1;
}

int m_clamp(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  bool tensors = test_tensor(L, 2) || test_tensor(L, 3);
  if (tensors) {
    c10::optional<at::Tensor> lo, hi;
    if (!is_none_or_nil(L, 2)) lo = operand(L, 2, self.device());
    if (!is_none_or_nil(L, 3)) hi = operand(L, 3, self.device());
    push_tensor(L, at::clamp(self, lo, hi));
  } else {
    c10::optional<at::Scalar> lo, hi;
    if (!is_none_or_nil(L, 2)) lo = check_scalar(L, 2);
    if (!is_none_or_nil(L, 3)) hi = check_scalar(L, 3);
    push_tensor(L, at::clamp(self, lo, hi));
  }
  return 1;
}

// ---- methods: comparison ----

int m_equal(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  at::Tensor other = operand(L, 2, self.device());
  if (self.sizes() != other.sizes()) {
    lua_pushboolean(L, false);
    return 1;
  }
  auto [a, b] = promoted(self, other);
  lua_pushboolean(L, at::equal(a, b));
  return 1;
}

int m_allclose(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  at::Tensor other = operand(L, 2, self.device());
  auto [a, b] = promoted(self, other);
  lua_pushboolean(L, at::allclose(a, b, number_or(L, 3, 1e-5), number_or(L, 4, 1e-8)));
  return 1;
}

// any()/all(): a boolean without a dim, a bool tensor with one.
template <bool Any>
int m_any_all(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  if (is_none_or_nil(L, 2)) {
    lua_pushboolean(L, (Any ? self.any() : self.all()).item<bool>());
  } else {
    int64_t dim = check_integer(L, 2);
    bool keepdim = boolean_or(L, 3, false);
    push_tensor(L, Any ? self.any(dim, keepdim) : self.all(dim, keepdim));
  }
  return 1;
}

// ---- methods: reductions (dim?, keepdim?) ----

int m_sum(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  if (is_none_or_nil(L, 2)) {
    push_tensor(L, self.sum());
  } else {
    push_tensor(L, self.sum(check_dims(L, 2), boolean_or(L, 3, false)));
  }
  return 1;
}

int m_mean(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  if (is_none_or_nil(L, 2)) {
    push_tensor(L, self.mean());
  } else {
    push_tensor(L, self.mean(check_dims(L, 2), boolean_or(L, 3, false)));
  }
  return 1;
}

// std/var(dim?, keepdim?, unbiased?): unbiased (n - 1) by default, as in PyTorch.
template <bool Std>
int m_std_var(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  bool keepdim = boolean_or(L, 3, false);
  bool unbiased = boolean_or(L, 4, true);
  at::OptionalIntArrayRef dims;
  std::vector<int64_t> list;
  if (!is_none_or_nil(L, 2)) {
    list = check_dims(L, 2);
    dims = list;
  }
  push_tensor(
      L, Std ? at::std(self, dims, unbiased, keepdim) : at::var(self, dims, unbiased, keepdim));
  return 1;
}

int m_prod(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  if (is_none_or_nil(L, 2)) {
    push_tensor(L, self.prod());
  } else {
    push_tensor(L, self.prod(check_integer(L, 2), boolean_or(L, 3, false)));
  }
  return 1;
}

// norm(p?, dim?, keepdim?): p = 2 by default; math.huge for the max norm.
int m_norm(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  at::Scalar p = is_none_or_nil(L, 2) ? at::Scalar(2.0) : at::Scalar(check_number(L, 2));
  if (is_none_or_nil(L, 3)) {
    push_tensor(L, self.norm(p));
  } else {
    push_tensor(L, self.norm(p, check_dims(L, 3), boolean_or(L, 4, false)));
  }
  return 1;
}

// min/max/median: a 0-d tensor without a dim; values and 0-based indices with one.
enum class Extreme { kMin, kMax, kMedian };

template <Extreme Kind>
int m_extreme(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  if (is_none_or_nil(L, 2)) {
    push_tensor(L, Kind == Extreme::kMin   ? self.min()
                   : Kind == Extreme::kMax ? self.max()
                                           : self.median());
    return 1;
  }
  int64_t dim = check_integer(L, 2);
  bool keepdim = boolean_or(L, 3, false);
  return push_pair(L, Kind == Extreme::kMin   ? self.min(dim, keepdim)
                      : Kind == Extreme::kMax ? self.max(dim, keepdim)
                                              : self.median(dim, keepdim));
}

template <bool Max>
int m_arg_extreme(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  auto dim = optional_integer(L, 2);
  bool keepdim = boolean_or(L, 3, false);
  push_tensor(L, Max ? self.argmax(dim, keepdim) : self.argmin(dim, keepdim));
  return 1;
}

int m_topk(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  int64_t k = check_integer(L, 2);
  return push_pair(L, self.topk(k, integer_or(L, 3, -1), boolean_or(L, 4, true), true));
}

int m_sort(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  return push_pair(L, self.sort(integer_or(L, 2, -1), boolean_or(L, 3, false)));
}

int m_cumsum(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, self.cumsum(check_integer(L, 2)));
  return 1;
}

// ---- methods: linear algebra and nn ----

int m_softmax(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, at::softmax(self, integer_or(L, 2, -1)));
  return 1;
}

int m_log_softmax(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  push_tensor(L, at::log_softmax(self, integer_or(L, 2, -1)));
  return 1;
}

int m_cosine_similarity(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  at::Tensor other = operand(L, 2, self.device());
  push_tensor(L, at::cosine_similarity(self, other, integer_or(L, 3, -1), number_or(L, 4, 1e-8)));
  return 1;
}

int m_layer_norm(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  auto shape = check_integer_list(L, 2);
  c10::optional<at::Tensor> weight, bias;
  if (!is_none_or_nil(L, 3)) weight = check_tensor(L, 3);
  if (!is_none_or_nil(L, 4)) bias = check_tensor(L, 4);
  push_tensor(L, at::layer_norm(self, shape, weight, bias, number_or(L, 5, 1e-5)));
  return 1;
}

// U, S, Vh with A = U diag(S) Vh; reduced (full_matrices = false), as subspace work wants.
int m_svd(lua_State* L) {
  auto [u, s, vh] = at::linalg_svd(check_tensor(L, 1), /*full_matrices=*/false);
  push_tensor(L, u);
  push_tensor(L, s);
  push_tensor(L, vh);
  return 3;
}

int m_save(lua_State* L) {
  at::Tensor& self = check_tensor(L, 1);
  std::string path = check_string(L, 2);
  std::string name = is_none_or_nil(L, 3) ? "tensor" : check_string(L, 3);
  save_safetensors(path, {{name, self}});
  return 0;
}

// ---- registration ----

const luaL_Reg kMethods[] = {
    // information
    {"shape", entry<m_shape>},
    {"size", entry<m_size>},
    {"dim", entry<m_dim>},
    {"numel", entry<m_numel>},
    {"dtype", entry<m_dtype>},
    {"device", entry<m_device>},
    {"is_contiguous", entry<m_is_contiguous>},
    {"requires_grad", entry<m_requires_grad>},
    {"set_requires_grad", entry<m_set_requires_grad>},
    {"grad", entry<m_grad>},
    {"backward", entry<m_backward>},
    {"zero_grad", entry<m_zero_grad>},
    {"item", entry<m_item>},
    {"tolist", entry<m_tolist>},
    {"totable", entry<m_tolist>},
    // conversion
    {"to", entry<m_to>},
    {"float", entry<m_as<at::kFloat>>},
    {"double", entry<m_as<at::kDouble>>},
    {"half", entry<m_as<at::kHalf>>},
    {"bfloat16", entry<m_as<at::kBFloat16>>},
    {"long", entry<m_as<at::kLong>>},
    {"int", entry<m_as<at::kInt>>},
    {"bool", entry<m_as<at::kBool>>},
    {"contiguous", entry<m_contiguous>},
    {"clone", entry<m_clone>},
    {"detach", entry<m_detach>},
    {"cpu", entry<m_cpu>},
    {"cuda", entry<m_cuda>},
    // shape
    {"view", entry<m_view>},
    {"reshape", entry<m_reshape>},
    {"flatten", entry<m_flatten>},
    {"squeeze", entry<m_squeeze>},
    {"unsqueeze", entry<m_unsqueeze>},
    {"transpose", entry<m_transpose>},
    {"permute", entry<m_permute>},
    {"t", entry<m_t>},
    {"expand", entry<m_expand>},
    {"split", entry<m_split>},
    {"chunk", entry<m_chunk>},
    // indexing
    {"select", entry<m_select>},
    {"narrow", entry<m_narrow>},
    {"slice", entry<m_slice>},
    {"index", entry<m_index>},
    {"masked_select", entry<m_masked_select>},
    {"masked_fill", entry<m_masked_fill>},
    {"index_fill", entry<m_index_fill>},
    {"gather", entry<m_gather>},
    {"fill", entry<m_fill>},
    {"copy", entry<m_copy>},
    {"nonzero", entry<unary_method<op_nonzero>>},
    // arithmetic
    {"add", entry<m_add>},
    {"sub", entry<binary_method<op_sub>>},
    {"mul", entry<binary_method<op_mul>>},
    {"div", entry<binary_method<op_div>>},
    {"pow", entry<binary_method<op_pow>>},
    {"neg", entry<unary_method<op_neg>>},
    {"abs", entry<unary_method<op_abs>>},
    {"sqrt", entry<unary_method<op_sqrt>>},
    {"exp", entry<unary_method<op_exp>>},
    {"log", entry<unary_method<op_log>>},
    {"sin", entry<unary_method<op_sin>>},
    {"cos", entry<unary_method<op_cos>>},
    {"tanh", entry<unary_method<op_tanh>>},
    {"sigmoid", entry<unary_method<op_sigmoid>>},
    {"relu", entry<unary_method<op_relu>>},
    {"gelu", entry<m_gelu>},
    {"clamp", entry<m_clamp>},
    {"round", entry<unary_method<op_round>>},
    {"floor", entry<unary_method<op_floor>>},
    {"ceil", entry<unary_method<op_ceil>>},
    {"sign", entry<unary_method<op_sign>>},
    {"add_", entry<m_add_>},
    {"sub_", entry<m_sub_>},
    {"mul_", entry<m_mul_>},
    {"div_", entry<m_div_>},
    {"zero_", entry<m_zero_>},
    // comparison
    {"eq", entry<binary_method<op_eq>>},
    {"ne", entry<binary_method<op_ne>>},
    {"lt", entry<binary_method<op_lt>>},
    {"le", entry<binary_method<op_le>>},
    {"gt", entry<binary_method<op_gt>>},
    {"ge", entry<binary_method<op_ge>>},
    {"equal", entry<m_equal>},
    {"allclose", entry<m_allclose>},
    {"isnan", entry<unary_method<op_isnan>>},
    {"any", entry<m_any_all<true>>},
    {"all", entry<m_any_all<false>>},
    // reductions
    {"sum", entry<m_sum>},
    {"mean", entry<m_mean>},
    {"std", entry<m_std_var<true>>},
    {"var", entry<m_std_var<false>>},
    {"prod", entry<m_prod>},
    {"norm", entry<m_norm>},
    {"min", entry<m_extreme<Extreme::kMin>>},
    {"max", entry<m_extreme<Extreme::kMax>>},
    {"median", entry<m_extreme<Extreme::kMedian>>},
    {"argmax", entry<m_arg_extreme<true>>},
    {"argmin", entry<m_arg_extreme<false>>},
    {"topk", entry<m_topk>},
    {"sort", entry<m_sort>},
    {"cumsum", entry<m_cumsum>},
    // linear algebra and nn
    {"matmul", entry<binary_method<op_matmul>>},
    {"mm", entry<binary_method<op_mm>>},
    {"dot", entry<binary_method<op_dot>>},
    {"outer", entry<binary_method<op_outer>>},
    {"softmax", entry<m_softmax>},
    {"log_softmax", entry<m_log_softmax>},
    {"cosine_similarity", entry<m_cosine_similarity>},
    {"layer_norm", entry<m_layer_norm>},
    {"svd", entry<m_svd>},
    {"save", entry<m_save>},
    {nullptr, nullptr},
};

// No __eq/__lt/__le: Lua turns their results into one boolean, so == stays identity and
// elementwise comparison is t:eq(u) (value equality: t:equal(u)).
const luaL_Reg kMetamethods[] = {
    {"__tostring", entry<m_tostring>},
    {"__newindex", entry<meta_newindex>},
    {"__add", entry<binary_meta<op_add>>},
    {"__sub", entry<binary_meta<op_sub>>},
    {"__mul", entry<binary_meta<op_mul>>},
    {"__div", entry<binary_meta<op_div>>},
    {"__pow", entry<binary_meta<op_pow>>},
    {"__mod", entry<binary_meta<op_mod>>},
    {"__idiv", entry<binary_meta<op_idiv>>},
    {"__unm", entry<meta_unm>},
    {"__len", entry<meta_len>},
    {nullptr, nullptr},
};

const luaL_Reg kModule[] = {
    {"zeros", entry<t_zeros>},
    {"ones", entry<t_ones>},
    {"full", entry<t_full>},
    {"randn", entry<t_random<true>>},
    {"rand", entry<t_random<false>>},
    {"arange", entry<t_arange>},
    {"linspace", entry<t_linspace>},
    {"eye", entry<t_eye>},
    {"new", entry<t_new>},
    {"from_string", entry<t_from_string>},
    {"cat", entry<t_cat>},
    {"stack", entry<t_stack>},
    {"where", entry<t_where>},
    {"cosine_similarity", entry<t_cosine_similarity_fn>},
    {"matmul", entry<t_matmul_fn>},
    {"load", entry<t_load>},
    {"save", entry<t_save>},
    {"is_tensor", entry<t_is_tensor>},
    {"no_grad", entry<t_no_grad>},
    {"manual_seed", entry<t_manual_seed>},
    {"cuda_available", entry<t_cuda_available>},
    {nullptr, nullptr},
};

}  // namespace

void open_tensor(lua_State* L) {
  new_type(L, kTensorType, kMethods, destroy_userdata<TensorBox>);
  // new_type set __index to the methods table; wrap it in a function so integer keys can
  // select rows. A second open_tensor finds the function already there and keeps it.
  if (lua_getfield(L, -1, "__index") == LUA_TTABLE) {
    lua_pushcclosure(L, entry<meta_index>, 1);
    lua_setfield(L, -2, "__index");
    luaL_setfuncs(L, kMetamethods, 0);
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);  // the metatable

  luaL_newlib(L, kModule);
  lua_setglobal(L, "tensor");
}

at::Tensor to_tensor(lua_State* L, int arg) {
  if (at::Tensor* t = test_tensor(L, arg)) return *t;
  switch (lua_type(L, arg)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, arg))
        return at::scalar_tensor(static_cast<int64_t>(lua_tointeger(L, arg)), at::kLong);
      return at::scalar_tensor(lua_tonumber(L, arg), at::kFloat);
    case LUA_TBOOLEAN:
      return at::scalar_tensor(lua_toboolean(L, arg) != 0, at::kBool);
    case LUA_TTABLE:
      return table_to_tensor(L, arg);
    default:
      type_error(L, arg, "tensor, number or table of numbers");
  }
}

}  // namespace llmscope::lua
