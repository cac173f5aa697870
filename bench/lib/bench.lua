-- The pieces the Lua benchmarks in bench/ share: `--name value` options typed like their
-- defaults, a randomly initialised GPT-2 of a given shape (the cost of a pass does not depend on
-- the weights, so a random model times a large one without its checkpoint), and wall + CPU timing.
--
--   local bench = require("lib.bench")   -- llmscope run puts the script's folder on package.path
--   local opts = bench.options({ repeats = 3, random = "" })          -- -- --repeats 5 --random 2x64
--   local shape = bench.shape(opts.random)                            -- { n_layer = 2, d_model = 64 }
--   local m = model.load(bench.random_gpt2(report.dir() .. "/random", shape))
--   local wall, cpu, out = bench.timed(function() return m:forward(ids) end)
local bench = {}

-- The script's name for error messages ("actmax_bench" for bench/actmax_bench.lua).
local function script_name()
  return (arg and arg[0] or "bench"):match("([^/]+)%.lua$") or "bench"
end

-- `--name value` pairs from `args` (default: the script's `arg`) over `defaults`; a name may use
-- dashes for underscores (--batch-size sets batch_size). A value is a number where the default
-- is one (an integer when it has no fraction), else the string as given.
function bench.options(defaults, args)
  args = args or arg
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  local function known()
    local names = {}
    for k in pairs(defaults) do names[#names + 1] = "--" .. k end
    table.sort(names)
    return table.concat(names, ", ")
  end
  local i = 1
  while i <= #args do
    local key = args[i]:match("^%-%-([%w%-_]+)$")
    if not key or args[i + 1] == nil then
      error(("%s: expected --option value, got '%s'"):format(script_name(), tostring(args[i])), 0)
    end
    key = key:gsub("%-", "_")
    if defaults[key] == nil then
      error(("%s: unknown option --%s (options: %s)"):format(script_name(), key, known()), 0)
    end
    local value = args[i + 1]
    if type(defaults[key]) == "number" then
      local n = tonumber(value)
      if not n then error(("%s: --%s takes a number, got '%s'"):format(script_name(), key, value), 0) end
      value = math.tointeger(n) or n
    end
    opts[key] = value
    i = i + 2
  end
  return opts
end

-- "LxD" or "LxDxV" (layers, d_model, vocabulary) as { n_layer =, d_model =, vocab = } (vocab nil
-- when not given), for bench.random_gpt2.
function bench.shape(text)
  local n_layer, d, v = tostring(text):match("^(%d+)x(%d+)x?(%d*)$")
  if not n_layer then
    error("--random: expected LAYERSxD_MODEL[xVOCAB] such as 12x768, got '" .. tostring(text) .. "'", 0)
  end
  return { n_layer = tonumber(n_layer), d_model = tonumber(d), vocab = tonumber(v) }
end

-- A fresh empty temporary folder (remove it with bench.remove_dir).
function bench.temp_dir()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  return dir
end

function bench.remove_dir(dir)
  os.execute("rm -rf '" .. dir .. "'")
end

-- Writes a randomly initialised GPT-2 (model.safetensors and config.json, no tokenizer) into
-- `dir` (created; nil: a fresh temporary folder) and returns the folder. spec: n_layer, d_model
-- (n_head = d_model / 64), vocab (50257), positions (1024), embed_std (std of the token
-- embeddings, 0.02), seed (0: tensor k of the weights is drawn with seed + k). LayerNorms are
-- identity, biases zero, other weights N(0, 0.02), position embeddings N(0, 0.01).
function bench.random_gpt2(dir, spec)
  local n_layer, d = assert(spec.n_layer, "random_gpt2: n_layer"), assert(spec.d_model, "random_gpt2: d_model")
  local vocab, positions, seed = spec.vocab or 50257, spec.positions or 1024, spec.seed or 0
  if dir then os.execute("mkdir -p '" .. dir .. "'") else dir = bench.temp_dir() end
  local function randn(s, std)
    seed = seed + 1
    return tensor.randn(s, { seed = seed }) * std
  end
  local w = {}
  w["transformer.wte.weight"] = randn({ vocab, d }, spec.embed_std or 0.02)   -- [vocab, d_model]
  w["transformer.wpe.weight"] = randn({ positions, d }, 0.01)                  -- [positions, d_model]
  w["transformer.ln_f.weight"], w["transformer.ln_f.bias"] = tensor.ones({ d }), tensor.zeros({ d })
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

-- `n_tokens` token ids (1-D int64) of Brown fiction when `m` has a tokenizer, else random ids
-- (seeded; a pass costs the same whatever the ids), and which of the two it is.
function bench.fiction_ids(m, n_tokens)
  local text = corpus.brown():text({ category = "fiction" })
  local ok, ids = pcall(m.tokenize, m, text:sub(1, 16 * n_tokens), { add_special_tokens = false })
  if ok then return ids:narrow(0, 0, math.min(n_tokens, ids:numel())), "Brown fiction" end
  ids = (tensor.rand({ n_tokens }, { seed = 1 }) * m.vocab_size):long():clamp(0, m.vocab_size - 1)
  return ids, "random ids"
end

-- Wall-clock seconds. os.clock counts the CPU time of every thread, so the wall clock comes from
-- `date`, whose start-up cost (tens of milliseconds on a busy machine) bench.timed takes off.
function bench.now()
  local p = assert(io.popen("date +%s.%N"))
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

local overhead
-- The cost of one bench.now() reading, the least of five empty measurements (measured once).
function bench.clock_overhead()
  if not overhead then
    overhead = math.huge
    for _ = 1, 5 do
      local t0 = bench.now()
      overhead = math.min(overhead, bench.now() - t0)
    end
  end
  return overhead
end

-- Runs fn once: wall seconds (the clock's overhead taken off), the process's CPU seconds (the
-- steadier number on a shared machine), then fn's results.
function bench.timed(fn)
  local o = bench.clock_overhead()
  local t0 = bench.now()
  local c0 = os.clock()
  local out = table.pack(fn())
  local cpu = os.clock() - c0
  local wall = bench.now() - t0 - o
  return wall, cpu, table.unpack(out, 1, out.n)
end

-- Runs fn `repeats` times: the best wall seconds, the CPU seconds of that round, and the results
-- of the last round.
function bench.best_of(repeats, fn)
  local best, best_cpu, out = math.huge, math.huge, nil
  for _ = 1, repeats do
    local r = table.pack(bench.timed(fn))
    if r[1] < best then best, best_cpu = r[1], r[2] end
    out = r
  end
  return best, best_cpu, table.unpack(out or {}, 3, out and out.n or 2)
end

return bench
