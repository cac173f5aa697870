-- Benchmark: the actmax plugin's gradient-ascent loop (lesson 12-02: 500 Adam steps on 5 free
-- embeddings) and its repeats (lesson 12-04: 10 starts x 300 steps, batched against one call per
-- start), plus data-sampling throughput (lesson 12-03). Prints Markdown tables (best of --repeats).
-- The reference: Hugging Face + PyTorch eager takes 9.6 s for 500 steps on GPT-2 small on an H100.
--
--   llmscope run bench/actmax_bench.lua -- --random 12x768          # a random GPT-2 small shape
--   llmscope run bench/actmax_bench.lua --model DIR [-- --random ""]  # a given model (and/or random)
--
-- Options: --repeats N (1), --steps N (500), --random LxD[xV] (12x768; "" for none: writes a random
-- GPT-2 with GPT-2's vocabulary, or V, to a temporary folder), --builtin DIR (models/brown-gpt2, timed
-- when it exists), --repeat_steps N (300), --starts N (10), --loop true|false (also time one
-- optimize call per start; true), --samples N (3; 0 skips sampling).
local bench = require("lib.bench")
local opts = bench.options({ repeats = 1, steps = 500, random = "12x768", builtin = "models/brown-gpt2",
  repeat_steps = 300, starts = 10, samples = 3, loop = "true" })

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local models, cleanup = {}, nil
pcall(function() models[#models + 1] = { label = "--model", m = model.load() } end)  -- none without --model
if opts.random ~= "" then
  -- A random GPT-2 of depth x width (GPT-2's vocabulary and context): the cost of a pass does not
  -- depend on the weights, so this times GPT-2 small without its checkpoint.
  local shape = bench.shape(opts.random)
  shape.embed_std = 0.14
  cleanup = bench.random_gpt2(nil, shape)
  models[#models + 1] = { label = "random " .. opts.random, m = model.load(cleanup) }
end
if opts.builtin ~= "" and exists(opts.builtin .. "/config.json") then
  models[#models + 1] = { label = "built-in", m = model.load(opts.builtin) }
end
if #models == 0 then error("actmax_bench: no model (give --model DIR or --random LxD)", 0) end

local actmax = plugin("actmax")
-- Best wall time (the plugin's own `seconds`) and the process CPU time of that round: on a busy
-- shared machine the CPU time is the steadier number (with 1 ATen thread it is the idle wall time).
local function best_of(fn)
  local best, cpu, out = math.huge, math.huge, nil
  for _ = 1, opts.repeats do
    local c0 = os.clock()
    out = fn()
    local c = os.clock() - c0
    if out.seconds < best then best, cpu = out.seconds, c end
  end
  return best, out, cpu
end

print(("# actmax: %d Adam steps on 5 free embeddings (lesson 12-02), best of %d"):format(opts.steps, opts.repeats))
print("| model | site | blocks run | wall s | CPU s | ms / step (wall) | ATen threads | activation start -> end |")
print("|---|---|---|---|---|---|---|---|")
for _, e in ipairs(models) do
  local m = e.m
  local unit = math.min(91, m.d_model - 1)
  local course = math.floor(8 * m.n_layer / 12 + 0.5)
  for _, h in ipairs({ course, m.n_layer }) do
    local s, r, cpu = best_of(function() return actmax.optimize(m, { hidden_state = h, unit = unit, steps = opts.steps }) end)
    print(("| %s (%s) | hidden_states[%d] dim %d | %s | %.2f | %.2f | %.1f | %d | %.3g -> %.3g |"):format(e.label,
      tostring(m), h, unit, r.layers_run >= 0 and tostring(r.layers_run) or ("all " .. m.n_layer), s, cpu,
      1000 * s / opts.steps, r.threads, r.initial_activation, r.final_activation))
  end
end

print()
print(("# actmax.repeat: %d starts x %d steps (lesson 12-04), batched vs one optimize call per start"):format(
  opts.starts, opts.repeat_steps))
print("| model | batched: wall s (CPU s) | one call per start: wall s (CPU s) | speed-up (wall) |")
print("|---|---|---|---|")
for _, e in ipairs(models) do
  local m = e.m
  local target = { hidden_state = math.floor(8 * m.n_layer / 12 + 0.5), unit = math.min(91, m.d_model - 1),
    steps = opts.repeat_steps }
  local o = {}
  for k, v in pairs(target) do o[k] = v end
  o.n = opts.starts
  local batched, _, batched_cpu = best_of(function() return actmax["repeat"](m, o) end)
  if opts.loop == "true" then
    local loop, _, loop_cpu = best_of(function()
      local total = 0
      for s = 1, opts.starts do total = total + actmax.optimize(m, { hidden_state = target.hidden_state, unit = target.unit,
        steps = target.steps, seed = s }).seconds end
      return { seconds = total }
    end)
    print(("| %s (%s) | %.2f (%.2f) | %.2f (%.2f) | %.1fx |"):format(e.label, tostring(m), batched, batched_cpu, loop,
      loop_cpu, loop / batched))
  else
    print(("| %s (%s) | %.2f (%.2f) | not run | |"):format(e.label, tostring(m), batched, batched_cpu))
  end
end

if opts.samples > 0 then
  print()
  print(("# actmax.sample: %d samples of 32 windows x 256 tokens (lesson 12-03: 1000 samples)"):format(opts.samples))
  print("| model | site | wall s (CPU s) | tokens/s (wall) | 1000 samples at this rate |")
  print("|---|---|---|---|---|")
  for _, e in ipairs(models) do
    local m = e.m
    local seq = math.min(256, m.max_positions)
    local stream = (tensor.arange(20000) * 7919 + 13) % m.vocab_size
    local h = math.floor(2 * m.n_layer / 12 + 0.5)
    local s, _, cpu = best_of(function() return actmax.sample(m, stream, { hidden_state = h,
      unit = math.min(345, m.d_model - 1), samples = opts.samples, seq_len = seq }) end)
    print(("| %s (%s) | hidden_states[%d] | %.2f (%.2f) | %.0f | %.0f s |"):format(e.label, tostring(m), h, s, cpu,
      opts.samples * 32 * seq / s, 1000 * s / opts.samples))
  end
end
if cleanup then bench.remove_dir(cleanup) end
