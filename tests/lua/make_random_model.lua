-- Writes a model folder of any architecture from a config.json alone, with random weights and a
-- tokenizer copied beside them: the Llama and Pythia models the lesson tests run on.
-- usage: llmscope run make_random_model.lua -- CONFIG_JSON TOKENIZER_DIR OUT_DIR [SEED]
local config_path, tokenizer_dir, out, seed = arg[1], arg[2], arg[3], tonumber(arg[4] or "1")
assert(config_path and tokenizer_dir and out,
  "usage: make_random_model.lua CONFIG_JSON TOKENIZER_DIR OUT_DIR [SEED]")
os.execute("mkdir -p '" .. out .. "'")

local function copy(from, to)
  local src = io.open(from, "rb")
  if not src then return false end
  local dst = assert(io.open(to, "wb"))
  dst:write(src:read("a"))
  src:close()
  dst:close()
  return true
end

assert(copy(config_path, out .. "/config.json"), "cannot read " .. config_path)
local m = model.random(out .. "/config.json", { seed = seed })
tensor.save(out .. "/model.safetensors", m:parameters(), { format = "pt" })
local copied = 0
for _, name in ipairs({ "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
  "merges.txt", "vocab.txt" }) do
  if copy(tokenizer_dir .. "/" .. name, out .. "/" .. name) then copied = copied + 1 end
end
assert(copied > 0, "no tokenizer files in " .. tokenizer_dir)
print(string.format("wrote %s: %s, %d layers, %d parameters", out, m.config.architecture,
  m.config.n_layer, m.config.parameters))
