-- Benchmark: the token_length plugin's streaming scan against the course's way — a Lua hook on
-- every layer that copies the MLP pre-activations to host tensors, then the statistics on the
-- copies (stats.pearson, stats.histogram). Both see the same token rows and the same lengths, and
-- must give the same r; the table reports tokens per second (best of --repeats, interleaved) by
-- wall clock and by the process's CPU time (os.clock), which is the steadier measure on a shared
-- machine while ATen runs one thread.
--
--   llmscope run bench/token_length_bench.lua --model DIR [--device cuda] -- [--tokens 8192]
--       [--repeats 3] [--batch-rows 16] [--seq-len 512] [--random 12x768[x50257]]
--
-- --random LxD[xV] builds a randomly initialised GPT-2 with L layers, d_model D and a vocabulary of
-- V (default GPT-2's 50257), 1024 positions and no tokenizer, in the output folder, and benchmarks
-- that instead of --model.
-- Without a tokenizer the ids are random and the "lengths" made up; only the timing matters.
local bench = require("lib.bench")
local opts = bench.options({ tokens = 8192, repeats = 3, batch_rows = 16, seq_len = 512, random = "" })

-- A random GPT-2 of the given depth and width, written once into the output folder.
local m = opts.random ~= "" and model.load(bench.random_gpt2(report.dir() .. "/random-gpt2-" .. opts.random,
  bench.shape(opts.random))) or model.load()
local tl = plugin("token_length")
local seq_len = math.min(opts.seq_len, m.max_positions)

-- Tokens and their lengths, the same for both methods (and not timed: the course measures
-- lengths in a separate loop too).
local ids, lengths, source
if pcall(m.tokenize, m, "x") then
  ids = m:tokenize(corpus.brown():text():sub(1, 16 * opts.tokens))
  lengths = tl.lengths(m, ids, { tokens = opts.tokens }).lengths
  source = "the Brown corpus"
else
  ids = (tensor.rand({ opts.tokens }, { seed = 1 }) * m.vocab_size):long():clamp(0, m.vocab_size - 1)
  lengths = ids % 7 + 1
  source = "random ids (the model has no tokenizer)"
end
local n = math.min(opts.tokens, ids:numel())
ids = ids:narrow(0, 0, n):to(m.device)
lengths = lengths:narrow(0, 0, n)
local site = "blocks.{L}.mlp.hook_pre"
local edges, r_edges = tensor.linspace(-8, 5, 51, { dtype = "float64" }), tensor.linspace(-0.8, 0.8, 81, { dtype = "float64" })

-- The passes both methods make: rows of seq_len, batch_rows rows per pass, the tail on its own.
local function passes()
  local list, full = {}, n // seq_len
  for row = 0, full - 1, opts.batch_rows do
    local rows = math.min(opts.batch_rows, full - row)
    list[#list + 1] = ids:narrow(0, row * seq_len, rows * seq_len):reshape({ rows, seq_len })
  end
  if n % seq_len > 0 then list[#list + 1] = ids:narrow(0, full * seq_len, n % seq_len):reshape({ 1, -1 }) end
  return list
end
local batches = passes()

local function streaming()
  return tl.scan(m, ids, { tokens = n, lengths = lengths, batch_rows = opts.batch_rows, seq_len = seq_len })
end

-- The course's way: every layer's activations copied to the host during the passes, statistics after.
-- `stop` ends each pass after the last block (no logits), as the streaming scan does.
local function naive(stop)
  local store, hooks = {}, {}
  for l = 0, m.n_layer - 1 do
    store[l] = {}
    hooks[site:gsub("{L}", tostring(l))] = function(act)
      local host = act:device() == "cpu" and act:clone() or act:cpu()
      store[l][#store[l] + 1] = host:reshape({ -1, host:size(-1) })
    end
  end
  for _, batch in ipairs(batches) do m:run_with_hooks(batch, hooks, { stop_at_layer = stop and m.n_layer or nil }) end
  local y = lengths:double()
  local sorted = y:sort()
  local median = n % 2 == 1 and sorted[n // 2]:item() or (sorted[n // 2 - 1]:item() + sorted[n // 2]:item()) / 2
  local labels = tensor.where(y:lt(median), 0, tensor.where(y:eq(median), 1, 2))
  local rows = {}
  for g = 0, 2 do rows[g] = labels:eq(g):nonzero():reshape({ -1 }) end
  local r = {}
  for l = 0, m.n_layer - 1 do
    local acts = tensor.cat(store[l], 0)   -- [n, neurons] on the host
    store[l] = nil
    r[l + 1] = stats.pearson(acts, y)
    for g = 0, 2 do stats.histogram(acts:index(0, rows[g]):reshape({ -1 }), edges) end
    stats.histogram(r[l + 1], r_edges)
  end
  return tensor.stack(r)
end

-- The forward passes alone, as the course runs them (whole model, no hooks).
local function forward_only()
  for _, batch in ipairs(batches) do m:forward(batch) end
end

streaming()   -- warm-up (allocator, plugin load)
local methods = {
  { key = "forward", name = "forward passes only (no hooks, full model)", fn = forward_only },
  { key = "streaming", name = "streaming scan (token_length plugin)", fn = streaming },
  { key = "naive", name = "naive: Lua hooks copy every layer to host, then stats", fn = naive },
  { key = "naive_stop", name = "naive, passes stopped after the last block (no logits)",
    fn = function() return naive(true) end },
}
local best, cpu = {}, {}
local r_stream, r_naive
for _ = 1, opts.repeats do
  for _, method in ipairs(methods) do
    local wall, c, out = bench.timed(method.fn)
    best[method.key] = math.min(best[method.key] or math.huge, wall)
    cpu[method.key] = math.min(cpu[method.key] or math.huge, c)
    if method.key == "streaming" then r_stream = out.r elseif method.key == "naive" then r_naive = out end
  end
end
local diff = (r_stream - r_naive):abs():max():item()

local neurons = r_stream:size(1)
local host_mb = m.n_layer * n * neurons * 4 / 2 ^ 20
local function row(method)
  local wall, c = best[method.key], cpu[method.key]
  return { method.name, n / wall, wall, c, n / c }
end
report.title("token_length benchmark")
report.text(("`%s`, %d tokens of %s in %d passes of up to %d x %d, best of %d; host copies of the naive " ..
  "method: %.0f MiB. max |r streaming - r naive| = %.2g."):format(tostring(m), n, source, #batches,
  opts.batch_rows, seq_len, opts.repeats, host_mb, diff))
local table_rows = {}
for _, method in ipairs(methods) do table_rows[#table_rows + 1] = row(method) end
report.table("Token-length scan", { columns = { "method", "tokens/s (wall)", "wall s", "CPU s", "tokens/CPU s" },
  rows = table_rows })
print(("%s, %d tokens, %d layers x %d neurons, device %s"):format(tostring(m), n, m.n_layer, neurons, m.device))
print(("%-58s %12s %9s %9s %12s"):format("method", "tok/s wall", "wall s", "CPU s", "tok/CPU s"))
for _, r in ipairs(table_rows) do print(("%-58s %12.0f %9.3f %9.3f %12.0f"):format(table.unpack(r))) end
print(("streaming over naive: %.2fx (wall), %.2fx (CPU); max |r diff| %.2g; naive host copies %.0f MiB")
  :format(best.naive / best.streaming, cpu.naive / cpu.streaming, diff, host_mb))
if diff > 1e-4 then error("streaming and naive r differ by " .. diff, 0) end
