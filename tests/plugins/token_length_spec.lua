-- The token_length plugin on the tiny fixture models: shapes, lengths from the tokenizer, and
-- every streamed statistic against the stats module on activations captured with run_with_cache
-- from the same rows; then error messages for bad options.
-- args: GOLDEN_DIR RANDOM_GPT2_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local tl = plugin("token_length")

-- A fixed token stream for a model without a tokenizer, and made-up lengths 1..7 for it.
local function stream(m, n)
  local ids = (tensor.rand({ n }, { seed = 7 }) * m.vocab_size):long():clamp(0, m.vocab_size - 1)
  return ids, ids % 7 + 1
end

-- The activations of `site` for the first n tokens, cut into rows exactly as scan cuts them
-- (full rows of seq_len, then the tail as one row): [n, neurons].
local function captured(m, ids, n, seq_len, site)
  local parts = {}
  local full = n // seq_len
  if full > 0 then
    local _, cache = m:run_with_cache(ids:narrow(0, 0, full * seq_len):reshape({ full, seq_len }), { names = site })
    parts[#parts + 1] = cache[site]:reshape({ full * seq_len, -1 })
  end
  if n % seq_len > 0 then
    local _, cache = m:run_with_cache(ids:narrow(0, full * seq_len, n % seq_len):reshape({ 1, -1 }), { names = site })
    parts[#parts + 1] = cache[site]:reshape({ n % seq_len, -1 })
  end
  return tensor.cat(parts, 0)
end

-- Every statistic of layer row k of `res` equals the batch stats functions on the captured activations.
local function check_layer(m, ids, res, k, site)
  local n = res.tokens
  local acts = captured(m, ids, n, res.seq_len, site)   -- [n, neurons]
  local y = res.lengths:double()
  local want = stats.pearson(acts, y)
  local diff = (want - res.r[k]):abs():max():item()
  spec.truthy(diff < 1e-4, site .. ": r equals stats.pearson (max |diff| " .. diff .. ")")
  -- The course's z-score formula (ddof = 1) gives the same r.
  local za = (acts:double() - acts:double():mean(0)) / acts:double():std(0)
  local zy = (y - y:mean()) / y:std()
  local zr = (za * zy:unsqueeze(1)):sum(0) / (n - 1)
  spec.truthy((zr - res.r[k]):abs():max():item() < 1e-4, site .. ": r equals the z-score formula")
  -- Histograms per length group, pooled over neurons.
  local labels = tensor.where(y:lt(res.median), 0, tensor.where(y:eq(res.median), 1, 2))
  for g = 0, 2 do
    local rows = labels:eq(g):nonzero():reshape({ -1 })
    local values = acts:index(0, rows):reshape({ -1 })
    spec.truthy(res.counts[k][g]:equal(stats.histogram(values, res.edges)), site .. ": counts of group " .. g)
    spec.eq(res.counts[k][g]:sum():item() + res.outside[k][g]:item(), rows:numel() * res.neurons,
      site .. ": counted + outside = tokens x neurons in group " .. g)
    if rows:numel() > 0 then
      -- The plugin's pass batches rows unlike run_with_cache: float32 rounding differs (spec.F32_*).
      spec.near(res.means[k][g]:item(), values:double():mean():item(), spec.F32_ATOL, site .. ": mean of group " .. g)
      local density = stats.histogram(values, res.edges, { density = true })
      spec.truthy(density:allclose(res.density[k][g], 1e-9, 1e-12), site .. ": density of group " .. g)
    end
  end
  spec.truthy(res.r_counts[k]:equal(stats.histogram(res.r[k], res.r_edges)), site .. ": r histogram")
end

spec.describe("token_length.scan on gpt2-tiny (no tokenizer)", function()
  local m = model.load(golden_dir .. "/gpt2-tiny")
  local ids, lengths = stream(m, 150)   -- 64-token rows: 2 full rows and a tail of 22
  local res = tl.scan(m, ids, { lengths = lengths, batch_rows = 1, edges = tensor.linspace(-3, 3, 25) })
  spec.it("returns the documented shapes", function()
    spec.eq(res.tokens, 150)
    spec.eq(res.seq_len, 64, "seq_len adapts to max_positions")
    spec.same(res.layers, { 0, 1, 2 })
    spec.same(res.sites, { "blocks.0.mlp.hook_pre", "blocks.1.mlp.hook_pre", "blocks.2.mlp.hook_pre" })
    spec.eq(res.neurons, 256)
    spec.same(res.r:shape(), { 3, 256 })
    spec.same(res.counts:shape(), { 3, 3, 24 })
    spec.same(res.density:shape(), { 3, 3, 24 })
    spec.same(res.outside:shape(), { 3, 3 })
    spec.same(res.means:shape(), { 3, 3 })
    spec.same(res.r_counts:shape(), { 3, 80 })
    spec.same(res.r_density:shape(), { 3, 80 })
    spec.same(res.edges:shape(), { 25 })
    spec.same(res.r_edges:shape(), { 81 })
    spec.same(res.groups, { "shorter", "equal", "longer" })
    spec.eq(res.r:dtype(), "float64")
    spec.eq(res.counts:dtype(), "int64")
  end)
  spec.it("groups tokens by the median length", function()
    local y = lengths:double()
    local sorted = y:sort()
    spec.eq(res.median, (sorted[74]:item() + sorted[75]:item()) / 2, "numpy's median of 150 values")
    spec.eq(res.group_counts[0]:item(), y:lt(res.median):sum():item())
    spec.eq(res.group_counts[1]:item(), y:eq(res.median):sum():item())
    spec.eq(res.group_counts[2]:item(), y:gt(res.median):sum():item())
    spec.eq(res.group_counts:sum():item(), 150)
    spec.truthy(res.lengths:equal(lengths), "lengths come back as given")
  end)
  spec.it("equals the stats module on the same activations, every layer", function()
    for k = 0, 2 do check_layer(m, ids, res, k, res.sites[k + 1]) end
  end)
  spec.it("does not depend on how rows are batched", function()
    local other = tl.scan(m, ids, { lengths = lengths, batch_rows = 16, edges = tensor.linspace(-3, 3, 25) })
    spec.truthy(other.r:allclose(res.r, spec.F32_RTOL, spec.F32_ATOL))
    spec.truthy(other.counts:equal(res.counts))
  end)
  spec.it("takes layers in the order given, and other sites", function()
    local two = tl.scan(m, ids, { lengths = lengths, layers = { 2, 0 } })
    spec.same(two.layers, { 2, 0 })
    spec.truthy(two.r[0]:allclose(res.r[2], spec.F32_RTOL, spec.F32_ATOL))
    spec.truthy(two.r[1]:allclose(res.r[0], spec.F32_RTOL, spec.F32_ATOL))
    local resid = tl.scan(m, ids, { lengths = lengths, layers = 1, site = "blocks.{L}.hook_resid_post", tokens = 100 })
    spec.eq(resid.tokens, 100)
    spec.eq(resid.neurons, m.d_model)
    check_layer(m, ids, resid, 0, "blocks.1.hook_resid_post")
  end)
  spec.it("rejects bad options", function()
    local function scan(opts)
      opts.lengths = opts.lengths or lengths
      return tl.scan(m, ids, opts)
    end
    spec.raises(function() scan({ site = "blocks.{L}.mlp.hook_pr" }) end,
      "bad argument #3 to 'scan' (option 'site': unknown hook point 'blocks.0.mlp.hook_pr' (did you mean")
    spec.raises(function() scan({ site = "blocks.0.mlp.hook_pre" }) end, "option 'site' must contain {L}")
    spec.raises(function() scan({ layers = { 0, 3 } }) end,
      "option 'layers': 3 is not a layer of this 3-layer model (0 to 2, or -3 to -1 from the end)")
    spec.raises(function() scan({ layers = -4 }) end, "-4 is not a layer of this 3-layer model")
    spec.raises(function() scan({ layers = { 1, -2 } }) end, "option 'layers': layer 1 is given twice")
    spec.raises(function() scan({ seq_len = 65 }) end, "option 'seq_len' must be 1 to the model's 64 positions")
    spec.raises(function() scan({ batch_rows = 0 }) end, "option 'batch_rows' must be at least 1")
    spec.raises(function() scan({ tokens = 1 }) end, "option 'tokens' must be at least 2")
    spec.raises(function() scan({ edges = { 1, 0 } }) end, "option 'edges' must be strictly increasing")
    spec.raises(function() scan({ r_edges = { 0 } }) end, "option 'r_edges' needs at least 2 edges")
    spec.raises(function() scan({ lengths = tensor.ones({ 10 }) }) end,
      "option 'lengths' has 10 values but 150 tokens are scanned")
    spec.raises(function() scan({ colour = 1 }) end, "unknown option 'colour'")
    spec.raises(function() tl.scan(m, ids, {}) end,
      "bad argument #3 to 'scan' (the model at '" .. golden_dir .. "/gpt2-tiny' has no tokenizer to measure " ..
      "token lengths; pass option 'lengths')")
    spec.raises(function() tl.scan(m, ids:float(), { lengths = lengths }) end,
      "bad argument #2 to 'scan' (token ids must be an integer tensor)")
    spec.raises(function() tl.lengths(m, ids) end, "has no tokenizer")
  end)
end)

spec.describe("token_length.scan on other architectures", function()
  for _, name in ipairs({ "gpt-neo-tiny", "pythia-tiny", "llama-tiny", "bert-tiny" }) do
    spec.it(name .. ": r and histograms equal the stats module", function()
      local m = model.load(golden_dir .. "/" .. name)
      local ids, lengths = stream(m, 90)
      local res = tl.scan(m, ids, { lengths = lengths, edges = tensor.linspace(-4, 4, 33) })
      spec.eq(#res.layers, m.n_layer)
      for k = 0, m.n_layer - 1 do check_layer(m, ids, res, k, res.sites[k + 1]) end
    end)
  end
end)

spec.describe("token_length with a tokenizer (random 12-layer GPT-2)", function()
  local m = model.load(random_gpt2)
  local text = "The quick brown fox jumps over the lazy dog. Extraordinarily, it was not tired! " ..
    "Naïve café owners said: “déjà vu” — 42 times."
  local ids = m:tokenize(text)
  spec.it("measures each token's decoded text in characters, leading space included", function()
    local res = tl.lengths(m, ids)
    spec.eq(res.tokens, ids:numel())
    for i = 0, ids:numel() - 1 do
      local piece = m:decode({ ids[i]:item() })
      spec.eq(res.lengths[i]:item(), utf8.len(piece), "length of token " .. i .. " '" .. piece .. "'")
    end
    spec.eq(res.lengths[1]:item(), 6, "' quick'")
    spec.eq(res.group_counts:sum():item(), ids:numel())
  end)
  spec.it("scans with lengths from the tokenizer", function()
    local res = tl.scan(m, ids, { layers = { 0, 11 }, tokens = 20 })
    spec.eq(res.tokens, 20)
    spec.truthy(res.lengths:equal(tl.lengths(m, ids, { tokens = 20 }).lengths))
    check_layer(m, ids, res, 1, "blocks.11.mlp.hook_pre")
  end)
end)

spec.finish()
