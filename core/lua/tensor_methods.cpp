// The llmscope.Tensor type's methods and metamethods, with PyTorch's names and 0-based dims.
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
at::Tensor op_matmul(const at::Tensor& a, const at::Tensor& b) { return llmscope::matmul(a, b); }
// mm is matmul for matrices only: anything else gets at::mm's own message.
at::Tensor op_mm(const at::Tensor& a, const at::Tensor& b) {
  return a.dim() == 2 && b.dim() == 2 ? llmscope::matmul(a, b) : at::mm(a, b);
}
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

}  // namespace

void open_tensor_type(lua_State* L) {
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
}

}  // namespace llmscope::lua
