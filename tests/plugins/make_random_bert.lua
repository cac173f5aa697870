-- Writes a randomly initialised BERT masked LM with a real WordPiece vocabulary (the golden
-- tokenizer's 3000 tokens) into a folder: for specs and lesson smoke runs that pass texts and
-- [MASK] to a BERT. 12 layers like bert-base, d_model 32, so it runs in a blink.
-- usage: llmscope run make_random_bert.lua -- OUT_DIR VOCAB_TXT
local out, vocab_txt = arg[1], arg[2]
assert(out and vocab_txt, "usage: make_random_bert.lua OUT_DIR VOCAB_TXT")
os.execute("mkdir -p '" .. out .. "'")

local src = assert(io.open(vocab_txt, "rb"))
local vocab_text = src:read("a")
src:close()
local vocab = 0
for _ in vocab_text:gmatch("[^\n]*\n") do vocab = vocab + 1 end

local config = { layers = 12, d = 32, heads = 2, inner = 128, positions = 128, vocab = vocab }
local d, inner = config.d, config.inner
local seed = 100
local function randn(shape, std)
  seed = seed + 1
  return tensor.randn(shape, { seed = seed }) * std
end
local function norm(weights, name)
  weights[name .. ".weight"] = tensor.ones({ d })
  weights[name .. ".bias"] = tensor.zeros({ d })
end
local function linear(weights, name, n_out, n_in, std)
  weights[name .. ".weight"] = randn({ n_out, n_in }, std)
  weights[name .. ".bias"] = randn({ n_out }, 0.02)
end

local weights = {
  ["bert.embeddings.word_embeddings.weight"] = randn({ vocab, d }, 0.1),
  ["bert.embeddings.position_embeddings.weight"] = randn({ config.positions, d }, 0.02),
  ["bert.embeddings.token_type_embeddings.weight"] = randn({ 2, d }, 0.02),
  ["cls.predictions.bias"] = tensor.zeros({ vocab }),
}
norm(weights, "bert.embeddings.LayerNorm")
for layer = 0, config.layers - 1 do
  local p = "bert.encoder.layer." .. layer .. "."
  for _, name in ipairs({ "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense" }) do
    linear(weights, p .. name, d, d, 0.2)
  end
  norm(weights, p .. "attention.output.LayerNorm")
  linear(weights, p .. "intermediate.dense", inner, d, 0.2)
  linear(weights, p .. "output.dense", d, inner, 0.1)
  norm(weights, p .. "output.LayerNorm")
end
linear(weights, "cls.predictions.transform.dense", d, d, 0.2)
norm(weights, "cls.predictions.transform.LayerNorm")
tensor.save(out .. "/model.safetensors", weights, { format = "pt" })

local f = assert(io.open(out .. "/config.json", "w"))
f:write(string.format([[{"model_type": "bert", "architectures": ["BertForMaskedLM"], "num_hidden_layers": %d,
 "hidden_size": %d, "num_attention_heads": %d, "intermediate_size": %d, "max_position_embeddings": %d,
 "vocab_size": %d, "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": 0}]],
  config.layers, d, config.heads, inner, config.positions, vocab))
f:close()
local dst = assert(io.open(out .. "/vocab.txt", "wb"))
dst:write(vocab_text)
dst:close()
print("wrote " .. out)
