-- Benchmark: the replace plugin's sweep (lesson 17-01) batched against one forward pass per
-- intervention — the course runs layers x 9 rates = 324 passes on GPT-2 large — and the subspace
-- plugin's per-layer sweep the same way. Prints a Markdown table (best of --repeats interleaved rounds).
--
--   llmscope run bench/replace_bench.lua --model DIR [-- --repeats 3 --batch 9,36,108]
--   llmscope run bench/replace_bench.lua -- --random 12x768   # a random GPT-2 of that depth x width
--
-- Options: --repeats N (3), --rates N (9: 0.1 .. 0.9), --tokens N (prompt length without a
-- tokenizer, 6), --batch LIST (batch sizes besides the default), --subspace true|false (true),
-- --random LxD[xV] (write a random GPT-2, vocabulary V or 50257, to a temporary folder and use it).
local bench = require("lib.bench")
local opts = bench.options({ repeats = 3, rates = 9, tokens = 6, batch = "", subspace = "true", random = "" })

-- With --random, a random GPT-2 of depth x width (GPT-2's vocabulary and context), for timing at
-- realistic sizes.
local m, cleanup
if opts.random ~= "" then
  cleanup = bench.random_gpt2(nil, bench.shape(opts.random))
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
if cleanup then bench.remove_dir(cleanup) end
