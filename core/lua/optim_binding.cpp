// The `optim` module: Adam and SGD over tensors that require grad, as torch.optim does them,
// for activation maximisation and other optimisation of inputs from Lua.
#include <cmath>

#include "binding.hpp"
#include "llmscope/error.hpp"

namespace llmscope::lua {
namespace {

struct Optimizer {
  enum class Kind { kAdam, kSgd } kind = Kind::kAdam;
  std::vector<at::Tensor> params;
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
  double momentum = 0.0;                          // SGD
  double weight_decay = 0.0;                      // L2, added to the gradient as torch.optim does
  int64_t steps = 0;
  std::vector<at::Tensor> first_moment, second_moment;  // Adam state, or SGD's momentum buffer

  void step() {
    at::NoGradGuard no_grad;
    ++steps;
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = params[i];
      if (!p.grad().defined()) continue;  // untouched by backward this step
      at::Tensor g = p.grad();
      if (weight_decay != 0) g = g + weight_decay * p;
      if (kind == Kind::kAdam) {
        first_moment[i].mul_(beta1).add_(g, 1 - beta1);
        second_moment[i].mul_(beta2).addcmul_(g, g, 1 - beta2);
        const double correction1 = 1 - std::pow(beta1, static_cast<double>(steps));
        const double correction2 = 1 - std::pow(beta2, static_cast<double>(steps));
        auto denominator = (second_moment[i] / correction2).sqrt_().add_(eps);
        p.addcdiv_(first_moment[i], denominator, -lr / correction1);
      } else {
        if (momentum != 0) {
          first_moment[i].mul_(momentum).add_(g);
          g = first_moment[i];
        }
        p.add_(g, -lr);
      }
    }
  }

  void zero_grad() {
    for (auto& p : params) {
      if (p.grad().defined()) p.mutable_grad() = at::Tensor();
    }
  }
};

Optimizer& check_optimizer(lua_State* L, int arg) {
  return check_userdata<Optimizer>(L, arg, kOptimizerType, "optimizer");
}

std::vector<at::Tensor> parameters_from(lua_State* L, int arg) {
  if (test_tensor(L, arg)) return {check_tensor(L, arg)};
  check_table(L, arg);
  std::vector<at::Tensor> params;
  for (lua_Integer i = 1; i <= static_cast<lua_Integer>(lua_rawlen(L, arg)); ++i) {
    lua_rawgeti(L, arg, i);
    at::Tensor* t = test_tensor(L, -1);
    lua_pop(L, 1);
    if (!t)
      throw ArgError(arg,
                     "list of tensors expected (entry " + std::to_string(i) + " is not a tensor)");
    params.push_back(*t);
  }
  if (params.empty()) throw ArgError(arg, "no tensors to optimise");
  for (const auto& p : params) {
    if (!p.requires_grad() || !p.is_leaf()) {
      throw ArgError(
          arg, "tensors to optimise must be leaves that require grad (t:set_requires_grad(true))");
    }
  }
  return params;
}

Optimizer& push_optimizer(lua_State* L, Optimizer::Kind kind, std::vector<at::Tensor> params) {
  Optimizer& opt = push_userdata<Optimizer>(L, kOptimizerType);
  opt.kind = kind;
  opt.params = std::move(params);
  for (const auto& p : opt.params) {
    opt.first_moment.push_back(at::zeros_like(p, at::MemoryFormat::Preserve).detach());
    opt.second_moment.push_back(at::zeros_like(p, at::MemoryFormat::Preserve).detach());
  }
  return opt;
}

// optim.adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0})
int optim_adam(lua_State* L) {
  auto params = parameters_from(L, 1);
  check_option_keys(L, 2, {"lr", "betas", "eps", "weight_decay"});
  double lr = opt_number(L, 2, "lr").value_or(1e-3);
  double eps = opt_number(L, 2, "eps").value_or(1e-8);
  double weight_decay = opt_number(L, 2, "weight_decay").value_or(0.0);
  double beta1 = 0.9, beta2 = 0.999;
  if (!is_none_or_nil(L, 2)) {
    if (lua_getfield(L, 2, "betas") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) != 2) {
        throw ArgError(2, "option 'betas' must be a pair {beta1, beta2}");
      }
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      beta1 = lua_tonumber(L, -2);
      beta2 = lua_tonumber(L, -1);
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  if (!(lr > 0)) throw ArgError(2, "option 'lr' must be > 0");
  if (beta1 < 0 || beta1 >= 1 || beta2 < 0 || beta2 >= 1)
    throw ArgError(2, "betas must be in [0, 1)");
  Optimizer& opt = push_optimizer(L, Optimizer::Kind::kAdam, std::move(params));
  opt.lr = lr;
  opt.eps = eps;
  opt.weight_decay = weight_decay;
  opt.beta1 = beta1;
  opt.beta2 = beta2;
  return 1;
}

// optim.sgd(params, {lr = 1e-2, momentum = 0, weight_decay = 0})
int optim_sgd(lua_State* L) {
  auto params = parameters_from(L, 1);
  check_option_keys(L, 2, {"lr", "momentum", "weight_decay"});
  double lr = opt_number(L, 2, "lr").value_or(1e-2);
  if (!(lr > 0)) throw ArgError(2, "option 'lr' must be > 0");
  Optimizer& opt = push_optimizer(L, Optimizer::Kind::kSgd, std::move(params));
  opt.lr = lr;
  opt.momentum = opt_number(L, 2, "momentum").value_or(0.0);
  opt.weight_decay = opt_number(L, 2, "weight_decay").value_or(0.0);
  return 1;
}

int optimizer_step(lua_State* L) {
  check_optimizer(L, 1).step();
  return 0;
}

int optimizer_zero_grad(lua_State* L) {
  check_optimizer(L, 1).zero_grad();
  return 0;
}

int optimizer_steps(lua_State* L) {
  lua_pushinteger(L, check_optimizer(L, 1).steps);
  return 1;
}

int optimizer_set_lr(lua_State* L) {
  Optimizer& opt = check_optimizer(L, 1);
  double lr = check_number(L, 2);
  if (!(lr > 0)) throw ArgError(2, "learning rate must be > 0");
  opt.lr = lr;
  return 0;
}

int optimizer_tostring(lua_State* L) {
  Optimizer& opt = check_optimizer(L, 1);
  std::string text = std::string(opt.kind == Optimizer::Kind::kAdam ? "Adam" : "SGD") + "(" +
                     std::to_string(opt.params.size()) + " tensors, lr " + std::to_string(opt.lr) +
                     ", " + std::to_string(opt.steps) + " steps)";
  lua_pushstring(L, text.c_str());
  return 1;
}

const luaL_Reg kOptimizerMethods[] = {
    {"step", entry<optimizer_step>},
    {"zero_grad", entry<optimizer_zero_grad>},
    {"steps", entry<optimizer_steps>},
    {"set_lr", entry<optimizer_set_lr>},
    {nullptr, nullptr},
};

}  // namespace

void open_optim(lua_State* L) {
  new_type(L, kOptimizerType, kOptimizerMethods, destroy_userdata<Optimizer>);
  lua_pushcfunction(L, entry<optimizer_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"adam", entry<optim_adam>}, {"sgd", entry<optim_sgd>}, {nullptr, nullptr}};
  luaL_newlib(L, functions);
  lua_setglobal(L, "optim");
}

}  // namespace llmscope::lua
