-- lesson: 17-04 Explorations in subspace removal
-- Remove the top singular direction of a layer's MLP pre-activations over a paragraph and follow
-- the damage: covariance structure, hidden-state drift, token similarity, next-token log-probs.
local lesson = require("lib.lesson")

-- The course's text, verbatim from its notebook: the Wikipedia lead of Maurice Ravel (CC BY-SA);
-- --text FILE replaces it.
local PARAGRAPH = "Joseph Maurice Ravel (7 March 1875 – 28 December 1937) was a French composer, pianist and " ..
  "conductor. He is often associated with Impressionism along with his elder contemporary Claude Debussy, although " ..
  "both composers rejected the term. In the 1920s and 1930s Ravel was internationally regarded as France's " ..
  "greatest living composer."

local L = lesson.start {
  id = "17-04",
  title = "Explorations in subspace removal",
  course = "part6_mlp_removeSubspace (video 268), GPT-2 XL (48 layers, 6400 MLP units), the Wikipedia lead of Maurice Ravel",
  options = {
    k = 1,                 -- singular directions removed
    demo_layer = -1,       -- -1: the course's demo layer 9 of 48 at the same relative depth
    layer = -1,            -- single-layer intervention; -1: n_layer // 2, as the course
    all_layers = true,     -- the removal at every layer in turn
  },
  summary = "A = the layer's MLP pre-activations over the paragraph (`blocks.L.mlp.hook_pre`, [tokens, units]). " ..
    "As the course: U, s, Vh = svd(A) without centring, the top k singular values set to 0, proj = U diag(s) Vh, " ..
    "and each token's mean over the units added back (`proj += A.mean(-1, keepdim)`). The forward pass goes on " ..
    "with proj (the `subspace` plugin's hook). Δ = clean − removed log-probability of the actual next token.",
}
local m = L.model
local subspace = plugin("subspace")
local fmt = lesson.fmt
local n_layer = m.n_layer
local k = L.opts.k

local text, source = PARAGRAPH, "the course's paragraph, the Wikipedia lead of Maurice Ravel"
if L.opts.text then
  local f = assert(io.open(L.opts.text, "r"))
  text, source = f:read("a"), "the file " .. L.opts.text
  f:close()
end
local ids = m:tokenize(text)
if ids:numel() > m.max_positions then ids = ids:narrow(0, 0, m.max_positions) end
local tokens = m:tokens(ids)
local n_tokens = ids:numel()
local scored_what = m.is_causal and "next token" or "token in place (a masked model: no next-token prediction)"

local demo = L.opts.demo_layer >= 0 and math.min(L.opts.demo_layer, n_layer - 1) or L:layer(9, 48)
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, n_layer - 1) or n_layer // 2

-- 1. Demo at one layer ---------------------------------------------------------------------------
local d = subspace.remove(m, ids, { layer = demo, k = k, activations = true })
local a, proj = d.A:float(), d.proj:float()
local units = a:size(-1)
report.text(("## 1. What the removal does to one layer\n\nText: %s, %d tokens. Layer %d (the course's 9 of 48), " ..
  "A is [%d, %d]. The top %d component(s) hold %.1f%% of the sum of squared singular values.")
  :format(source, n_tokens, demo, n_tokens, units, k, d.variance))
local flat_a, flat_p = a:flatten(), proj:flatten()
local shown = nil
if flat_a:numel() > 40000 then
  local _, idx = tensor.rand({ flat_a:numel() }, { seed = 0 }):topk(40000)
  shown = idx
end
local r_ap = stats.pearson(flat_a:unsqueeze(1), flat_p)[0]:item()
report.figure(figure.scatter {
  x = shown and flat_a:index(0, shown) or flat_a, y = shown and flat_p:index(0, shown) or flat_p, size = 1, alpha = 0.4,
  title = ("Layer %d: original vs top-%d-removed activations (r = %.3f)"):format(demo, k, r_ap),
  xlabel = "A (original)", ylabel = "proj (removed, mean restored)",
}, { name = "demo_scatter", caption = ("Each point is one token × unit. r = %.3f between the original and the removed " ..
  "values; the median |change| is %s against a median |activation| of %s."):format(r_ap,
  fmt((flat_p - flat_a):abs():median():item()), fmt(flat_a:abs():median():item())) })
report.figure(figure.histogram {
  series = { { values = a, label = "original" }, { values = proj, label = "removed" } }, bins = 60,
  title = "Activation values before and after the removal", xlabel = "activation", ylabel = "count",
}, { name = "demo_values", caption = ("Means %s and %s, standard deviations %s and %s (original, removed).")
  :format(fmt(a:mean():item()), fmt(proj:mean():item()), fmt(a:std():item()), fmt(proj:std():item())) })
local comps = tensor.arange(d.spectrum_clean:numel())
report.figure(figure.line {
  series = { { x = comps, y = d.spectrum_clean, label = "original" }, { x = comps, y = d.spectrum_removed, label = "removed" } },
  markers = true, title = "Eigenspectra of the token x token covariance (torch.cov(A))",
  xlabel = "component", ylabel = "% variance",
}, { name = "demo_spectra", caption = ("torch.cov treats tokens as variables, so these are token × token " ..
  "covariances. The first component holds %s%% of the variance before the removal and %s%% after it.")
  :format(fmt(d.spectrum_clean[0]:item()), fmt(d.spectrum_removed[0]:item())) })
local lo = math.min(d.cov_clean:min():item(), d.cov_removed:min():item())
local hi = math.max(d.cov_clean:max():item(), d.cov_removed:max():item())
for _, which in ipairs({ { "clean", d.cov_clean, "original" }, { "removed", d.cov_removed, "removed" } }) do
  report.figure(figure.heatmap {
    values = which[2], vmin = lo, vmax = hi, colorbar_label = "covariance",
    title = ("Token covariance, %s (layer %d)"):format(which[3], demo), xlabel = "token", ylabel = "token",
  }, { name = "demo_cov_" .. which[1], caption = "The course shows these images with limits -0.2 to 0.6; here " ..
    "both share the data's range." })
end
report.figure(figure.histogram {
  series = { { values = d.cov_clean, label = "original" }, { values = d.cov_removed, label = "removed" } }, bins = 50,
  title = "Covariance values", xlabel = "covariance", ylabel = "count",
}, { name = "demo_cov_hist", caption = ("Mean |covariance| %s before and %s after the removal.")
  :format(fmt(d.cov_clean:abs():mean():item()), fmt(d.cov_removed:abs():mean():item())) })

-- 2. One intervention at the middle layer ----------------------------------------------------------
local s = subspace.remove(m, ids, { layer = layer, k = k })
report.text(("## 2. Removing the top %d direction(s) at layer %d\n\n%.1f%% of the variance removed. The pass " ..
  "continues with the altered activations; below, how far every hidden state moves (drift), how token " ..
  "similarity changes at hidden state %d (the output of block %d), and how the log-probability of each " ..
  "%s changes.")
  :format(k, layer, s.variance, s.cosine_layer, s.cosine_layer - 1, scored_what))
-- What the drift does after the hooked layer, read from the drift itself.
local function drift_shape(drift)
  local first, last = drift[layer + 1]:item(), drift[drift:numel() - 1]:item()
  if layer + 1 >= drift:numel() - 1 then return "has no later hidden state to change in", first, last end
  if last > first * 1.05 then return "grows after it", first, last end
  if last < first * 0.95 then return "falls after it", first, last end
  return "stays about level after it", first, last
end
local shape, drift_first, drift_last = drift_shape(s.drift)
local drift_caption = ("hidden_states[i] is the input of block i (the last entry after the final LayerNorm). The " ..
  "distance is 0 up to index %d, is %s at index %d and %s (%s at the last index)."):format(layer, fmt(drift_first),
  layer + 1, shape, fmt(drift_last))
report.figure(figure.line {
  series = { { x = tensor.arange(n_layer + 1), y = s.drift, label = "||clean - removed||" } }, markers = true,
  title = ("Hidden-state distance, removal at layer %d"):format(layer), xlabel = "hidden state index",
  ylabel = "Frobenius distance",
}, { name = "drift", caption = drift_caption })
local clo = math.min(s.cosine_clean:min():item(), s.cosine_removed:min():item())
for _, which in ipairs({ { "clean", s.cosine_clean }, { "removed", s.cosine_removed } }) do
  report.figure(figure.heatmap {
    values = which[2], vmin = clo, vmax = 1, colorbar_label = "cosine similarity",
    title = ("Token cosine similarity at hidden state %d, %s (first token left out)"):format(s.cosine_layer, which[1]),
    xlabel = "token", ylabel = "token",
  }, { name = "cosine_" .. which[1], caption = "The course shows tokens 1: with limits 0.3 to 0.8." })
end
local function off_diagonal(c)
  local n = c:size(0)
  return c:masked_select(tensor.eye(n):eq(0))
end
report.figure(figure.histogram {
  series = { { values = off_diagonal(s.cosine_clean), label = "clean" }, { values = off_diagonal(s.cosine_removed), label = "removed" } },
  bins = 50, title = "Token cosine similarities (off the diagonal)", xlabel = "cosine similarity", ylabel = "count",
}, { name = "cosine_hist", caption = "How the similarity between different tokens shifts after the removal." })
local scored_tokens = {}
for i = 0, s.targets:numel() - 1 do scored_tokens[#scored_tokens + 1] = m:decode({ s.targets[i]:item() }) end
report.figure(figure.bar {
  categories = scored_tokens, series = { { values = s.delta, label = "Δ log-prob" } },
  title = ("Per-token Δ (clean − removed), t(%d) = %.2f, p = %.3g"):format(s.df, s.t, s.p),
  xlabel = "scored token", ylabel = "Δ log-prob",
}, { name = "delta_tokens", caption = "One bar per " .. scored_what .. "; positive: the removal made it less likely." })
local heat_values = m.is_causal and tensor.cat({ tensor.zeros({ 1 }, { dtype = "float64" }), s.delta }) or s.delta
report.html(figure.token_heatmap(tokens, heat_values, { title = "Δ log-prob of each token (red: less likely after the removal)" }))
report.text(("One-sample t-test of the %d per-token Δ against 0: t = %s, p = %s, mean Δ = %s.")
  :format(s.delta:numel(), fmt(s.t), fmt(s.p), fmt(s.mean_delta)))
report.tensor("single_layer_delta", s.delta, { caption = "per-token clean - removed log-prob" })
report.tensor("drift", s.drift, { caption = "[n_layer + 1] ||clean - removed|| per hidden state" })

-- 3. Every layer ------------------------------------------------------------------------------------
local sw
if L.opts.all_layers then
  sw = subspace.sweep(m, ids, { k = k })
  local layers = tensor.new(sw.layers)
  report.text(("## 3. The removal at every layer in turn\n\n%d layers in %d batched forward passes (%.2f s). " ..
    "Pearson r between %%variance and t: %s; between %%variance and mean Δ: %s.")
    :format(#sw.layers, sw.forwards - 1, sw.seconds, fmt(sw.r_t), fmt(sw.r_delta)))
  report.figure(figure.line {
    series = { { x = layers, y = sw.t, label = "t" } }, markers = true,
    title = "t statistic of Δ against 0, per layer", xlabel = "layer", ylabel = "t",
  }, { name = "t_by_layer", caption = "Positive t: removing the top direction lowers the log-probability of the actual tokens." })
  report.figure(figure.line {
    series = { { x = layers, y = sw.variance, label = "% variance" } }, markers = true,
    title = ("%% of variance in the top %d component(s), per layer"):format(k), xlabel = "layer", ylabel = "% variance",
  }, { name = "variance_by_layer", caption = "100 · Σ s_k² / Σ s² of the uncentred activation matrix." })
  report.figure(figure.scatter {
    x = sw.variance, y = sw.t, color = layers, colorbar_label = "layer", size = 2, alpha = 0.9,
    title = ("t vs %% variance over layers: r = %.2f"):format(sw.r_t), xlabel = "% variance removed", ylabel = "t",
  }, { name = "t_vs_variance", caption = "Does removing more variance do more harm? One point per layer." })
  report.table("Per layer", { columns = { "layer", "% variance", "t", "p", "mean delta" },
    data = { layer = sw.layers, ["% variance"] = sw.variance, t = sw.t, p = sw.p, ["mean delta"] = sw.mean_delta } })
end

-- 4. Findings and checks -------------------------------------------------------------------------------
local value_change = (a - proj):abs():mean():item() / a:std():item()
local cov_change = (d.cov_removed - d.cov_clean):norm():item() / d.cov_clean:norm():item()
L:finding("individual values vs covariance structure", "values change little, covariance strongly altered",
  ("mean |A − proj| = %s SD of A, r(A, proj) = %s; ||Δcov|| / ||cov|| = %s; top eigenvalue %s%% → %s%%")
    :format(fmt(value_change), fmt(r_ap), fmt(cov_change), fmt(d.spectrum_clean[0]:item()), fmt(d.spectrum_removed[0]:item())))
local later = s.drift:narrow(0, layer + 1, n_layer - layer)
local ups, steps = 0, 0
for i = layer + 1, n_layer - 2 do   -- block outputs only; the last entry is after ln_f
  steps = steps + 1
  if s.drift[i + 1]:item() > s.drift[i]:item() then ups = ups + 1 end
end
local drift_text = ("0 up to index %d; %s at index %d"):format(layer, fmt(s.drift[layer + 1]:item()), layer + 1)
if steps > 0 then
  drift_text = drift_text .. (", %s at index %d; rising in %d of %d steps between blocks")
    :format(fmt(s.drift[n_layer - 1]:item()), n_layer - 1, ups, steps)
else
  drift_text = drift_text .. " (no later block before ln_f to compare; `--layer` lower to see growth)"
end
L:finding("hidden-state distance after the hooked layer", "0 before the hooked layer, grows with depth", drift_text)
L:finding(("single-layer removal at layer %d"):format(layer), "lowers the correct token's log-prob",
  ("mean Δ = %s, t = %s, p = %s"):format(fmt(s.mean_delta), fmt(s.t), fmt(s.p)))
if sw then
  local lowered = sw.mean_delta:gt(0):sum():item()
  L:finding("layers where the removal lowers the correct-token log-prob", "most layers",
    ("%d of %d (mean Δ > 0)"):format(lowered, #sw.layers))
  L:finding("correlation of %variance with impact (t)", "weak", ("r = %s (with mean Δ: %s)"):format(fmt(sw.r_t), fmt(sw.r_delta)))
  local third = math.max(1, n_layer // 3)
  local early = sw.variance:narrow(0, 0, third)
  local best, at = early:max(0)
  L:finding(("largest %%variance of the top component in the first third (layers 0..%d)"):format(third - 1),
    "up to ~37% in early layers", ("%s%% at layer %d (all layers: %s%% to %s%%)")
      :format(fmt(best:item()), at:item(), fmt(sw.variance:min():item()), fmt(sw.variance:max():item())))
end
L:finding("largest variance = most important?", "not guaranteed; the same machinery works for ICA or SAE directions",
  sw and ("r(%%variance, t) = %s"):format(fmt(sw.r_t)) or "not run (--all-layers false)")

L:check(("drift is exactly 0 up to hidden state %d"):format(layer), s.drift:narrow(0, 0, layer + 1):abs():max():item() == 0,
  "max " .. fmt(s.drift:narrow(0, 0, layer + 1):abs():max():item()))
L:check("drift after the hooked layer is non-zero", later:gt(0):all(), "min " .. fmt(later:min():item()))
local pca = stats.pca(d.A, { center = false })
local pca_var = 100 * pca.explained_variance_ratio:narrow(0, 0, k):sum():item()
L:check("%variance = 100 Σ s_k² / Σ s² (stats.pca without centring)", math.abs(pca_var - d.variance) < 1e-6,
  fmt(d.variance, 6) .. " vs " .. fmt(pca_var, 6))
L:check("covariance spectrum is in % (sums to 100)", math.abs(d.spectrum_clean:sum():item() - 100) < 1e-6,
  fmt(d.spectrum_clean:sum():item(), 8))
local zero = subspace.remove(m, ids, { layer = layer, k = 0 })
L:check("k = 0 changes nothing", zero.drift:abs():max():item() == 0 and zero.delta:abs():max():item() == 0,
  "max drift " .. fmt(zero.drift:abs():max():item()))
if sw then
  local i = nil
  for j, l in ipairs(sw.layers) do if l == layer then i = j - 1 end end
  local diff = (sw.delta[i] - s.delta):abs():max():item()
  L:check("the sweep's layer-" .. layer .. " row equals the single-layer run", diff < 1e-4, "max |difference| " .. fmt(diff))
end
-- The drift caption's trend against the saved hidden-state distances.
local saved_drift = tensor.load(report.dir() .. "/data/drift.safetensors")["drift"]
L:check("the drift caption says what the saved distances do", drift_caption:find(drift_shape(saved_drift), 1, true) ~= nil,
  drift_shape(saved_drift))
L:finish()
