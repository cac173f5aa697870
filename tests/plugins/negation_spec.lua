-- The negation plugin: the course's labelling rules on hand-made token strings, windows, the
-- batched logistic scan against stats.logit on activations captured with run_with_cache, the
-- Q/K/V split order, other architectures, and errors for bad arguments.
-- args: <golden dir> <random GPT-2 dir>
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_dir = arg[1], arg[2]
local neg = plugin("negation")
local m = model.load(random_dir) -- 12 random layers, d_model 32, the real GPT-2 tokenizer
local none = { context_pre = 0, context_post = 0 }

-- A text with many negations and affirmations in varied contexts (seeded, so repeatable).
local function text(sentences, seed)
  local subjects = { "I", "You", "The man", "Our neighbours", "She", "The old dog", "They", "My brother",
    "The committee", "We", "His wife", "The engine" }
  local verbs = { "know the answer", "go to the market", "see the ship", "agree with him", "eat fish",
    "find the key", "open the door", "hear the music", "trust the doctor", "sleep at night" }
  local heads = { " do not", " did not", " can", " could", " never", " don't", " won't", " should",
    " may", " might", " cannot", " always", " certainly", " can't", " shall", " nor" }
  local rng, out = seed, {}
  local function pick(list)
    rng = (rng * 1103515245 + 12345) % 2147483648
    return list[rng % #list + 1]
  end
  for _ = 1, sentences do
    out[#out + 1] = pick(subjects) .. pick(heads) .. " " .. pick(verbs) .. "."
  end
  return table.concat(out, " ")
end

local function positions(t) return t:tolist() end
local function lnot(t) return t:eq(false) end
local function land(a, b) return (a:long() + b:long()):eq(2) end

spec.describe("classify (the rule on token strings)", function()
  spec.it("labels negations followed by a space-led token", function()
    local r = neg.classify({ "I", " do", " not", " know", ".", " I", " never", " slept" }, none)
    spec.same(positions(r.negations), { 2, 6 })
    spec.same(positions(r.affirmations), {})
    spec.eq(r.n_tokens, 8)
  end)
  spec.it("excludes a negation whose next token does not start with a space", function()
    -- "not" + "ed" (noted), "nor" + "mous" (enormous), a negation before punctuation
    local r = neg.classify({ " not", "ed", " nor", "mous", " never", ".", " not", "\n", " not", " here" }, none)
    spec.same(positions(r.negations), { 8 })
  end)
  spec.it("counts any token containing 't or n't, and cannot, stripped and lowercased", function()
    local r = neg.classify({ " don't", " go", " Won't", " stop", "CANNOT", " be", " isn", "'t", " it", " NOR", " I" }, none)
    spec.same(positions(r.negations), { 0, 2, 4, 7, 9 })
    spec.eq(r.negation_tokens[2].token, "cannot") -- counts all 1: alphabetical, "'t" first
    spec.eq(#r.negation_tokens, 5)
  end)
  spec.it("excludes an affirmation followed by ' not' or by a token without a space", function()
    local r = neg.classify({ " can", " not", " go", " could", " go", " may", "be", " Should", " I", " always", "." }, none)
    spec.same(positions(r.affirmations), { 3, 7 })
    spec.same(positions(r.negations), { 1 }) -- " not" after "can" is itself a negation
  end)
  spec.it("keeps to [context_pre, n - context_post) and needs a next token", function()
    local toks = { " not", " a", " not", " b", " can", " c", " not" } -- the last has no next token
    spec.same(positions(neg.classify(toks, none).negations), { 0, 2 })
    spec.same(positions(neg.classify(toks, { context_pre = 1, context_post = 0 }).negations), { 2 })
    spec.same(positions(neg.classify(toks, { context_pre = 0, context_post = 5 }).negations), { 0 })
    spec.same(positions(neg.classify(toks, { context_pre = 0, context_post = 3 }).affirmations), {})
    spec.same(positions(neg.classify(toks, { context_pre = 0, context_post = 2 }).affirmations), { 4 })
    spec.same(positions(neg.classify(toks, {}).negations), {}) -- defaults 90/10: too short
    spec.same(positions(neg.classify({}, none).negations), {})
  end)
  spec.it("takes the word lists as options", function()
    local r = neg.classify({ " no", " way", " will", " do", " not", " x" },
      { context_pre = 0, context_post = 0, negations = { "no" }, contains = { "zz" }, affirmations = { "will" } })
    spec.same(positions(r.negations), { 0 })
    spec.same(positions(r.affirmations), { 2 })
  end)
  spec.it("gives the same labels through label() with a list", function()
    local toks = { " not", " a", " can", " b" }
    spec.same(positions(neg.label(toks, nil, none).affirmations), { 2 })
  end)
end)

spec.describe("label and windows on a tokenized text", function()
  local ids = m:tokenize(text(200, 7))
  local strings = m:tokens(ids)
  local l = neg.label(m, ids)
  spec.it("agrees with classify on the decoded tokens", function()
    local c = neg.classify(strings, {})
    spec.same(positions(l.negations), positions(c.negations))
    spec.same(positions(l.affirmations), positions(c.affirmations))
    spec.truthy(l.negations:numel() > 20 and l.affirmations:numel() > 20, "enough of both")
    spec.truthy(l.negations:min():item() >= 90 and l.negations:max():item() < ids:numel() - 10, "context range")
  end)
  spec.it("cuts 90 + 1 + 10 windows with the target at index 90", function()
    local w = neg.windows(ids, l.negations)
    spec.same(w:shape(), { l.negations:numel(), 101 })
    for i, p in ipairs(positions(l.negations)) do
      spec.eq(w[i - 1][90]:item(), ids[p]:item(), "target of window " .. (i - 1))
      spec.eq(w[i - 1][0]:item(), ids[p - 90]:item())
      spec.eq(w[i - 1][100]:item(), ids[p + 10]:item())
    end
    spec.same(neg.windows(ids, l.negations, { max = 3 }):shape(), { 3, 101 })
    -- max keeps positions spread evenly over the list: indices floor(i * n / max)
    spec.same(neg.windows(ids, { 3, 4, 5, 6, 7, 8, 9 }, { context_pre = 1, context_post = 0, max = 3 }):select(1, 1):tolist(),
      { ids[3]:item(), ids[5]:item(), ids[7]:item() })
    spec.same(neg.windows(ids, { 5, 6 }, { context_pre = 2, context_post = 1 }):tolist(),
      { ids:narrow(0, 3, 4):tolist(), ids:narrow(0, 4, 4):tolist() })
    spec.same(neg.windows(ids, {}, {}):shape(), { 0, 101 })
  end)
  spec.it("rejects positions without room and bad ids", function()
    spec.raises(function() neg.windows(ids, { 10 }) end, "position 10 has no room for 90 tokens before")
    spec.raises(function() neg.windows(ids, { ids:numel() - 5 }) end, "and 10 after it")
    spec.raises(function() neg.windows(ids:float(), { 100 }) end, "token ids must be an integer tensor")
    spec.raises(function() neg.label(m, tensor.new({ -1, 5 })) end, "token id -1 is outside the tokenizer's vocabulary")
    spec.raises(function() neg.label(m, nil) end, "bad argument #2 to 'label' (tensor of token ids expected, got nil)")
    spec.raises(function() neg.label(42) end, "model or list of token strings expected, got number")
    spec.raises(function() neg.label(m, ids, { contexts_pre = 3 }) end, "unknown option 'contexts_pre'")
    spec.raises(function() neg.classify({ " a" }, { context_pre = -1 }) end, "option 'context_pre' must be >= 0")
    spec.raises(function() neg.classify("not", {}) end, "list of token strings expected, got string")
    spec.raises(function() neg.classify({ " a" }, { contains = { "" } }) end, "option 'contains' holds an empty string")
    local tiny = model.load(golden_dir .. "/gpt2-tiny")
    spec.raises(function() neg.label(tiny, ids) end, "the model has no tokenizer")
  end)
end)

spec.describe("scan", function()
  local ids = m:tokenize(text(300, 11))
  local l = neg.label(m, ids)
  local nw = neg.windows(ids, l.negations, { max = 60 })
  local aw = neg.windows(ids, l.affirmations, { max = 50 })
  local rows = tensor.cat({ aw, nw }, 0)
  local y = tensor.cat({ tensor.zeros({ aw:size(0) }), tensor.ones({ nw:size(0) }) }):double()

  -- stats.logit on the target activations captured with run_with_cache (the full windows).
  local function reference(names, layer)
    local _, cache = m:run_with_cache(rows, { names = names, stop_at_layer = layer + 1 })
    local parts = {}
    for i, name in ipairs(names) do
      local act = cache[name]
      parts[i] = act:select(1, 90):reshape({ rows:size(0), -1 })
    end
    return tensor.cat(parts, 1)
  end
  local function close(a, b, what)
    local nan_a, nan_b = a:isnan(), b:isnan()
    spec.truthy(nan_a:equal(nan_b), what .. ": nan in the same places")
    local keep = lnot(nan_a)
    local d = (a:masked_select(keep) - b:masked_select(keep)):abs()
    local scale = b:masked_select(keep):abs() + 1e-6
    spec.truthy(d:numel() == 0 or (d / scale):max():item() < 1e-3, what .. ": max relative difference " ..
      tostring(d:numel() > 0 and (d / scale):max():item()))
  end

  spec.it("equals stats.logit on run_with_cache activations (MLP, two layers)", function()
    local r = neg.scan(m, nw, aw, { layers = { 2, 7 } })
    spec.eq(r.site, "mlp")
    spec.same(r.parts, { "mlp" })
    spec.same(r.layers, { 2, 7 })
    spec.eq(r.n_negations, 60)
    spec.eq(r.n_affirmations, 50)
    spec.eq(r.units, 128)
    spec.same(r.labels:tolist(), y:tolist())
    spec.same(r.mlp.beta:shape(), { 2, 128 })
    for row, layer in ipairs({ 2, 7 }) do
      local x = reference({ "blocks." .. layer .. ".mlp.hook_pre" }, layer)
      local fit = stats.logit(x, y, { max_iter = 3000 })
      local i = row - 1
      close(r.mlp.beta[i], fit.coef[1], "beta layer " .. layer)
      close(r.mlp.intercept[i], fit.coef[0], "intercept layer " .. layer)
      close(r.mlp.p[i], fit.p[1], "p layer " .. layer)
      close(r.mlp.accuracy[i], fit.accuracy, "accuracy layer " .. layer)
      spec.truthy(r.mlp.separated[i]:equal(fit.separated), "separated flags")
      local sig = fit.p[1]:lt(0.05 / 128)
      spec.truthy(r.mlp.significant[i]:equal(sig), "Bonferroni p < 0.05/units")
      spec.near(r.mlp.pct_significant[i]:item(), 100 * sig:sum():item() / 128, 1e-9, "% significant")
      -- The best unit: the largest significant positive beta, and its target activations.
      local best = r.mlp.best_unit[i]:item()
      if best >= 0 then
        local pos = land(sig, fit.coef[1]:gt(0))
        local masked = tensor.where(pos, fit.coef[1], -math.huge)
        spec.eq(best, masked:argmax():item(), "best unit")
        close(r.mlp.best_activations[i], x:select(1, best):double(), "best activations")
        spec.near(r.mlp.best_beta[i]:item(), fit.coef[1][best]:item(), 1e-3 * math.abs(fit.coef[1][best]:item()))
        local acc = r.mlp.accuracy[i]:masked_select(pos):mean():item()
        spec.near(r.mlp.mean_accuracy_sig_pos[i]:item(), acc, 1e-9, "mean accuracy of significant beta > 0")
      end
    end
    spec.truthy(r.timing.tokens == 110 * 91, "causal model runs windows up to the target only")
  end)

  spec.it("splits Q, K, V in that order (each equals stats.logit on hook_q/k/v)", function()
    local r = neg.scan(m, nw, aw, { layers = { 4 }, site = "qkv", batch_size = 7 })
    spec.same(r.parts, { "q", "k", "v" })
    spec.eq(r.units, 32)
    spec.eq(r.tested_units, 96)
    spec.near(r.threshold, 0.05 / 96, 1e-15)
    local x = reference({ "blocks.4.attn.hook_q", "blocks.4.attn.hook_k", "blocks.4.attn.hook_v" }, 4)
    local fit = stats.logit(x, y, { max_iter = 3000 })
    for k, part in ipairs(r.parts) do
      local cols = fit.coef[1]:narrow(0, (k - 1) * 32, 32)
      close(r[part].beta[0], cols, part .. " beta")
      close(r[part].p[0], fit.p[1]:narrow(0, (k - 1) * 32, 32), part .. " p")
      spec.truthy(r[part].significant[0]:equal(fit.p[1]:narrow(0, (k - 1) * 32, 32):lt(0.05 / 96)), part .. " significance")
    end
    -- Q, K and V differ, so a swapped order would show.
    spec.falsy(r.k.beta:equal(r.v.beta), "K and V differ")
  end)

  spec.it("gathers layers in several sweeps with the same results", function()
    local a = neg.scan(m, nw, aw, { layers = { 0, 3, 11 } })
    local b = neg.scan(m, nw, aw, { layers = { 0, 3, 11 }, pass_layers = 1, batch_size = 16 })
    close(b.mlp.beta, a.mlp.beta, "beta")
    spec.truthy(b.mlp.n_significant:equal(a.mlp.n_significant), "counts")
    spec.eq(b.timing.tokens, 3 * a.timing.tokens)
  end)

  spec.it("traces one unit over the whole window", function()
    local t = neg.trace(m, nw, { layer = 2, unit = 17 })
    spec.same(t:shape(), { 60, 101 })
    local _, cache = m:run_with_cache(nw, { names = "blocks.2.mlp.hook_pre", stop_at_layer = 3 })
    spec.truthy(t:allclose(cache["blocks.2.mlp.hook_pre"]:select(-1, 17), 1e-5, 1e-5), "equals the cached unit")
    local v = neg.trace(m, nw, { layer = 2, unit = 64 + 5, site = "qkv" }) -- V, unit 5
    local _, c2 = m:run_with_cache(nw, { names = "blocks.2.attn.hook_v", stop_at_layer = 3 })
    spec.truthy(v:allclose(c2["blocks.2.attn.hook_v"]:flatten(2):select(-1, 5), 1e-5, 1e-5), "V unit 5")
  end)

  spec.it("rejects bad options and arguments", function()
    spec.raises(function() neg.scan(m, nw, aw, { site = "attn" }) end,
      "option 'site' must be 'mlp', 'qkv' or a hook point name with {L}")
    spec.raises(function() neg.scan(m, nw, aw, { site = "blocks.{L}.mlp.hook_prex" }) end,
      "unknown hook point 'blocks.0.mlp.hook_prex'")
    spec.raises(function() neg.scan(m, nw, aw, { layers = { 12 } }) end,
      "option 'layers': 12 is not a layer of this 12-layer model")
    spec.raises(function() neg.scan(m, nw, aw, { layers = { 1, 1 } }) end, "option 'layers': layer 1 is given twice")
    spec.raises(function() neg.scan(m, nw, aw, { layers = {} }) end, "option 'layers' is empty")
    spec.raises(function() neg.scan(m, nw, aw, { max_iter = 0 }) end, "option 'max_iter' must be >= 1")
    spec.raises(function() neg.scan(m, nw, aw, { alpha = 2 }) end, "option 'alpha' must be in (0, 1)")
    spec.raises(function() neg.scan(m, nw, aw, { batch_size = 0 }) end, "option 'batch_size' must be at least 1, got 0")
    spec.raises(function() neg.scan(m, nw, aw, { target = 101 }) end, "option 'target': 101 is outside windows of 101")
    spec.raises(function() neg.scan(m, nw, aw, { maxiter = 5 }) end, "bad argument #4 to 'scan' (unknown option 'maxiter'")
    spec.raises(function() neg.scan(m, nw, aw:narrow(1, 0, 50), {}) end,
      "affirmation windows have 50 tokens but negation windows have 101")
    spec.raises(function() neg.scan(m, nw:narrow(0, 0, 1), aw, {}) end, "at least 2 negation windows needed, got 1")
    spec.raises(function() neg.scan(m, nw:float(), aw, {}) end, "negation windows must hold integer token ids")
    spec.raises(function() neg.scan(m, nw[0], aw, {}) end, "negation windows must be [windows, tokens]")
    spec.raises(function() neg.scan(m, nw, aw + 60000, {}) end, "outside the model's vocabulary of 50257")
    spec.raises(function() neg.trace(m, nw, { layer = 1 }) end, "option 'unit' is required")
    spec.raises(function() neg.trace(m, nw, { layer = 1, unit = 128 }) end, "128 is not a unit of site 'mlp' (128 units)")
  end)
end)

spec.describe("other architectures", function()
  for _, name in ipairs({ "gpt-neo-tiny", "pythia-tiny", "bert-tiny" }) do
    spec.it("scans MLP and Q/K/V of " .. name, function()
      local mm = model.load(golden_dir .. "/" .. name)
      local w = (tensor.rand({ 24, 12 }, { seed = 3 }) * 90):long() + 5 -- random windows, ids 5..94
      local r = neg.scan(mm, w:narrow(0, 0, 12), w:narrow(0, 12, 12), { target = 8 })
      spec.same(r.mlp.beta:shape(), { mm.n_layer, r.units })
      spec.eq(r.timing.tokens, 24 * (mm.is_causal and 9 or 12))
      local q = neg.scan(mm, w:narrow(0, 0, 12), w:narrow(0, 12, 12), { target = 8, site = "qkv", layers = { 0 } })
      spec.eq(q.units, mm.d_model)
      spec.eq(q.tested_units, 3 * mm.d_model)
    end)
  end
end)

spec.finish()
