-- The mi plugin against the Lua DSL on the same activations: every real token of every row, run
-- alone through forward{hidden_states = true} (or run_with_cache), stacked, gives through
-- stats.mi_matrix the plugin's matrices; padding and skipped positions are never samples; the
-- shuffled control keeps each unit's entropy; bad options are errors. On the random GPT-2 with
-- its tokenizer and on the Pythia and Llama fixtures (ids, per-head sites).
-- args: GOLDEN_DIR RANDOM_GPT2_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local mi = plugin("mi")

-- The tokens of every row run alone (spec.tokens_alone) in float64, per hidden state or site.
local function samples(m, rows, skip, sites)
  local out = spec.tokens_alone(m, rows, skip, sites)
  for i, x in ipairs(out) do out[i] = x:double() end
  return out
end

spec.describe("mi.pairwise on the random GPT-2", function()
  local m = model.load(random_gpt2)
  local texts = { "The coffee was strong and thick, and the grounds settled.", "Coffee reached Istanbul early.",
    "A cup of coffee is remembered for forty years, the proverb says." }
  local rows = {}
  for i, t in ipairs(texts) do rows[i] = m:tokenize(t) end

  spec.it("equals stats.mi_matrix of every hidden state's tokens, rows run alone", function()
    local units = { 0, 3, 5, 8, 13, 21 }
    local r = mi.pairwise(m, texts, { units = units, batch_size = 2, skip = 1, bins = 9 })
    local ref = samples(m, rows, 1, nil)
    spec.same(r.mi:shape(), { m.n_layer + 1, 6, 6 })
    spec.eq(r.n_tokens, ref[1]:size(0))
    for l = 0, m.n_layer do
      local x = ref[l + 1]:index(1, tensor.new(units):long())
      local d = (stats.mi_matrix(x, { bins = 9 }) - r.mi[l]):abs():max():item()
      spec.truthy(d < 1e-4, ("hidden state %d: %g"):format(l, d))
    end
    spec.same(r.units:shape(), { 6 })
    spec.eq(r.sites[1], "hidden_states.0")
  end)

  spec.it("equals stats.mi_matrix of run_with_cache's real tokens in the same padded batch to 1e-9", function()
    local site = "blocks.6.hook_resid_post"
    local r = mi.pairwise(m, texts, { sites = site, units = tensor.arange(10) })
    local _, cache = m:run_with_cache(texts, { names = site })
    local lengths = {}
    for i, row in ipairs(rows) do lengths[i] = row:numel() end
    local parts = {}
    for i = 1, #texts do parts[i] = cache[site][i - 1]:narrow(0, 0, lengths[i]):narrow(1, 0, 10) end
    local x = tensor.cat(parts, 0):double()
    spec.truthy((stats.mi_matrix(x) - r.mi[0]):abs():max():item() < 1e-9, "same batch")
  end)

  spec.it("reads sites; the shuffled control keeps the entropies and lowers the MI", function()
    local r = mi.pairwise(m, texts, { sites = "blocks.{L}.mlp.hook_post", layers = { 0, 2 }, shuffle = 3 })
    spec.same(r.sites, { "blocks.0.mlp.hook_post", "blocks.2.mlp.hook_post" })
    local n = r.mi:size(1)
    local diag = tensor.eye(n):eq(1)
    for s = 0, 1 do
      spec.truthy((r.mi[s]:masked_select(diag) - r.mi_shuffled[s]:masked_select(diag)):abs():max():item() < 1e-12)
    end
    local again = mi.pairwise(m, texts, { sites = "blocks.{L}.mlp.hook_post", layers = { 0, 2 }, shuffle = 3 })
    spec.truthy(again.mi_shuffled:equal(r.mi_shuffled), "the seed fixes the control")
  end)

  spec.it("refuses what it cannot do, naming the option", function()
    spec.raises(function() mi.pairwise(m, texts, { units = { 1 } }) end, "option 'units': give at least 2 units")
    spec.raises(function() mi.pairwise(m, texts, { units = { 1, 9999 } }) end,
      "option 'units': 9999 is not a unit of a site")
    spec.raises(function() mi.pairwise(m, texts, { bins = 1 }) end, "option 'bins' must be at least 2")
    spec.raises(function() mi.pairwise(m, texts, { layers = { 1 } }) end,
      "option 'layers' picks the layers of a 'sites' template")
    spec.raises(function() mi.pairwise(m, { "Hi" }, { skip = 1 }) end, "rows: mutual information needs at least 2 tokens")
    spec.raises(function() mi.pairwise(m, texts, { binz = 3 }) end, "unknown option 'binz'")
    spec.raises(function() mi.pairwise(m, texts, { units = { 1, -2 } }) end, "option 'units': -2 is negative")
    spec.raises(function() mi.pairwise(m, texts, { sites = { "blocks.0.hook_resid_post", "blocks.0.mlp.hook_post" } }) end,
      "give 'units' or read them in separate calls")
  end)
end)

for _, name in ipairs({ "pythia-tiny", "llama-tiny" }) do
  spec.describe("mi.pairwise on " .. name, function()
    local m, expected = spec.golden(golden_dir, name)
    spec.it("per-head key units, padded batches", function()
      local ids = expected.input_ids[0]
      local n = ids:numel()
      local rows = { ids, ids:narrow(0, 0, n - 2) }
      local padded = tensor.zeros({ 2, n }):long()
      local mask = tensor.zeros({ 2, n }):long()
      for i, r in ipairs(rows) do
        padded[i - 1]:narrow(0, 0, r:numel()):copy(r)
        mask[i - 1]:narrow(0, 0, r:numel()):fill(1)
      end
      local r = mi.pairwise(m, { ids = padded, mask = mask }, { sites = "blocks.1.attn.hook_k", bins = 5 })
      local ref = samples(m, rows, 0, { "blocks.1.attn.hook_k" })[1]
      local d = (stats.mi_matrix(ref, { bins = 5 }) - r.mi[0]):abs():max():item()
      spec.truthy(d < 1e-4, name .. ": " .. d)
    end)
  end)
end

spec.finish()
