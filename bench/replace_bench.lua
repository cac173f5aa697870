-- Benchmark: the replace plugin's sweep (lesson 17-01) batched against one forward pass per
-- intervention — the course runs layers x 9 rates = 324 passes on GPT-2 large — and the subspace
-- plugin's per-layer sweep the same way. Prints a Markdown table (best of --repeats interleaved rounds).
--
--   llmscope run bench/replace_bench.lua --model DIR [-- --repeats 3 --batch 9,36,108]
--   llmscope run bench/replace_bench.lua -- --random 12x768   # a random GPT-2 of that depth x width
--
-- Options: --repeats N (3), --rates N (9: 0.1 .. 0.9), --tokens N (prompt length without a
-- tokenizer, 6), --batch LIST (batch sizes besides the default), --subspace true|false (true),
-- --random LxD (write a random GPT-2, vocabulary 50257, to a temporary folder and use it).
local opts = { repeats = 3, rates = 9, tokens = 6, batch = "", subspace = "true", random = "" }
local i = 1
while i <= #arg do
  local key = arg[i]:match("^%-%-([%w_]+)$")
  if not key or opts[key] == nil then error("replace_bench: unknown argument '" .. arg[i] .. "'", 0) end
  opts[key] = type(opts[key]) == "number" and assert(tonumber(arg[i + 1]), "--" .. key .. " takes a number") or arg[i + 1]
  i = i + 2
end

-- A random GPT-2 of depth x width (GPT-2's vocabulary and context), for timing at realistic sizes.
local function random_gpt2(shape)
  local n_layer, d = shape:match("^(%d+)x(%d+)$")
  n_layer, d = assert(tonumber(n_layer), "--random LxD, e.g. 12x768"), tonumber(d)
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  local vocab, positions, seed = 50257, 1024, 0
  local function randn(s, std)
    seed = seed + 1
    return tensor.randn(s, { seed = seed }) * std
  end
  local w = {
    ["transformer.wte.weight"] = randn({ vocab, d }, 0.02), ["transformer.wpe.weight"] = randn({ positions, d }, 0.01),
    ["transformer.ln_f.weight"] = tensor.ones({ d }), ["transformer.ln_f.bias"] = tensor.zeros({ d }),
  }
  for l = 0, n_layer - 1 do
    local p = "transformer.h." .. l .. "."
    w[p .. "ln_1.weight"], w[p .. "ln_1.bias"] = tensor.ones({ d }), tensor.zeros({ d })
    w[p .. "ln_2.weight"], w[p .. "ln_2.bias"] = tensor.ones({ d }), tensor.zeros({ d })
    w[p .. "attn.c_attn.weight"], w[p .. "attn.c_attn.bias"] = randn({ d, 3 * d }, 0.02), tensor.zeros({ 3 * d })
    w[p .. "attn.c_proj.weight"], w[p .. "attn.c_proj.bias"] = randn({ d, d }, 0.02), tensor.zeros({ d })
    w[p .. "mlp.c_fc.weight"], w[p .. "mlp.c_fc.bias"] = randn({ d, 4 * d }, 0.02), tensor.zeros({ 4 * d })
    w[p .. "mlp.c_proj.weight"], w[p .. "mlp.c_proj.bias"] = randn({ 4 * d, d }, 0.02), tensor.zeros({ d })
  end
  tensor.save(dir .. "/model.safetensors", w, { format = "pt" })
  local f = assert(io.open(dir .. "/config.json", "w"))
  f:write(('{"model_type": "gpt2", "n_layer": %d, "n_embd": %d, "n_head": %d, "n_positions": %d, ' ..
    '"vocab_size": %d, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}'):format(
    n_layer, d, math.max(1, d // 64), positions, vocab))
  f:close()
  return dir
end

local m, cleanup
if opts.random ~= "" then
  cleanup = random_gpt2(opts.random)
  m = model.load(cleanup)
else
  m = model.load()
end
local replace, subspace = plugin("replace"), plugin("subspace")
local ids
local ok_tok = pcall(function() ids = m:tokenize("It was a dark and stormy") end)
if not ok_tok then ids = (tensor.arange(opts.tokens) * 37 + 11) % m.vocab_size end
local rates = {}
for r = 1, opts.rates do rates[r] = r / (opts.rates + 1) end
local n = m.n_layer * #rates

print(("# replace.sweep: %s, prompt of %d tokens, %d layers x %d rates = %d interventions, best of %d")
  :format(tostring(m), ids:numel(), m.n_layer, #rates, n, opts.repeats))
local cases = { { name = "loop (one pass each)", o = { loop = true } }, { name = "batched, default batch size", o = {} } }
for b in tostring(opts.batch):gmatch("%d+") do
  cases[#cases + 1] = { name = "batched, batch_size " .. b, o = { batch_size = tonumber(b) } }
end

local function run_cases(fn, inputs, list)
  local best, results = {}, {}
  for _ = 1, opts.repeats do   -- interleaved rounds: each case once per round
    for c, case in ipairs(list) do
      local out = fn(m, inputs, case.o)
      best[c] = math.min(best[c] or math.huge, out.seconds)
      results[c] = out
    end
  end
  return best, results
end

for _, case in ipairs(cases) do case.o.rates = rates end
local best, results = run_cases(replace.sweep, ids, cases)
print("| case | forward passes | seconds | interventions/s | vs loop | max abs diff vs loop |")
print("|---|---|---|---|---|---|")
for c, case in ipairs(cases) do
  local diff = (results[c].delta - results[1].delta):abs():max():item()
  print(("| %s | %d | %.3f | %.1f | %.2fx | %.1e |"):format(case.name, results[c].forwards, best[c], n / best[c],
    best[1] / best[c], diff))
end

if opts.subspace == "true" then
  local text_ids = ids
  local ok = pcall(function()
    text_ids = m:tokenize("Johannes Kepler (27 December 1571 – 15 November 1630) was a German astronomer and " ..
      "mathematician, best remembered for the three laws of planetary motion that bear his name.")
  end)
  if not ok then text_ids = (tensor.arange(32) * 37 + 11) % m.vocab_size end
  local scases = { { name = "loop (one pass per layer)", o = { loop = true } }, { name = "batched, default batch size", o = {} } }
  local sbest, sres = run_cases(subspace.sweep, text_ids, scases)
  print()
  print(("# subspace.sweep: %d layers, text of %d tokens, k = 1, best of %d"):format(m.n_layer, text_ids:numel(), opts.repeats))
  print("| case | forward passes | seconds | layers/s | vs loop | max abs diff vs loop |")
  print("|---|---|---|---|---|---|")
  for c, case in ipairs(scases) do
    local diff = (sres[c].delta - sres[1].delta):abs():max():item()
    print(("| %s | %d | %.3f | %.1f | %.2fx | %.1e |"):format(case.name, sres[c].forwards, sbest[c], m.n_layer / sbest[c],
      sbest[1] / sbest[c], diff))
  end
end
if cleanup then os.execute("rm -rf '" .. cleanup .. "'") end
