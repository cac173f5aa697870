-- Benchmark: the negation plugin's full scan (every layer, every unit: target-position activations
-- gathered in native hooks, batched logistic fits) against the course's way — every layer's
-- activations copied out of the pass by a hook, then one logistic fit per unit. Both see the same
-- windows; the betas must agree. Per-unit fits are timed on a sample of units and extrapolated.
--
--   llmscope run bench/negation_bench.lua --model DIR [--device cuda] -- [--windows 500]
--       [--batch-size 32] [--max-iter 3000] [--per-unit 64] [--site mlp] [--random 12x768[x50257]]
--       [--repeats 1]
--
-- --random LxD[xV] builds a randomly initialised GPT-2 with L layers, d_model D and a vocabulary of
-- V (default 50257) in the output folder and benchmarks that instead of --model; its windows are
-- random ids with random labels (only the timing matters then).
local bench = require("lib.bench")
local opts = bench.options({ windows = 500, batch_size = 32, max_iter = 3000, per_unit = 64, site = "mlp", random = "",
  repeats = 1 })

local m = opts.random ~= "" and model.load(bench.random_gpt2(report.dir() .. "/random-gpt2-" .. opts.random,
  bench.shape(opts.random))) or model.load()
local neg = plugin("negation")

-- Windows: labelled from the Brown corpus when the model has a tokenizer, else random.
local w_neg, w_aff, source
if pcall(m.tokenize, m, "x") then
  local ids = m:tokenize(corpus.brown():text())
  local l = neg.label(m, ids)
  w_neg = neg.windows(ids, l.negations, { max = opts.windows })
  w_aff = neg.windows(ids, l.affirmations, { max = opts.windows })
  source = "the Brown corpus"
else
  local all = (tensor.rand({ 2 * opts.windows, 101 }, { seed = 1 }) * m.vocab_size):long():clamp(0, m.vocab_size - 1)
  w_neg, w_aff = all:narrow(0, 0, opts.windows), all:narrow(0, opts.windows, opts.windows)
  source = "random ids (the model has no tokenizer)"
end
local n = w_neg:size(0) + w_aff:size(0)
local y = tensor.cat({ tensor.zeros({ w_aff:size(0) }), tensor.ones({ w_neg:size(0) }) }):double()
local templates = opts.site == "qkv" and { "blocks.{L}.attn.hook_q", "blocks.{L}.attn.hook_k", "blocks.{L}.attn.hook_v" }
  or { opts.site == "mlp" and "blocks.{L}.mlp.hook_pre" or opts.site }

-- The plugin: the full scan.
local function plugin_scan()
  return neg.scan(m, w_neg, w_aff, { site = opts.site, max_iter = opts.max_iter, batch_size = opts.batch_size })
end

-- The course's way, forward part: full 101-token windows, the whole model, and a hook on every
-- layer that copies the site's whole activation out of the pass (the course's .detach().cpu());
-- only the target row of each copy is kept, so memory stays bounded here.
local function course_forward(stop)
  local rows = tensor.cat({ w_aff, w_neg }, 0)
  local store, hooks = {}, {}
  for l = 0, m.n_layer - 1 do
    store[l] = {}
    for k, t in ipairs(templates) do
      store[l][k] = {}
      hooks[t:gsub("{L}", tostring(l))] = function(act)
        local host = act:device() == "cpu" and act:clone() or act:cpu()
        local list = store[l][k]
        list[#list + 1] = host:select(1, 90):reshape({ host:size(0), -1 })
      end
    end
  end
  for row = 0, n - 1, opts.batch_size do
    m:run_with_hooks(rows:narrow(0, row, math.min(opts.batch_size, n - row)), hooks,
      { stop_at_layer = stop and m.n_layer or nil })
  end
  local x = {}
  for l = 0, m.n_layer - 1 do
    local parts = {}
    for k = 1, #templates do parts[k] = tensor.cat(store[l][k], 0) end
    x[l] = tensor.cat(parts, 1)   -- [n, units]
  end
  return x
end

plugin_scan() -- warm-up (plugin load, allocator)
-- Best wall seconds of each case and the CPU seconds of that round (the steadier number here).
local best, cpu = {}, {}
local r, x
best.scan, cpu.scan, r = bench.best_of(opts.repeats, plugin_scan)
best.course_forward, cpu.course_forward, x = bench.best_of(opts.repeats, course_forward)
best.course_stop, cpu.course_stop = bench.best_of(opts.repeats, function() course_forward(true) end)

-- Fits on the copied activations: batched per layer (stats.logit) and one unit at a time.
local units = x[0]:size(1)
local t_batched, c_batched = bench.timed(function()
  for l = 0, m.n_layer - 1 do stats.logit(x[l], y, { max_iter = opts.max_iter }) end
end)
local sample = math.min(opts.per_unit, units)
local t_one, c_one = bench.timed(function()
  for j = 0, sample - 1 do stats.logit(x[0]:narrow(1, j, 1), y, { max_iter = opts.max_iter }) end
end)
local per_unit_ms = 1000 * t_one / sample
local fits = m.n_layer * units

-- The same betas both ways (layer 0 and the last layer; first part only when Q/K/V).
local first = r[r.parts[1]]
local function max_rel(a, b)
  local keep = a:isnan():eq(false)
  if not keep:any() then return 0 end
  local d = (a:masked_select(keep) - b:masked_select(keep)):abs()
  return (d / (b:masked_select(keep):abs() + 1e-6)):max():item()
end
local ref0 = stats.logit(x[0], y, { max_iter = opts.max_iter }).coef[1]:narrow(0, 0, r.units)
local diff = max_rel(first.beta[0], ref0)

local tokens_scan = r.timing.tokens
local tokens_course = n * 101
report.title("negation benchmark")
report.text(("`%s`, site %s, %d + %d windows of 101 tokens from %s; %d layers x %d units = %d fits; " ..
  "best of %d; max relative beta difference scan vs copied activations (layer 0): %.2g.")
  :format(tostring(m), opts.site, w_neg:size(0), w_aff:size(0), source, m.n_layer, units, fits, opts.repeats, diff))
local per_unit_cpu_ms = 1000 * c_one / sample
local rows = {
  { "plugin scan, total (native gather at the target + batched fits)", best.scan, cpu.scan, tokens_scan / r.timing.forward_s },
  { "  of which forward passes with native gather", r.timing.forward_s, "", tokens_scan / r.timing.forward_s },
  { "  of which batched fits (stats.logit per layer)", r.timing.fit_s, "", "" },
  { "course: forward, full windows, hooks copy every layer's activation", best.course_forward, cpu.course_forward,
    tokens_course / best.course_forward },
  { "  the same, passes stopped after the last block (no logits)", best.course_stop, cpu.course_stop,
    tokens_course / best.course_stop },
  { "course: batched fits on the copies (stats.logit per layer)", t_batched, c_batched, "" },
  { ("course: one fit per unit (%.3f ms/unit x %d units, extrapolated)"):format(per_unit_ms, fits),
    per_unit_ms * fits / 1000, per_unit_cpu_ms * fits / 1000, "" },
}
report.table("Negation scan", { columns = { "method", "wall s", "CPU s", "tokens/s (wall)" }, rows = rows })
print(("%s, site %s, %d windows, %d layers x %d units, device %s"):format(tostring(m), opts.site, n, m.n_layer, units, m.device))
for _, row in ipairs(rows) do
  print(("%-70s %9.3f s wall %9s CPU %s"):format(row[1], row[2], row[3] ~= "" and ("%.3f s"):format(row[3]) or "",
    row[4] ~= "" and ("%10.0f tok/s"):format(row[4]) or ""))
end
local course_cpu = cpu.course_forward + per_unit_cpu_ms * fits / 1000
print(("CPU seconds: full scan %.2f vs course-style %.2f (copy-forward + per-unit fits): %.1fx; " ..
  "per-unit fit %.3f ms CPU (statsmodels reference: 1.3 ms); max rel beta diff %.2g")
  :format(cpu.scan, course_cpu, course_cpu / cpu.scan, per_unit_cpu_ms, diff))
if diff > 1e-3 then error("scan and copied-activation betas differ by " .. diff, 0) end
