-- Writes a randomly initialised GPT-2 with GPT-2's real tokenizer into a folder: deep enough
-- (12 layers) for specs and docs examples that hook blocks.8, small enough (d_model 32) to run
-- in a blink. usage: llmscope run make_random_gpt2.lua -- OUT_DIR TOKENIZER_DIR
local out, tokenizer_dir = arg[1], arg[2]
assert(out and tokenizer_dir, "usage: make_random_gpt2.lua OUT_DIR TOKENIZER_DIR")
os.execute("mkdir -p '" .. out .. "'")

local config = { n_layer = 12, n_embd = 32, n_head = 2, n_positions = 128, vocab_size = 50257 }
local d, inner = config.n_embd, 4 * config.n_embd
local seed = 0
local function randn(shape, std)
  seed = seed + 1
  return tensor.randn(shape, { seed = seed }) * std
end

local weights = {
  ["transformer.wte.weight"] = randn({ config.vocab_size, d }, 0.1),
  ["transformer.wpe.weight"] = randn({ config.n_positions, d }, 0.02),
  ["transformer.ln_f.weight"] = tensor.ones({ d }),
  ["transformer.ln_f.bias"] = tensor.zeros({ d }),
}
for layer = 0, config.n_layer - 1 do
  local p = "transformer.h." .. layer .. "."
  weights[p .. "ln_1.weight"] = tensor.ones({ d })
  weights[p .. "ln_1.bias"] = tensor.zeros({ d })
  weights[p .. "ln_2.weight"] = tensor.ones({ d })
  weights[p .. "ln_2.bias"] = tensor.zeros({ d })
  weights[p .. "attn.c_attn.weight"] = randn({ d, 3 * d }, 0.2)
  weights[p .. "attn.c_attn.bias"] = randn({ 3 * d }, 0.02)
  weights[p .. "attn.c_proj.weight"] = randn({ d, d }, 0.2)
  weights[p .. "attn.c_proj.bias"] = randn({ d }, 0.02)
  weights[p .. "mlp.c_fc.weight"] = randn({ d, inner }, 0.2)
  weights[p .. "mlp.c_fc.bias"] = randn({ inner }, 0.02)
  weights[p .. "mlp.c_proj.weight"] = randn({ inner, d }, 0.1)
  weights[p .. "mlp.c_proj.bias"] = randn({ d }, 0.02)
end
tensor.save(out .. "/model.safetensors", weights, { format = "pt" })

local f = assert(io.open(out .. "/config.json", "w"))
f:write(string.format([[{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": %d,
 "n_embd": %d, "n_head": %d, "n_positions": %d, "vocab_size": %d, "eos_token_id": 50256,
 "bos_token_id": 50256, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}]],
  config.n_layer, config.n_embd, config.n_head, config.n_positions, config.vocab_size))
f:close()

for _, name in ipairs({ "vocab.json", "merges.txt" }) do
  local src = assert(io.open(tokenizer_dir .. "/" .. name, "rb"))
  local dst = assert(io.open(out .. "/" .. name, "wb"))
  dst:write(src:read("a"))
  src:close()
  dst:close()
end
print("wrote " .. out)
