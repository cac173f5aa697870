-- The subspace plugin (lesson 17-04): the removal against the same computation in Lua (SVD,
-- reconstruction, %variance, a Lua hook), k = 0 changing nothing, drift, the t-test, cosine and
-- covariance matrices against the stats module, the batched sweep against its loop, every
-- architecture, and the error messages for bad options.
-- Arguments: the golden folder, the random 12-layer GPT-2 (with the real tokenizer).
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local subspace = plugin("subspace")

local function max_diff(a, b) return (a:double() - b:double()):abs():max():item() end

local m, expected, row = spec.golden(golden_dir, "gpt2-tiny")   -- 3 layers, 256 MLP units, 16 tokens

-- The course's removal written out in Lua: svd, zero the top k, reconstruct, add the row mean.
local function lua_removal(a, k)
  local u, s, vh = a:double():svd()
  local kept = s:clone()
  kept:narrow(0, 0, k):zero_()
  return (u * kept:unsqueeze(0)):matmul(vh) + a:double():mean(-1, true), s
end

spec.describe("subspace.remove", function()
  local out = subspace.remove(m, row, { layer = 1, activations = true })

  spec.it("returns the documented fields and shapes", function()
    spec.eq(out.layer, 1)
    spec.eq(out.k, 1)
    spec.eq(out.cosine_layer, 2)
    spec.same(out.A:shape(), { 16, 256 })
    spec.same(out.proj:shape(), { 16, 256 })
    spec.same(out.singular_values:shape(), { 16 })
    spec.same(out.drift:shape(), { 4 })
    spec.same(out.delta:shape(), { 15 })
    spec.same(out.targets:tolist(), row[0]:narrow(0, 1, 15):tolist())
    spec.same(out.cosine_clean:shape(), { 15, 15 })
    spec.same(out.cosine_removed:shape(), { 15, 15 })
    spec.same(out.cov_clean:shape(), { 16, 16 })
    spec.same(out.spectrum_removed:shape(), { 16 })
    spec.eq(subspace.remove(m, row, {}).layer, 1, "default layer n_layer // 2")
    spec.same(subspace.remove(m, row, { first_token = true }).cosine_clean:shape(), { 16, 16 })
  end)

  spec.it("A is the site's activation and proj the course's reconstruction", function()
    local _, cache = m:run_with_cache(row, { names = "blocks.1.mlp.hook_pre" })
    spec.truthy(max_diff(out.A, cache["blocks.1.mlp.hook_pre"][0]) == 0, "A")
    local proj, s = lua_removal(out.A, 1)
    spec.truthy(max_diff(out.proj, proj) < 1e-5, "proj")
    spec.truthy(max_diff(out.singular_values, s) < 1e-6, "singular values")
  end)

  spec.it("reports %variance = 100 * sum of removed s^2 / sum s^2, as uncentred PCA", function()
    local s2 = out.singular_values:pow(2)
    spec.near(out.variance, 100 * (s2[0] / s2:sum()):item(), 1e-9, "formula")
    local pca = stats.pca(out.A, { center = false })
    spec.near(out.variance, 100 * pca.explained_variance_ratio[0]:item(), 1e-6, "stats.pca")
    local two = subspace.remove(m, row, { layer = 1, k = 2 })
    spec.near(two.variance, 100 * (pca.explained_variance_ratio[0] + pca.explained_variance_ratio[1]):item(), 1e-6, "k = 2")
  end)

  spec.it("equals a Lua hook returning the same reconstruction", function()
    local proj = lua_removal(out.A, 1)
    local clean, c_out = m:forward(row, { hidden_states = true })
    local removed, r_out = m:forward(row, { hidden_states = true,
      hooks = { ["blocks.1.mlp.hook_pre"] = function() return proj:float():unsqueeze(0) end } })
    local next_ids = row[0]:narrow(0, 1, 15):unsqueeze(-1)
    local lp_clean = clean[0]:narrow(0, 0, 15):double():log_softmax(-1):gather(-1, next_ids):squeeze(-1)
    local lp_removed = removed[0]:narrow(0, 0, 15):double():log_softmax(-1):gather(-1, next_ids):squeeze(-1)
    spec.truthy(max_diff(out.logprob_clean, lp_clean) < 1e-6, "clean log-probs")
    spec.truthy(max_diff(out.delta, lp_clean - lp_removed) < 1e-4, "delta")
    for i = 0, m.n_layer do
      local d = (c_out.hidden_states[i] - r_out.hidden_states[i]):double():norm():item()
      spec.near(out.drift[i]:item(), d, 1e-3, "drift at hidden state " .. i)
    end
    local after = r_out.hidden_states[2][0]:narrow(0, 1, 15)
    spec.truthy(max_diff(out.cosine_removed, stats.cosine_matrix(after)) < 1e-4, "cosine matrix, removed")
    local before = c_out.hidden_states[2][0]:narrow(0, 1, 15)
    spec.truthy(max_diff(out.cosine_clean, stats.cosine_matrix(before)) < 1e-6, "cosine matrix, clean")
  end)

  spec.it("drift is exactly zero up to the hooked layer and non-zero after it", function()
    spec.eq(out.drift[0]:item(), 0)
    spec.eq(out.drift[1]:item(), 0)
    spec.truthy(out.drift[2]:item() > 0 and out.drift[3]:item() > 0)
  end)

  spec.it("tests delta against 0 as stats.ttest_1samp", function()
    local t = stats.ttest_1samp(out.delta)
    spec.near(out.t, t.t:item(), 1e-9, "t")
    spec.near(out.p, t.p:item(), 1e-9, "p")
    spec.eq(out.df, 14)
    spec.near(out.mean_delta, out.delta:mean():item(), 1e-12, "mean")
  end)

  spec.it("gives token covariances as torch.cov and their spectra in % (largest first)", function()
    local centred = out.A:double() - out.A:double():mean(1, true)
    local cov = centred:matmul(centred:t()) / (256 - 1)
    spec.truthy(max_diff(out.cov_clean, cov) < 1e-9, "cov")
    spec.near(out.spectrum_clean:sum():item(), 100, 1e-9, "spectrum sums to 100")
    local _, s = cov:svd()   -- a symmetric PSD matrix: singular values are its eigenvalues
    spec.truthy(max_diff(out.spectrum_clean, s * (100 / s:sum():item())) < 1e-6, "spectrum")
    local sorted = out.spectrum_removed:sort(-1, true)
    spec.truthy(sorted:equal(out.spectrum_removed), "descending")
  end)

  spec.it("k = 0 changes nothing (exactly in one pass; to float32 rounding in a batched sweep)", function()
    local zero = subspace.remove(m, row, { layer = 1, k = 0, activations = true })
    spec.eq(zero.variance, 0)
    spec.eq(zero.drift:abs():max():item(), 0, "drift")
    spec.eq(zero.delta:abs():max():item(), 0, "delta")
    spec.truthy(zero.proj:equal(zero.A), "proj = A")
    spec.truthy(zero.cosine_removed:equal(zero.cosine_clean), "cosine")
    local sweep = subspace.sweep(m, row, { k = 0 })
    -- The sweep runs its clean row alone and the interventions batched (spec.F32_*).
    spec.truthy(sweep.delta:abs():max():item() < spec.F32_ATOL, "sweep delta")
    spec.eq(sweep.variance:abs():max():item(), 0, "sweep variance")
  end)

  spec.it("runs on GPT-Neo and BERT (a masked model scores each token in place)", function()
    local neo, _, neo_row = spec.golden(golden_dir, "gpt-neo-tiny")
    local r = subspace.remove(neo, neo_row, {})
    spec.same(r.delta:shape(), { neo_row:size(1) - 1 })
    spec.truthy(r.drift[neo.n_layer]:item() > 0)
    local bert, _, bert_row = spec.golden(golden_dir, "bert-tiny")
    local b = subspace.remove(bert, bert_row, { layer = 0 })
    spec.same(b.delta:shape(), { bert_row:size(1) })
    spec.same(b.targets:tolist(), bert_row[0]:tolist())
    spec.truthy(b.variance > 0 and b.variance < 100)
  end)

  spec.it("runs on GPT-NeoX and Llama (rotary models, no position embeddings)", function()
    for _, name in ipairs({ "pythia-tiny", "llama-tiny" }) do
      local fm, _, frow = spec.golden(golden_dir, name)
      local r = subspace.remove(fm, frow, {})
      spec.same(r.delta:shape(), { frow:size(1) - 1 }, name)
      spec.truthy(r.drift[fm.n_layer]:item() > 0, name)
    end
  end)

  spec.it("rejects bad options with messages naming them", function()
    spec.raises(function() subspace.remove(m, row, { k = -1 }) end, "option 'k' must be at least 0")
    spec.raises(function() subspace.remove(m, row, { k = 17 }) end, "cannot remove 17 directions")
    spec.raises(function() subspace.remove(m, row, { layer = 3 }) end, "option 'layer': 3 is not a layer of this 3-layer model")
    spec.raises(function() subspace.remove(m, row, { cosine_layer = 4 }) end, "option 'cosine_layer': hidden-state index 4 is outside 0 to 3")
    spec.raises(function() subspace.remove(m, row, { site = "blocks.0.mlp.hook_pre" }) end, "option 'site' must contain {L}")
    spec.raises(function() subspace.remove(m, row, { site = "blocks.{L}.nope" }) end, "unknown hook point")
    spec.raises(function() subspace.remove(m, row, { add_mean = 1 }) end, "option 'add_mean': boolean expected")
    spec.raises(function() subspace.remove(m, row, { kk = 1 }) end, "unknown option 'kk'")
    spec.raises(function() subspace.remove(m, expected.input_ids, {}) end, "one text expected")
    spec.raises(function() subspace.remove(m, tensor.new({ 1, 2 }), {}) end, "at least 3 tokens")
  end)
end)

spec.describe("subspace.sweep", function()
  spec.it("one removal per layer in few passes, equal to one pass per layer and to remove()", function()
    local batched = subspace.sweep(m, row, {})
    local loop = subspace.sweep(m, row, { loop = true })
    local small = subspace.sweep(m, row, { batch_size = 2 })
    spec.eq(batched.forwards, 2)
    spec.eq(loop.forwards, 4)
    spec.eq(small.forwards, 3)
    spec.same(batched.delta:shape(), { 3, 15 })
    spec.truthy(max_diff(batched.delta, loop.delta) < 1e-5, "batched = loop")
    spec.truthy(max_diff(small.delta, loop.delta) < 1e-5, "batch_size 2 = loop")
    spec.truthy(max_diff(batched.variance, loop.variance) < spec.F32_RTOL * 100, "variance (a percentage)")
    for layer = 0, 2 do
      local one = subspace.remove(m, row, { layer = layer })
      spec.near(batched.variance[layer]:item(), one.variance, spec.F32_RTOL * 100, "variance at layer " .. layer)
      spec.truthy(max_diff(batched.delta[layer], one.delta) < 1e-5, "delta at layer " .. layer)
      spec.near(batched.t[layer]:item(), one.t, 1e-4, "t at layer " .. layer)
    end
  end)

  spec.it("correlates %variance with impact as stats.pearson", function()
    local out = subspace.sweep(m, row, { layers = { 2, 0, 1 } })
    spec.same(out.layers, { 2, 0, 1 })
    spec.near(out.r_t, stats.pearson(out.t:unsqueeze(1), out.variance)[0]:item(), 1e-12, "r with t")
    spec.near(out.r_delta, stats.pearson(out.mean_delta:unsqueeze(1), out.variance)[0]:item(), 1e-12, "r with mean delta")
    spec.truthy(out.mean_delta:allclose(out.delta:mean(1)))
  end)

  spec.it("runs on the 12-layer GPT-2 with text from its tokenizer", function()
    local rm = model.load(random_gpt2)
    local ids = rm:tokenize("Ada Lovelace wrote the first published program for a machine that was never built.")
    local out = subspace.sweep(rm, ids, { k = 2 })
    spec.same(out.variance:shape(), { 12 })
    spec.truthy(out.variance:gt(0):all() and out.variance:lt(100):all())
  end)

  spec.it("rejects bad options", function()
    spec.raises(function() subspace.sweep(m, row, { layers = { -4 } }) end, "option 'layers': -4 is not a layer")
    spec.raises(function() subspace.sweep(m, row, { layers = {} }) end, "option 'layers' is empty")
    spec.raises(function() subspace.sweep(m, row, { batch_size = 0 }) end, "option 'batch_size' must be at least 1")
    spec.raises(function() subspace.sweep(m, row, { layer = 1 }) end, "unknown option 'layer'")
  end)
end)

spec.finish()
