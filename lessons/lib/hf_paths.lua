-- Hugging Face module paths per architecture, for the lessons that hook a module by the name the
-- course uses (GPT-2's `transformer.h.L.attn.c_attn`) or read a weight by its checkpoint name.
-- Everything else goes through the portable aliases (`blocks.L.attn.hook_q`). One table for all
-- lessons; `%s` is the layer.
local M = {}

local llama = {
  q = "model.layers.%s.self_attn.q_proj", q_in = "model.layers.%s.self_attn:input",
  q_weight = "model.layers.%s.self_attn.q_proj.weight", q_bias = "model.layers.%s.self_attn.q_proj.bias",
  q_columns = "all", q_note = "its output is Q itself",
  attn = "model.layers.%s.self_attn",
  attn_proj = "model.layers.%s.self_attn.o_proj", mlp_proj = "model.layers.%s.mlp.down_proj",
  final_norm = "model.norm", final_norm_rms = true, eps_key = "rms_norm_eps", eps_default = 1e-6,
}

M.architectures = {
  gpt2 = {
    q = "transformer.h.%s.attn.c_attn", q_in = "transformer.h.%s.attn.c_attn:input",
    q_weight = "transformer.h.%s.attn.c_attn.weight", q_bias = "transformer.h.%s.attn.c_attn.bias",
    conv1d = true, q_columns = "first", q_note = "its first d_model columns are Q (then K, then V)",
    attn = "transformer.h.%s.attn",
    attn_proj = "transformer.h.%s.attn.c_proj", mlp_proj = "transformer.h.%s.mlp.c_proj",
    final_norm = "transformer.ln_f", eps_key = "layer_norm_epsilon", eps_default = 1e-5,
  },
  gpt_neo = {
    q = "transformer.h.%s.attn.attention.q_proj", q_in = "transformer.h.%s.attn.attention:input",
    q_weight = "transformer.h.%s.attn.attention.q_proj.weight",
    q_columns = "all", q_note = "its output is Q itself",
    attn = "transformer.h.%s.attn",
    attn_proj = "transformer.h.%s.attn.attention.out_proj", mlp_proj = "transformer.h.%s.mlp.c_proj",
    final_norm = "transformer.ln_f", eps_key = "layer_norm_epsilon", eps_default = 1e-5,
  },
  gpt_neox = {
    q = "gpt_neox.layers.%s.attention.query_key_value",
    q_in = "gpt_neox.layers.%s.attention.query_key_value:input",
    q_weight = "gpt_neox.layers.%s.attention.query_key_value.weight",
    q_bias = "gpt_neox.layers.%s.attention.query_key_value.bias",
    q_columns = "per_head", q_note = "it is laid out per head as [head, (q, k, v), d_head], so Q is the " ..
      "first third of each head's columns",
    attn = "gpt_neox.layers.%s.attention",
    attn_proj = "gpt_neox.layers.%s.attention.dense", mlp_proj = "gpt_neox.layers.%s.mlp.dense_4h_to_h",
    final_norm = "gpt_neox.final_layer_norm", eps_key = "layer_norm_eps", eps_default = 1e-5,
  },
  bert = {
    q = "bert.encoder.layer.%s.attention.self.query", q_in = "bert.encoder.layer.%s.attention.self:input",
    q_weight = "bert.encoder.layer.%s.attention.self.query.weight",
    q_bias = "bert.encoder.layer.%s.attention.self.query.bias",
    q_columns = "all", q_note = "its output is Q itself",
    attn = "bert.encoder.layer.%s.attention.output.dense",
    attn_proj = "bert.encoder.layer.%s.attention.output.dense", mlp_proj = "bert.encoder.layer.%s.output.dense",
  },
  llama = llama, mistral = llama, qwen2 = llama,
}

-- The paths of `m`'s architecture; a lesson that needs them and meets another architecture stops
-- with a message naming what it knows.
function M.of(m, lesson_id)
  local paths = M.architectures[m.architecture]
  if paths then return paths end
  local known = {}
  for name in pairs(M.architectures) do known[#known + 1] = name end
  table.sort(known)
  error(("lesson %s knows the module paths of %s, not %s"):format(lesson_id, table.concat(known, ", "),
    m.architecture), 0)
end

function M.path(paths, kind, layer) return paths[kind]:format(layer) end

-- The parameter if the checkpoint has it (a bias is optional: Llama's q_proj has none, Qwen2's has).
function M.optional_parameter(m, name)
  local ok, t = pcall(m.parameter, m, name)
  return ok and t or nil
end

-- The Q columns of the module's output [batch, pos, width]; `heads` for the per-head layout.
function M.q_of(paths, out, d_model, heads)
  if paths.q_columns == "first" then return out:slice(-1, 0, d_model) end
  if paths.q_columns == "per_head" then
    local b, pos = out:size(0), out:size(1)
    return out:reshape({ b, pos, heads, 3, d_model // heads }):select(3, 0):reshape({ b, pos, d_model })
  end
  return out
end

-- A number from the model folder's config.json (the final norm's epsilon), or `default` when the
-- key is absent, as transformers defaults it.
function M.config_number(m, key, default)
  local f = io.open(m.source .. "/config.json", "r")
  if not f then return default end
  local text = f:read("a")
  f:close()
  local value = text:match('"' .. key .. '"%s*:%s*([-+%d%.eE]+)')
  return value and tonumber(value) or default
end

return M
