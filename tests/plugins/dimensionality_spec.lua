-- The dimensionality plugin against the Lua DSL on the same activations: each hidden state's
-- tokens from forward{hidden_states = true} (or a site from run_with_cache), stacked, centred and
-- put through an SVD, give the plugin's spectrum; component counts follow from the cumulative
-- shares; padding, batching and skipped positions change nothing; bad options are errors. On the
-- random GPT-2 with its tokenizer and on the Pythia and Llama fixtures (ids, per-head sites).
-- args: GOLDEN_DIR RANDOM_GPT2_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local dimensionality = plugin("dimensionality")

-- The PCA spectrum of x [n, d] as shares of the variance, by SVD of the centred matrix.
local function svd_shares(x)
  local centred = x:double() - x:double():mean(0)
  local _, s = centred:svd()
  local v = s * s
  return v / v:sum()
end

local reference_tokens = spec.tokens_alone

-- Rows of different lengths as {ids =, mask =}, right-padded with `pad`.
local function padded(rows, pad)
  local width = 0
  for _, r in ipairs(rows) do width = math.max(width, r:numel()) end
  local ids, mask = tensor.full({ #rows, width }, pad), tensor.full({ #rows, width }, 0)
  for i, r in ipairs(rows) do
    ids[i - 1]:narrow(0, 0, r:numel()):copy(r)
    mask[i - 1]:narrow(0, 0, r:numel()):fill(1)
  end
  return { ids = ids, mask = mask }
end

local function expect_spectra(out, refs, tolerance, what)
  spec.eq(out.explained:size(0), #refs, what .. ": sites")
  for i, x in ipairs(refs) do
    local shares = svd_shares(x)
    local k = math.min(x:size(0) - 1, x:size(1))
    local diff = (out.explained[i - 1]:narrow(0, 0, k) - shares:narrow(0, 0, k)):abs():max():item()
    spec.truthy(diff < tolerance, ("%s: site %d differs from the SVD by %g"):format(what, i - 1, diff))
    local rest = out.explained[i - 1]:narrow(0, k, out.units - k):sum():item()
    spec.truthy(rest < 1e-9, ("%s: site %d has %g beyond rank %d"):format(what, i - 1, rest, k))
  end
end

spec.describe("dimensionality.spectrum on the random GPT-2", function()
  local m = model.load(random_gpt2)
  local texts = {
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sold sea shells by the sea shore, and the shells she sold were surely sea shells.",
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
  }
  local rows = {}
  for i, t in ipairs(texts) do rows[i] = m:tokenize(t) end
  local refs = reference_tokens(m, rows, 0)
  local alone = dimensionality.spectrum(m, texts, { batch_size = 1 })

  spec.it("equals the SVD of every hidden state's stacked tokens (rows run alone)", function()
    spec.eq(#alone.sites, m.n_layer + 1)
    spec.eq(alone.sites[1], "hidden_states.0")
    spec.eq(alone.units, m.d_model)
    local n = 0
    for _, r in ipairs(rows) do n = n + r:numel() end
    spec.eq(alone.n_tokens, n)
    spec.eq(alone.max_components, math.min(n - 1, m.d_model))
    expect_spectra(alone, refs, 1e-6, "hidden states")
  end)

  spec.it("n_components and cumulative follow from the shares", function()
    spec.same(alone.thresholds, { 0.95, 0.99 })
    local cum = alone.explained:cumsum(1)
    spec.truthy((cum - alone.cumulative):abs():max():item() < 1e-12, "cumulative")
    for l = 0, m.n_layer do
      for j, t in ipairs(alone.thresholds) do
        local need = 1
        while cum[l][need - 1]:item() < t - 1e-12 do need = need + 1 end
        spec.eq(alone.n_components[l][j - 1]:item(), need, ("layer %d, %g"):format(l, t))
      end
    end
    local half = dimensionality.spectrum(m, texts, { thresholds = { 0.5 }, batch_size = 1 })
    spec.same(half.n_components:shape(), { m.n_layer + 1, 1 })
    spec.truthy((half.n_components:select(1, 0) - alone.n_components:select(1, 0)):le(0):all(),
      "fewer components reach 50% than 95%")
  end)

  spec.it("padding and batching change nothing but float32 rounding", function()
    local batched = dimensionality.spectrum(m, texts, { batch_size = 8 })
    spec.eq(batched.n_tokens, alone.n_tokens)
    spec.truthy((batched.explained - alone.explained):abs():max():item() < 1e-5)
    local same = dimensionality.spectrum(m, padded(rows, 50256), { batch_size = 2 })
    spec.truthy((same.explained - alone.explained):abs():max():item() < 1e-5)
  end)

  spec.it("skip leaves out each row's first positions", function()
    local skipped = dimensionality.spectrum(m, texts, { skip = 1, batch_size = 1 })
    spec.eq(skipped.n_tokens, alone.n_tokens - #texts)
    expect_spectra(skipped, reference_tokens(m, rows, 1), 1e-6, "skip 1")
  end)

  spec.it("reads hook sites instead, {L} templates over the chosen layers", function()
    local sites = { "blocks.2.mlp.hook_post", "blocks.5.mlp.hook_post" }
    local out = dimensionality.spectrum(m, texts, { sites = "blocks.{L}.mlp.hook_post", layers = { 2, 5 }, batch_size = 1 })
    spec.same(out.sites, sites)
    spec.eq(out.units, 4 * m.d_model)
    expect_spectra(out, reference_tokens(m, rows, 0, sites), 1e-6, "mlp sites")
  end)

  spec.it("refuses what it cannot do, naming the option", function()
    spec.raises(function() dimensionality.spectrum(m, texts, { thresholds = { 1.5 } }) end,
      "option 'thresholds': each must be in (0, 1], got 1.5")
    spec.raises(function() dimensionality.spectrum(m, texts, { layers = { 1 } }) end,
      "option 'layers' picks the layers of a 'sites' template")
    spec.raises(function() dimensionality.spectrum(m, texts, { sites = "blocks.{L}.mlp.hook_psot" }) end,
      "option 'sites'")
    spec.raises(function() dimensionality.spectrum(m, { "Hi" }, { skip = 1 }) end,
      "row 0 has 1 tokens, none left after skipping 1")
    spec.raises(function() dimensionality.spectrum(m, texts, { batch = 2 }) end,
      "unknown option 'batch' (expected sites, layers, thresholds, batch_size, skip)")
    spec.raises(function() dimensionality.spectrum(m, texts, { sites = { "blocks.0.hook_resid_post", "blocks.0.mlp.hook_post" } }) end,
      "same number of units")
  end)
end)

for _, name in ipairs({ "pythia-tiny", "llama-tiny" }) do
  spec.describe("dimensionality.spectrum on " .. name, function()
    local m, expected = spec.golden(golden_dir, name)
    local ids = expected.input_ids
    local rows = {}
    for r = 0, ids:size(0) - 1 do rows[#rows + 1] = ids[r] end
    spec.it("hidden states and per-head sites equal the SVD of the same activations", function()
      expect_spectra(dimensionality.spectrum(m, ids, { batch_size = 1 }), reference_tokens(m, rows, 0),
        1e-6, name .. " hidden states")
      local sites = { "blocks.0.attn.hook_k", "blocks.1.attn.hook_k" }
      local out = dimensionality.spectrum(m, ids, { sites = "blocks.{L}.attn.hook_k", batch_size = 1 })
      spec.same(out.sites, sites)
      expect_spectra(out, reference_tokens(m, rows, 0, sites), 1e-6, name .. " keys (GQA-sized on Llama)")
    end)
  end)
end

spec.finish()
