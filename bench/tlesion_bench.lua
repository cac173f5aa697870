-- Benchmark: tlesion's selection over every layer (native hooks gather each row's target position
-- and feed streaming t-test accumulators on the device) against the course's ways: (1) cache every
-- layer's whole MLP activation, copy it to the host, then gather the target positions and test
-- (17-02's `output.numpy()`), and (2) Lua hooks that gather the target rows and copy them out
-- (17-03's analysis in the hook), then test. All see the same rows in the same batches and stop
-- after the last block (the plugin does so by itself), so they differ only in how activations are
-- gathered and tested; a last row adds the LM head, as the course's passes run it. Their t
-- statistics must agree.
--
--   llmscope run bench/tlesion_bench.lua --model DIR [--device cuda] -- [--copies 1] [--repeats 3]
--       [--batch-size 64] [--random 12x768]
--
-- The sentences are lessons/data/him_her_pairs.txt (54 pairs), tokenised by --model's tokenizer and
-- repeated --copies times. --random LxD builds a randomly initialised GPT-2 with L layers and
-- d_model D (the --model's vocabulary) in the output folder and benchmarks that on the same ids.
local bench = require("lib.bench")
local opts = bench.options({ copies = 1, repeats = 3, batch_size = 64, random = "" })

local tl = plugin("tlesion")
local tok_model = model.load()
local m = tok_model
if opts.random ~= "" then
  local shape = bench.shape(opts.random)
  shape.vocab, shape.positions = tok_model.vocab_size, 128
  m = model.load(bench.random_gpt2(report.dir() .. "/random-gpt2-" .. opts.random, shape))
end

-- The rows: him sentences (A) and her sentences (B), right-padded ids with a mask, and the
-- pronoun's position in each row.
local data = arg[0]:gsub("[^/]+$", "") .. "../lessons/data/him_her_pairs.txt"
local him, her = {}, {}
for line in io.lines(data) do
  local a, b = line:match("^([^\t#][^\t]*)\t([^\t]+)$")
  if a then
    for _ = 1, opts.copies do him[#him + 1], her[#her + 1] = a, b end
  end
end
local causal = tok_model.is_causal
local HIM, HER = causal and " him" or "him", causal and " her" or "her"
local function rows_of(texts)
  local ids, longest = {}, 0
  for i, t in ipairs(texts) do
    ids[i] = tok_model:tokenize(t)
    longest = math.max(longest, ids[i]:numel())
  end
  local out = tensor.zeros({ #texts, longest }, { dtype = "int64" })
  local mask = tensor.zeros({ #texts, longest }, { dtype = "int64" })
  for i, t in ipairs(ids) do
    out[i - 1]:narrow(0, 0, t:numel()):copy(t)
    mask[i - 1]:narrow(0, 0, t:numel()):fill(1)
  end
  return { ids = out, mask = mask }
end
local a, b = rows_of(him), rows_of(her)
local pos_a, pos_b = tl.find(tok_model, a, HIM), tl.find(tok_model, b, HER)
local n = #him
local width = math.max(a.ids:size(1), b.ids:size(1))
local tokens = (a.mask:sum() + b.mask:sum()):item()
local names = "blocks.*.mlp.hook_pre"

-- The plugin: every layer in one set of passes.
local function plugin_select()
  return tl.select(m, a, b, { positions_a = pos_a, positions_b = pos_b, batch_size = opts.batch_size })
end

-- The passes the course-style methods make: the plugin's batches (pairs of A and B chunks).
local per = math.max(1, opts.batch_size // 2)
local function batches(fn)
  for start = 0, n - 1, per do
    local k = math.min(per, n - start)
    local ids = tensor.cat({ a.ids:narrow(0, start, k), b.ids:narrow(0, start, k) })
    local mask = tensor.cat({ a.mask:narrow(0, start, k), b.mask:narrow(0, start, k) })
    local positions = tensor.cat({ pos_a:narrow(0, start, k), pos_b:narrow(0, start, k) })
    fn({ ids = ids, mask = mask }, positions, k)
  end
end
local function test_layers(acts_a, acts_b)
  local t = {}
  for l = 0, m.n_layer - 1 do
    local r = stats.ttest_rel(acts_a[l], acts_b[l])
    stats.fdr(r.p)
    t[l + 1] = r.t
  end
  return tensor.stack(t)
end
local function gather(act, positions)   -- [rows, pos, units] -> [rows, units] at each row's position
  local s = act:shape()
  return act:reshape({ s[1] * s[2], s[3] }):index(0, tensor.arange(s[1], { device = act:device() }) * s[2] + positions)
end

-- (1) Cache everything, copy it to the host, then gather and test (the course's 17-02).
local kept_bytes = 0
local function host_copy(with_head)
  local full = {}
  for l = 0, m.n_layer - 1 do full[l] = {} end
  kept_bytes = 0
  batches(function(input, positions, k)
    local _, cache = m:run_with_cache(input, { names = names, stop_at_layer = not with_head and m.n_layer or nil })
    for l = 0, m.n_layer - 1 do
      local act = cache["blocks." .. l .. ".mlp.hook_pre"]
      local host = act:device() == "cpu" and act:clone() or act:cpu()
      kept_bytes = kept_bytes + host:numel() * 4
      full[l][#full[l] + 1] = { host, positions, k }
    end
  end)
  local acts_a, acts_b = {}, {}
  for l = 0, m.n_layer - 1 do
    local pa, pb = {}, {}
    for _, piece in ipairs(full[l]) do
      local g = gather(piece[1], piece[2]:cpu())
      pa[#pa + 1], pb[#pb + 1] = g:narrow(0, 0, piece[3]), g:narrow(0, piece[3], piece[3])
    end
    acts_a[l], acts_b[l] = tensor.cat(pa), tensor.cat(pb)
  end
  return test_layers(acts_a, acts_b)
end

-- (2) Lua hooks gather the target rows and copy them out (the course's 17-03), then test.
local function lua_hooks()
  local pa, pb = {}, {}
  for l = 0, m.n_layer - 1 do pa[l], pb[l] = {}, {} end
  batches(function(input, positions, k)
    local hooks = {}
    local dev = positions:to(m.device)
    for l = 0, m.n_layer - 1 do
      hooks["blocks." .. l .. ".mlp.hook_pre"] = function(act)
        local g = gather(act, dev):cpu():clone()
        pa[l][#pa[l] + 1], pb[l][#pb[l] + 1] = g:narrow(0, 0, k), g:narrow(0, k, k)
      end
    end
    m:run_with_hooks(input, hooks, { stop_at_layer = m.n_layer })
  end)
  local acts_a, acts_b = {}, {}
  for l = 0, m.n_layer - 1 do acts_a[l], acts_b[l] = tensor.cat(pa[l]), tensor.cat(pb[l]) end
  return test_layers(acts_a, acts_b)
end

plugin_select() -- warm-up (plugin load, allocator)
local best = { plugin = math.huge, host = math.huge, hooks = math.huge, head = math.huge }
local sel, t_host, t_hooks
for _ = 1, opts.repeats do
  local t, _
  t, _, sel = bench.timed(plugin_select); best.plugin = math.min(best.plugin, t)
  t, _, t_host = bench.timed(host_copy); best.host = math.min(best.host, t)
  t, _, t_hooks = bench.timed(lua_hooks); best.hooks = math.min(best.hooks, t)
  t = bench.timed(function() return host_copy(true) end); best.head = math.min(best.head, t)
end
local function max_rel(x, y)
  local keep = x:isnan():eq(false)
  if not keep:any() then return 0 end
  return ((x:masked_select(keep) - y:masked_select(keep)):abs() / (y:masked_select(keep):abs() + 1e-6)):max():item()
end
local diff = math.max(max_rel(sel.t, t_host:to(sel.t)), max_rel(sel.t, t_hooks:to(sel.t)))
local units = sel.units

report.title("tlesion selection benchmark")
report.text(("`%s` on %s; %d + %d sentences (%d tokens, padded width %d), %d layers x %d units, batches of %d " ..
  "rows, best of %d; max relative t difference between methods %.2g.")
  :format(tostring(m), m.device, n, n, tokens, width, m.n_layer, units, 2 * per, opts.repeats, diff))
local rows = {
  { "tlesion.select: native gather at the targets + streaming t-tests", best.plugin, tokens / best.plugin },
  { "17-02 style: cache every layer's whole activation, copy to host, gather, test", best.host, tokens / best.host },
  { "17-03 style: Lua hooks gather the target rows, copy them out, then test", best.hooks, tokens / best.hooks },
  { "17-02 style as the course runs it (with the LM head's logits)", best.head, tokens / best.head },
}
report.table("Selection over all layers", { columns = { "method", "seconds", "tokens/s" }, rows = rows })
print(("%s, device %s, %d + %d sentences, %d tokens, %d layers x %d units"):format(tostring(m), m.device, n, n,
  tokens, m.n_layer, units))
for _, row in ipairs(rows) do print(("%-80s %8.3f s %10.0f tok/s"):format(row[1], row[2], row[3])) end
print(("host copies kept %.1f MiB of activations; plugin keeps [layers, units] accumulators only; max rel t diff %.2g; " ..
  "clock overhead %.3f s subtracted"):format(kept_bytes / 2 ^ 20, diff, bench.clock_overhead()))
if diff > 1e-4 then error("the methods' t statistics differ by " .. diff, 0) end
