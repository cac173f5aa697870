// The `model` module and the llmscope.Model / llmscope.HookHandle types: loading, forward passes
// with hooks written in Lua, caching, generation and tokenisation.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "binding.hpp"
#include "host_context.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"
#include "llmscope/masked_lm.hpp"
#include "llmscope/model.hpp"
#include "llmscope/token_search.hpp"

namespace llmscope::lua {
namespace {

struct ModelBox {
  std::shared_ptr<Model> model;
};

struct HookHandleBox {
  HookHandle handle;
};

Model& check_model(lua_State* L, int arg) {
  return *check_userdata<ModelBox>(L, arg, kModelType, "model").model;
}

// A Lua function kept in the registry for as long as a C++ hook refers to it.
class LuaFunctionRef {
 public:
  LuaFunctionRef(lua_State* L, int index) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main_ = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, index);
    ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  ~LuaFunctionRef() { luaL_unref(main_, LUA_REGISTRYINDEX, ref_); }
  LuaFunctionRef(const LuaFunctionRef&) = delete;
  LuaFunctionRef& operator=(const LuaFunctionRef&) = delete;
  void push(lua_State* L) const { lua_rawgeti(L, LUA_REGISTRYINDEX, ref_); }

 private:
  lua_State* main_ = nullptr;
  int ref_ = LUA_NOREF;
};

// Wraps the Lua function at `index` as a hook: one Lua call per site per pass. The function gets
// the activation (valid during this pass only) and a context {name, site, layer}; it returns
// nil to observe or a tensor to replace the activation.
HookFn lua_hook(lua_State* L, int index) {
  auto fn = std::make_shared<LuaFunctionRef>(L, index);
  HostContext* host = &host_context(L);
  return [fn, host](const at::Tensor& activation, const HookContext& context) -> at::Tensor {
    lua_State* T = host->current_thread;
    if (T == nullptr) throw Error("hook '" + context.name + "' ran outside a Lua-started pass");
    fn->push(T);
    push_activation(T, activation, host->current_lease, context.point.name);
    lua_createtable(T, 0, 3);
    lua_pushstring(T, context.name.c_str());
    lua_setfield(T, -2, "name");
    lua_pushstring(T, context.point.name.c_str());
    lua_setfield(T, -2, "site");
    if (context.point.layer >= 0) {
      lua_pushinteger(T, context.point.layer);
      lua_setfield(T, -2, "layer");
    }
    try {
      pcall(T, 2, 1);
    } catch (const LuaError& e) {
      // A plain Error: the message gains the position of the call that ran the pass, too.
      throw Error("hook '" + context.name + "' failed: " + e.what());
    }
    at::Tensor replacement;
    if (!lua_isnil(T, -1)) {
      at::Tensor* t = test_tensor(T, -1);
      if (t == nullptr) {
        std::string got = type_name(T, -1);
        lua_pop(T, 1);
        throw Error("hook '" + context.name + "' must return nil or a tensor, got " + got);
      }
      replacement = *t;
    }
    lua_pop(T, 1);
    return replacement;
  };
}

// {[name] = fn, ...} at `index` -> scoped hooks.
std::vector<NamedHook> hooks_from_table(lua_State* L, int index, int arg) {
  std::vector<NamedHook> hooks;
  if (is_none_or_nil(L, index)) return hooks;
  if (lua_type(L, index) != LUA_TTABLE)
    type_error(L, arg, "table of hooks {[hook point] = function}");
  index = lua_absindex(L, index);
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TFUNCTION) {
      std::string got = type_name(L, -2) + " = " + type_name(L, -1);
      lua_pop(L, 2);
      throw ArgError(arg, "hooks must be {[hook point] = function}, found " + got);
    }
    hooks.push_back({lua_tostring(L, -2), lua_hook(L, lua_gettop(L))});
    lua_pop(L, 1);
  }
  return hooks;
}

std::vector<std::string> names_from(lua_State* L, int index, int arg) {
  std::vector<std::string> names;
  if (lua_type(L, index) == LUA_TSTRING) return {lua_tostring(L, index)};
  if (lua_type(L, index) != LUA_TTABLE) type_error(L, arg, "hook point name or list of names");
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, index));
  for (lua_Integer i = 1; i <= n; ++i) {
    if (lua_rawgeti(L, index, i) != LUA_TSTRING) {
      lua_pop(L, 1);
      throw ArgError(arg, "list of hook point names must hold strings only");
    }
    names.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return names;
}

at::Tensor ids_from_tensor(const at::Tensor& t, int arg) {
  if (at::isFloatingType(t.scalar_type())) {
    throw ArgError(arg, "token ids must be an integer tensor (pass {embeds = t} for embeddings)");
  }
  return t.dim() == 1 ? t.unsqueeze(0) : t;
}

// `framed`: with the tokens the model's template adds (Llama 3's <|begin_of_text|>, BERT's
// [CLS] ... [SEP]); a target to look for or a piece of text to splice is encoded without them.
at::Tensor encode(lua_State* L, Model& model, const std::string& text, bool special,
                  bool framed = true) {
  const Tokenizer* tokenizer = model.tokenizer();
  if (!tokenizer) {
    throw Error(
        "this model has no tokenizer (no tokenizer.json, tokenizer.model, vocab.json + "
        "merges.txt or vocab.txt in " +
        model.source().string() + "); pass token ids instead");
  }
  (void)L;
  return at::tensor(tokenizer->encode(text, EncodeOptions{special, framed}), at::kLong);
}

// Model input from a string, a list of strings (padded on `pad_left` or the right, with a mask),
// an integer tensor of ids, or {ids = t, mask = t} / {embeds = t, mask = t}.
ForwardInput input_from(lua_State* L, int arg, Model& model, bool pad_left) {
  ForwardInput input;
  if (at::Tensor* t = test_tensor(L, arg)) {
    input.input_ids = ids_from_tensor(*t, arg);
    return input;
  }
  if (lua_type(L, arg) == LUA_TSTRING) {
    input.input_ids = encode(L, model, lua_tostring(L, arg), false).unsqueeze(0);
    return input;
  }
  if (lua_type(L, arg) != LUA_TTABLE)
    type_error(L, arg, "text, list of texts, token ids or {ids=, mask=}");
  const int table = lua_absindex(L, arg);
  if (lua_rawlen(L, table) > 0) {
    std::vector<at::Tensor> rows;
    for (lua_Integer i = 1; i <= static_cast<lua_Integer>(lua_rawlen(L, table)); ++i) {
      if (lua_rawgeti(L, table, i) != LUA_TSTRING) {
        lua_pop(L, 1);
        throw ArgError(arg, "a list of inputs must hold texts only");
      }
      rows.push_back(encode(L, model, lua_tostring(L, -1), false));
      lua_pop(L, 1);
    }
    int64_t longest = 0;
    for (const auto& r : rows) longest = std::max(longest, r.size(0));
    const int64_t pad =
        std::max<int64_t>(0, model.eos_token_id() >= 0 && model.eos_token_id() < model.vocab_size()
                                 ? model.eos_token_id()
                                 : 0);
    input.input_ids = at::full({static_cast<int64_t>(rows.size()), longest}, pad, at::kLong);
    input.attention_mask = at::zeros_like(input.input_ids);
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t n = rows[i].size(0), start = pad_left ? longest - n : 0;
      input.input_ids[static_cast<int64_t>(i)].narrow(0, start, n).copy_(rows[i]);
      input.attention_mask[static_cast<int64_t>(i)].narrow(0, start, n).fill_(1);
    }
    return input;
  }
  check_option_keys(L, table, {"ids", "embeds", "mask", "text", "token_types"});
  for (const char* key : {"ids", "embeds", "mask", "token_types"}) {
    int type = lua_getfield(L, table, key);
    if (type != LUA_TNIL) {
      at::Tensor* t = test_tensor(L, -1);
      if (!t) {
        lua_pop(L, 1);
        throw ArgError(arg, std::string("input field '") + key + "' must be a tensor");
      }
      if (std::string(key) == "ids") input.input_ids = ids_from_tensor(*t, arg);
      if (std::string(key) == "embeds") input.inputs_embeds = t->dim() == 2 ? t->unsqueeze(0) : *t;
      if (std::string(key) == "mask") input.attention_mask = t->dim() == 1 ? t->unsqueeze(0) : *t;
      if (std::string(key) == "token_types")
        input.token_type_ids = t->dim() == 1 ? t->unsqueeze(0) : *t;
    }
    lua_pop(L, 1);
  }
  if (auto text = opt_string(L, table, "text"))
    input.input_ids = encode(L, model, *text, false).unsqueeze(0);
  return input;
}

// While a pass started from Lua runs, hooks call back into `L`; every activation handed to a
// hook expires when the pass ends, also when it ends with an error. Passes nest (a hook may
// run the model again): the outer pass's thread and lease come back afterwards.
class PassScope {
 public:
  explicit PassScope(lua_State* L)
      : host_(host_context(L)), thread_(host_.current_thread), lease_(host_.current_lease) {
    host_.current_thread = L;
    host_.current_lease = std::make_shared<ActivationLease>();
  }
  ~PassScope() {
    host_.current_lease->expire();
    host_.current_thread = thread_;
    host_.current_lease = std::move(lease_);
  }
  PassScope(const PassScope&) = delete;
  PassScope& operator=(const PassScope&) = delete;

 private:
  HostContext& host_;
  lua_State* thread_;
  std::shared_ptr<ActivationLease> lease_;
};

ForwardOutput run_pass(lua_State* L, Model& model, const ForwardInput& input,
                       const ForwardOptions& options) {
  PassScope scope(L);
  return model.forward(input, options);
}

// A 0-based table {[0] = t0, [1] = t1, ...}, like the Python lists it mirrors.
void push_indexed(lua_State* L, const std::vector<at::Tensor>& tensors) {
  lua_createtable(L, static_cast<int>(tensors.size()), 1);
  for (size_t i = 0; i < tensors.size(); ++i) {
    push_tensor(L, tensors[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i));
  }
}

// Cache entries under their canonical names and every alias.
void push_cache(lua_State* L, const Model& model, const ActivationCache& cache) {
  lua_newtable(L);
  const auto& table = model.hook_points();
  for (const auto& [name, tensor] : cache.entries()) {
    const HookPoint& point = table.at(table.resolve(name));
    push_tensor(L, tensor);
    lua_setfield(L, -2, name.c_str());
    for (const auto& alias : point.aliases) {
      push_tensor(L, tensor);
      lua_setfield(L, -2, alias.c_str());
    }
  }
}

void push_extras(lua_State* L, const Model& model, const ForwardOutput& out) {
  lua_newtable(L);
  if (!out.hidden_states.empty()) {
    push_indexed(L, out.hidden_states);
    lua_setfield(L, -2, "hidden_states");
  }
  if (!out.attentions.empty()) {
    push_indexed(L, out.attentions);
    lua_setfield(L, -2, "attentions");
  }
  push_cache(L, model, out.cache);
  lua_setfield(L, -2, "cache");
  lua_newtable(L);
  for (const auto& firing : out.firings) {
    lua_pushinteger(L, firing.calls);
    lua_setfield(L, -2, firing.name.c_str());
  }
  lua_setfield(L, -2, "hook_calls");
}

void push_logits(lua_State* L, const ForwardOutput& out) {
  if (out.logits.defined()) {
    push_tensor(L, out.logits);
  } else {
    lua_pushnil(L);
  }
}

const std::vector<const char*> kForwardOptions = {"mask",          "hidden_states",  "attentions",
                                                  "stop_at_layer", "strict",         "cache",
                                                  "hooks",         "batch_invariant"};

ForwardOptions forward_options(lua_State* L, int opts, ForwardInput& input) {
  check_option_keys(L, opts, kForwardOptions);
  ForwardOptions options;
  options.output_hidden_states = opt_boolean(L, opts, "hidden_states").value_or(false);
  options.output_attentions = opt_boolean(L, opts, "attentions").value_or(false);
  options.strict_hooks = opt_boolean(L, opts, "strict").value_or(false);
  options.batch_invariant = opt_boolean(L, opts, "batch_invariant").value_or(true);
  if (auto stop = opt_integer(L, opts, "stop_at_layer"))
    options.stop_at_layer = static_cast<int>(*stop);
  if (!is_none_or_nil(L, opts)) {
    if (lua_getfield(L, opts, "mask") != LUA_TNIL) {
      at::Tensor* mask = test_tensor(L, -1);
      if (!mask) throw ArgError(opts, "option 'mask' must be a tensor");
      input.attention_mask = mask->dim() == 1 ? mask->unsqueeze(0) : *mask;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, opts, "cache") != LUA_TNIL)
      options.cache = names_from(L, lua_gettop(L), opts);
    lua_pop(L, 1);
    lua_getfield(L, opts, "hooks");
    options.hooks = hooks_from_table(L, -1, opts);
    lua_pop(L, 1);
  }
  return options;
}

// The pass of m:forward and m:run_with_hooks, and what both return: logits, extras.
int push_pass(lua_State* L, Model& model, const ForwardInput& input,
              const ForwardOptions& options) {
  ForwardOutput out = run_pass(L, model, input, options);
  push_logits(L, out);
  push_extras(L, model, out);
  return 2;
}

// m:forward(input, opts) -> logits, extras {hidden_states, attentions, cache, hook_calls}
int model_forward(lua_State* L) {
  Model& model = check_model(L, 1);
  ForwardInput input = input_from(L, 2, model, false);
  return push_pass(L, model, input, forward_options(L, 3, input));
}

// m:run_with_cache(input, {names = ..., stop_at_layer = ..., hooks = ..., mask = ...}) -> logits,
// cache
int model_run_with_cache(lua_State* L) {
  Model& model = check_model(L, 1);
  ForwardInput input = input_from(L, 2, model, false);
  check_option_keys(
      L, 3, {"names", "stop_at_layer", "hooks", "mask", "hidden_states", "attentions", "strict"});
  std::vector<std::string> names = {"*"};
  if (!is_none_or_nil(L, 3)) {
    if (lua_getfield(L, 3, "names") != LUA_TNIL) names = names_from(L, lua_gettop(L), 3);
    lua_pop(L, 1);
  }
  // Reuse the forward options parser without the 'names' key.
  lua_newtable(L);
  if (!is_none_or_nil(L, 3)) {
    for (const char* key :
         {"stop_at_layer", "hooks", "mask", "hidden_states", "attentions", "strict"}) {
      lua_getfield(L, 3, key);
      lua_setfield(L, -2, key);
    }
  }
  ForwardOptions options = forward_options(L, lua_gettop(L), input);
  options.cache = names;
  ForwardOutput out = run_pass(L, model, input, options);
  push_logits(L, out);
  push_cache(L, model, out.cache);
  return 2;
}

// m:run_with_hooks(input, {[name] = fn}, opts) -> logits, extras
int model_run_with_hooks(lua_State* L) {
  Model& model = check_model(L, 1);
  ForwardInput input = input_from(L, 2, model, false);
  auto hooks = hooks_from_table(L, 3, 3);
  ForwardOptions options = forward_options(L, 4, input);
  options.hooks.insert(options.hooks.end(), hooks.begin(), hooks.end());
  return push_pass(L, model, input, options);
}

// m:hook(name, fn) -> handle (persistent until handle:remove() or the handle's <close>)
int model_hook(lua_State* L) {
  Model& model = check_model(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING) type_error(L, 2, "hook point");
  check_function(L, 3);
  HookHandle handle = model.hook(lua_tostring(L, 2), lua_hook(L, 3));
  push_userdata<HookHandleBox>(L, kHookHandleType, HookHandleBox{handle});
  return 1;
}

int model_clear_hooks(lua_State* L) {
  check_model(L, 1).clear_hooks();
  return 0;
}

// m:generate(input, opts) -> ids [batch, pos + new], text (string, or list for a batch)
int model_generate(lua_State* L) {
  Model& model = check_model(L, 1);
  ForwardInput input = input_from(L, 2, model, /*pad_left=*/true);
  if (!input.input_ids.defined())
    throw ArgError(2, "generate needs token ids or text, not embeddings");
  check_option_keys(L, 3,
                    {"max_new_tokens", "greedy", "temperature", "top_k", "top_p", "seed", "eos",
                     "hooks", "cache"});
  GenerationOptions options;
  options.max_new_tokens = opt_integer(L, 3, "max_new_tokens").value_or(20);
  auto temperature = opt_number(L, 3, "temperature");
  auto top_k = opt_integer(L, 3, "top_k");
  auto top_p = opt_number(L, 3, "top_p");
  options.greedy = opt_boolean(L, 3, "greedy").value_or(!temperature && !top_k && !top_p);
  if (temperature) options.temperature = *temperature;
  if (top_k) options.top_k = *top_k;
  if (top_p) options.top_p = *top_p;
  if (auto seed = opt_integer(L, 3, "seed")) options.seed = static_cast<uint64_t>(*seed);
  if (auto eos = opt_integer(L, 3, "eos")) options.eos_token_id = *eos;
  options.use_cache = opt_boolean(L, 3, "cache").value_or(true);
  if (!is_none_or_nil(L, 3)) {
    lua_getfield(L, 3, "hooks");
    options.hooks = hooks_from_table(L, -1, 3);
    lua_pop(L, 1);
  }
  at::Tensor ids;
  {
    PassScope scope(L);
    ids = generate(model, GenerationInput{input.input_ids, input.attention_mask}, options);
  }
  push_tensor(L, ids);
  const Tokenizer* tokenizer = model.tokenizer();
  if (!tokenizer) return 1;
  auto cpu = ids.to(at::kCPU);
  auto decode_row = [&](int64_t row) {
    auto r = cpu[row];
    std::vector<int64_t> tokens(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
    if (input.attention_mask.defined()) {  // drop left padding
      auto m = input.attention_mask[row].to(at::kCPU);
      int64_t pad = m.size(0) - m.ne(0).sum().item<int64_t>();
      tokens.erase(tokens.begin(), tokens.begin() + pad);
    }
    return tokenizer->decode(tokens);
  };
  if (lua_type(L, 2) == LUA_TTABLE && lua_rawlen(L, 2) > 0) {
    lua_createtable(L, static_cast<int>(cpu.size(0)), 0);
    for (int64_t row = 0; row < cpu.size(0); ++row) {
      lua_pushstring(L, decode_row(row).c_str());
      lua_rawseti(L, -2, row + 1);
    }
  } else {
    lua_pushstring(L, decode_row(0).c_str());
  }
  return 2;
}

// m:fill_mask(input, {k = 5}) -> list of {position, ids, tokens, probs} per [MASK] (masked LMs)
int model_fill_mask(lua_State* L) {
  Model& model = check_model(L, 1);
  ForwardInput input = input_from(L, 2, model, false);
  if (!input.input_ids.defined()) throw ArgError(2, "fill_mask needs text or token ids");
  check_option_keys(L, 3, {"k", "hooks", "mask_id"});
  const int64_t k = opt_integer(L, 3, "k").value_or(5);
  std::vector<NamedHook> hooks;
  if (!is_none_or_nil(L, 3)) {
    lua_getfield(L, 3, "hooks");
    hooks = hooks_from_table(L, -1, 3);
    lua_pop(L, 1);
  }
  const Tokenizer* tokenizer = model.tokenizer();
  const int64_t mask_id =
      opt_integer(L, 3, "mask_id").value_or(tokenizer ? tokenizer->special_token_id("[MASK]") : -1);
  if (mask_id < 0)
    throw Error(
        "fill_mask: no [MASK] token id (the model has no tokenizer with one; pass mask_id)");
  std::vector<MaskPrediction> predictions;
  {
    PassScope scope(L);
    predictions = predict_masks(model, input.input_ids, mask_id, k, hooks);
  }
  lua_createtable(L, static_cast<int>(predictions.size()), 0);
  for (size_t i = 0; i < predictions.size(); ++i) {
    const auto& p = predictions[i];
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, p.position);
    lua_setfield(L, -2, "position");
    lua_createtable(L, static_cast<int>(p.ids.size()), 0);
    lua_createtable(L, static_cast<int>(p.ids.size()), 0);
    lua_createtable(L, static_cast<int>(p.ids.size()), 0);
    for (size_t j = 0; j < p.ids.size(); ++j) {
      lua_pushinteger(L, p.ids[j]);
      lua_rawseti(L, -4, static_cast<lua_Integer>(j + 1));
      lua_pushstring(L, tokenizer ? tokenizer->token_text(p.ids[j]).c_str()
                                  : std::to_string(p.ids[j]).c_str());
      lua_rawseti(L, -3, static_cast<lua_Integer>(j + 1));
      lua_pushnumber(L, p.probabilities[j]);
      lua_rawseti(L, -2, static_cast<lua_Integer>(j + 1));
    }
    lua_setfield(L, -4, "probs");
    lua_setfield(L, -3, "tokens");
    lua_setfield(L, -2, "ids");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

// m:tokenize(text, {special = bool, add_special_tokens = bool}) -> 1-D int64 tensor
int model_tokenize(lua_State* L) {
  Model& model = check_model(L, 1);
  std::string text = check_string(L, 2);
  check_option_keys(L, 3, {"special", "add_special_tokens"});
  push_tensor(L, encode(L, model, text, opt_boolean(L, 3, "special").value_or(false),
                        opt_boolean(L, 3, "add_special_tokens").value_or(true)));
  return 1;
}

std::vector<int64_t> ids_argument(lua_State* L, int arg) {
  at::Tensor ids = to_tensor(L, arg).to(at::kCPU, at::kLong).reshape(-1);
  return std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
}

const Tokenizer& check_tokenizer(Model& model) {
  if (!model.tokenizer())
    throw Error("this model has no tokenizer (" + model.source().string() + ")");
  return *model.tokenizer();
}

// m:decode(ids, {skip_special = bool}) -> string
int model_decode(lua_State* L) {
  Model& model = check_model(L, 1);
  const Tokenizer& tokenizer = check_tokenizer(model);
  auto ids = ids_argument(L, 2);
  check_option_keys(L, 3, {"skip_special"});
  std::string text = opt_boolean(L, 3, "skip_special").value_or(false)
                         ? tokenizer.decode_skipping_special(ids)
                         : tokenizer.decode(ids);
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

// m:tokens(text_or_ids) -> list of token strings
int model_tokens(lua_State* L) {
  Model& model = check_model(L, 1);
  const Tokenizer& tokenizer = check_tokenizer(model);
  std::vector<int64_t> ids =
      lua_type(L, 2) == LUA_TSTRING ? tokenizer.encode(lua_tostring(L, 2)) : ids_argument(L, 2);
  lua_createtable(L, static_cast<int>(ids.size()), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string text = tokenizer.token_text(ids[i]);
    lua_pushlstring(L, text.data(), text.size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

// m:find_tokens(input, target, {mask = t}) -> positions, rows: the last token of every
// occurrence of target (a text, tokenised as given, or ids) in input (any model input: a text,
// a list of texts, ids, {ids=, mask=}); both int64 [occurrences], 0-based, in reading order.
int model_find_tokens(lua_State* L) {
  Model& model = check_model(L, 1);
  ForwardInput input = input_from(L, 2, model, /*pad_left=*/false);
  if (!input.input_ids.defined()) throw ArgError(2, "find_tokens needs token ids, not embeddings");
  std::vector<int64_t> target;
  if (lua_type(L, 3) == LUA_TSTRING) {
    at::Tensor ids = encode(L, model, lua_tostring(L, 3), false, /*framed=*/false);
    target.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  } else if (test_tensor(L, 3) != nullptr || lua_type(L, 3) == LUA_TTABLE) {
    target = ids_argument(L, 3);
  } else {
    type_error(L, 3, "text or token ids");
  }
  if (target.empty()) throw ArgError(3, "the target has no tokens");
  check_option_keys(L, 4, {"mask"});
  at::Tensor mask = input.attention_mask;
  if (!is_none_or_nil(L, 4) && lua_getfield(L, 4, "mask") != LUA_TNIL) {
    mask = to_tensor(L, -1);
    if (mask.dim() == 1 && input.input_ids.dim() == 2) mask = mask.unsqueeze(0);
  }
  TokenMatches found = find_token_sequence(input.input_ids, target, mask);
  push_tensor(L, at::tensor(found.positions, at::kLong));
  push_tensor(L, at::tensor(found.rows, at::kLong));
  return 2;
}

// m:hook_points(pattern?) -> list of canonical names (a pattern matches names and aliases)
int model_hook_points(lua_State* L) {
  Model& model = check_model(L, 1);
  std::string pattern = is_none_or_nil(L, 2) ? "*" : check_string(L, 2);
  const auto& table = model.hook_points();
  auto ids = table.match(pattern);
  lua_createtable(L, static_cast<int>(ids.size()), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    lua_pushstring(L, table.at(ids[i]).name.c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

// m:embed(ids) -> token embeddings [batch, pos, d_model]
int model_embed(lua_State* L) {
  Model& model = check_model(L, 1);
  at::Tensor ids = to_tensor(L, 2);
  push_tensor(L, model.embed_tokens(ids.dim() == 1 ? ids.unsqueeze(0) : ids));
  return 1;
}

// m:unembed(resid, {full_head = true}) -> logits [..., vocab]: the output head on residual-stream
// vectors (the logit lens); full_head = false skips the final norm (masked LMs: the transform).
int model_unembed(lua_State* L) {
  Model& model = check_model(L, 1);
  at::Tensor resid = to_tensor(L, 2);
  check_option_keys(L, 3, {"full_head"});
  push_tensor(L, model.unembed(resid, opt_boolean(L, 3, "full_head").value_or(true)));
  return 1;
}

int model_parameter(lua_State* L) {
  Model& model = check_model(L, 1);
  std::string name = check_string(L, 2);
  for (const auto& [key, tensor] : model.named_parameters()) {
    if (key == name) {
      push_tensor(L, tensor);
      return 1;
    }
  }
  throw Error("model has no parameter '" + name + "' (m:parameters() lists them)");
}

int model_parameters(lua_State* L) {
  Model& model = check_model(L, 1);
  lua_newtable(L);
  for (const auto& [key, tensor] : model.named_parameters()) {
    push_tensor(L, tensor);
    lua_setfield(L, -2, key.c_str());
  }
  return 1;
}

void push_config(lua_State* L, const Model& model) {
  lua_newtable(L);
  lua_pushstring(L, model.architecture().c_str());
  lua_setfield(L, -2, "architecture");
  lua_pushinteger(L, model.n_layer());
  lua_setfield(L, -2, "n_layer");
  lua_pushinteger(L, model.d_model());
  lua_setfield(L, -2, "d_model");
  lua_pushinteger(L, model.vocab_size());
  lua_setfield(L, -2, "vocab_size");
  lua_pushinteger(L, model.max_positions());
  lua_setfield(L, -2, "max_positions");
  lua_pushinteger(L, model.num_parameters());
  lua_setfield(L, -2, "parameters");
  lua_pushstring(L, dtype_name(model.dtype()).c_str());
  lua_setfield(L, -2, "dtype");
  lua_pushstring(L, model.device().str().c_str());
  lua_setfield(L, -2, "device");
  lua_pushstring(L, model.source().string().c_str());
  lua_setfield(L, -2, "source");
  lua_pushboolean(L, model.is_causal());
  lua_setfield(L, -2, "is_causal");
}

const luaL_Reg kModelMethods[] = {
    {"forward", entry<model_forward>},
    {"run_with_cache", entry<model_run_with_cache>},
    {"run_with_hooks", entry<model_run_with_hooks>},
    {"hook", entry<model_hook>},
    {"clear_hooks", entry<model_clear_hooks>},
    {"generate", entry<model_generate>},
    {"fill_mask", entry<model_fill_mask>},
    {"tokenize", entry<model_tokenize>},
    {"decode", entry<model_decode>},
    {"tokens", entry<model_tokens>},
    {"find_tokens", entry<model_find_tokens>},
    {"hook_points", entry<model_hook_points>},
    {"embed", entry<model_embed>},
    {"unembed", entry<model_unembed>},
    {"parameter", entry<model_parameter>},
    {"parameters", entry<model_parameters>},
    {nullptr, nullptr},
};

// Methods first, then the properties m.config, m.n_layer, m.d_model, ...
int model_index(lua_State* L) {
  Model& model = check_model(L, 1);
  std::string key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  lua_getfield(L, lua_upvalueindex(1), key.c_str());
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  push_config(L, model);
  if (key == "config") return 1;
  lua_getfield(L, -1, key.c_str());  // a plain table: raw enough
  return 1;
}

int model_tostring(lua_State* L) {
  Model& model = check_model(L, 1);
  std::string text = "Model(" + model.architecture() + ", " + std::to_string(model.n_layer()) +
                     " layers, d_model " + std::to_string(model.d_model()) + ", " +
                     dtype_name(model.dtype()) + " on " + model.device().str() + ")";
  lua_pushstring(L, text.c_str());
  return 1;
}

// model.load(dir?, {dtype = ..., device = ...}) -> model; dir defaults to --model
int model_load(lua_State* L) {
  HostContext& host = host_context(L);
  std::string dir = is_none_or_nil(L, 1) ? host.options.model_dir : check_string(L, 1);
  if (dir.empty()) throw ArgError(1, "model folder expected (none given, and no --model default)");
  check_option_keys(L, 2, {"dtype", "device"});
  LoadOptions options = host.options.load;
  if (auto dtype = opt_string(L, 2, "dtype")) options.dtype = parse_dtype(*dtype);
  if (auto device = opt_string(L, 2, "device")) options.device = parse_device(*device);
  std::shared_ptr<Model> model = load_model(dir, options);
  auto& dirs = host.model_dirs;  // for the run manifest
  if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  push_userdata<ModelBox>(L, kModelType, ModelBox{std::move(model)});
  return 1;
}

// model.random(config_json, {seed = n, dtype = ..., device = ..., tokenizer = dir}) -> model with
// random weights at that config's shape; `tokenizer` attaches the tokenizer files of a folder.
int model_random(lua_State* L) {
  HostContext& host = host_context(L);
  const std::string config = check_string(L, 1);
  check_option_keys(L, 2, {"seed", "dtype", "device", "tokenizer"});
  LoadOptions options = host.options.load;
  if (auto dtype = opt_string(L, 2, "dtype")) options.dtype = parse_dtype(*dtype);
  if (auto device = opt_string(L, 2, "device")) options.device = parse_device(*device);
  const auto seed = opt_integer(L, 2, "seed").value_or(0);
  if (seed < 0) throw ArgError(2, "seed must be >= 0");
  std::shared_ptr<Model> model = random_model(config, static_cast<uint64_t>(seed), options);
  if (auto tokenizer = opt_string(L, 2, "tokenizer")) {
    model->set_tokenizer(Tokenizer::load(*tokenizer));
  }
  push_userdata<ModelBox>(L, kModelType, ModelBox{std::move(model)});
  return 1;
}

// ---- hook handles ----

int handle_remove(lua_State* L) {
  check_userdata<HookHandleBox>(L, 1, kHookHandleType, "hook handle").handle.remove();
  return 0;
}

int handle_active(lua_State* L) {
  lua_pushboolean(
      L, check_userdata<HookHandleBox>(L, 1, kHookHandleType, "hook handle").handle.active());
  return 1;
}

int handle_tostring(lua_State* L) {
  const auto& handle = check_userdata<HookHandleBox>(L, 1, kHookHandleType, "hook handle").handle;
  std::string text = "HookHandle(" + handle.name() + (handle.active() ? ")" : ", removed)");
  lua_pushstring(L, text.c_str());
  return 1;
}

const luaL_Reg kHandleMethods[] = {
    {"remove", entry<handle_remove>},
    {"active", entry<handle_active>},
    {nullptr, nullptr},
};

}  // namespace

std::shared_ptr<Model> test_model(lua_State* L, int arg) {
  auto* box = test_userdata<ModelBox>(L, arg, kModelType);
  return box ? box->model : nullptr;
}

void push_model(lua_State* L, std::shared_ptr<Model> model) {
  push_userdata<ModelBox>(L, kModelType, ModelBox{std::move(model)});
}

void open_model(lua_State* L) {
  new_type(L, kModelType, kModelMethods, destroy_userdata<ModelBox>);
  lua_getfield(L, -1, "__index");  // the methods table becomes model_index's upvalue
  lua_pushcclosure(L, entry<model_index>, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, entry<model_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  new_type(L, kHookHandleType, kHandleMethods, destroy_userdata<HookHandleBox>);
  lua_pushcfunction(L, entry<handle_remove>);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, entry<handle_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  lua_newtable(L);
  lua_pushcfunction(L, entry<model_load>);
  lua_setfield(L, -2, "load");
  lua_pushcfunction(L, entry<model_random>);
  lua_setfield(L, -2, "random");
  lua_setglobal(L, "model");
}

}  // namespace llmscope::lua
