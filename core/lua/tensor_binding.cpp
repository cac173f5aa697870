// The `tensor` module and the llmscope.Tensor type: ATen tensors in Lua userdata, with
// PyTorch's names and PyTorch's 0-based dims and indices. Lua numbers stand in wherever PyTorch
// takes a Python scalar, and tables made from tensors are ordinary (1-based) Lua arrays.
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
#include "llmscope/matmul.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::lua {
namespace {

using namespace tensor_values;

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
  push_tensor(L, llmscope::matmul(a, operand(L, 2, a.device())));
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
  open_tensor_type(L);

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
