// Internal to the tensor binding (tensor_binding.cpp: the `tensor` module; tensor_methods.cpp:
// the llmscope.Tensor type's methods; tensor_values.cpp: what both convert with): Lua values to
// tensors and back, dtype and device names, and the arguments PyTorch's functions take.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "binding.hpp"

namespace llmscope::lua::tensor_values {

// ---- dtypes and devices ----
std::optional<at::ScalarType> parse_dtype(const std::string& name);  // PyTorch's names
std::string dtype_name(at::ScalarType type);                         // the canonical name
std::optional<at::Device> parse_device(const std::string& name);
at::ScalarType check_dtype_option(int opts, const std::string& name);  // ArgError naming opts

// ---- plain arguments ----
c10::optional<int64_t> optional_integer(lua_State* L, int arg);
int64_t integer_or(lua_State* L, int arg, int64_t fallback);
double number_or(lua_State* L, int arg, double fallback);
bool boolean_or(lua_State* L, int arg, bool fallback);
std::vector<int64_t> check_integer_list(lua_State* L, int arg);
std::vector<int64_t> check_dims(lua_State* L, int arg);  // a list or the remaining integers
bool is_scalar(lua_State* L, int arg);
at::Scalar to_scalar(lua_State* L, int arg);
at::Scalar check_scalar(lua_State* L, int arg);

// ---- Lua values -> tensors ----
at::Tensor table_to_tensor(lua_State* L, int arg, std::optional<at::ScalarType> dtype = {});
at::Tensor operand(lua_State* L, int arg, at::Device device = at::kCPU);
at::Tensor index_operand(lua_State* L, int arg, at::Device device);
std::pair<at::Tensor, at::Tensor> promoted(const at::Tensor& a, const at::Tensor& b);
std::vector<at::Tensor> check_tensor_list(lua_State* L, int arg);

// ---- results -> Lua ----
void push_tensors(lua_State* L, const std::vector<at::Tensor>& tensors);
void push_integer_list(lua_State* L, at::IntArrayRef values);
int push_pair(lua_State* L, const std::tuple<at::Tensor, at::Tensor>& pair);
void push_scalar(lua_State* L, const at::Scalar& value);
int return_self(lua_State* L);
void push_list(lua_State* L, const at::Tensor& tensor);  // nested Lua arrays
std::string describe(const at::Tensor& t);               // __tostring

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

Creation creation_options(lua_State* L, int opts, bool seeded = false);
int trailing_options(lua_State* L, int& positional);

}  // namespace llmscope::lua::tensor_values

namespace llmscope::lua {
// Registers the llmscope.Tensor type (tensor_methods.cpp); open_tensor calls it.
void open_tensor_type(lua_State* L);
}  // namespace llmscope::lua
