-- The context plugin (lesson 12-10) against the Lua DSL on the same activations: words with and
-- without a leading space on GPT-2's real tokenizer, tokens in context vs alone, r = stats.pearson,
-- bad options; plus the hook identities the hook lessons check (residual reconstruction, the Q
-- slice of c_attn) on the tiny fixtures.
-- args: GOLDEN_DIR RANDOM_GPT2_DIR (the 12-layer random GPT-2 with the real tokenizer)
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local context = plugin("context")
local m = model.load(random_gpt2)
local layer = 8
local site = "blocks." .. layer .. ".mlp.hook_pre"

-- The site's activations for one text run alone, averaged over its tokens: [units].
local function word_mean(text)
  local _, cache = m:run_with_cache(text, { names = site })
  return cache[site][0]:mean(0)
end

local function max_diff(a, b) return (a - b):abs():max():item() end

spec.describe("context.spacing", function()
  local words = { "house", "water", "government", "xylophone", "children" }
  local out = context.spacing(m, words, { layer = layer })

  spec.it("returns [2, words, units] and token counts from the real GPT-2 tokenizer", function()
    spec.same(out.acts:shape(), { 2, #words, 4 * m.d_model })
    for i, w in ipairs(words) do
      spec.eq(out.n_tokens[0][i - 1]:item(), m:tokenize(w):numel(), "tokens of '" .. w .. "'")
      spec.eq(out.n_tokens[1][i - 1]:item(), m:tokenize(" " .. w):numel(), "tokens of ' " .. w .. "'")
    end
    -- " house" is one GPT-2 token and not the same one as "house".
    spec.eq(m:tokenize(" house"):numel(), 1)
    spec.truthy(m:tokenize(" house")[0]:item() ~= m:tokenize("house")[0]:item(), "different ids")
    spec.truthy(out.n_tokens[0][3]:item() > 1, "xylophone takes several tokens")
    spec.eq(out.layer, layer)
    spec.eq(out.site, site)
  end)

  spec.it("equals the token-averaged run_with_cache activations of each word alone", function()
    for i, w in ipairs(words) do
      spec.truthy(max_diff(out.acts[0][i - 1], word_mean(w)) < 1e-5, "'" .. w .. "' without a space")
      spec.truthy(max_diff(out.acts[1][i - 1], word_mean(" " .. w)) < 1e-5, "'" .. w .. "' with a space")
    end
  end)

  spec.it("r equals stats.pearson over the flattened activations", function()
    local without, with = {}, {}
    for _, w in ipairs(words) do
      without[#without + 1] = word_mean(w)
      with[#with + 1] = word_mean(" " .. w)
    end
    local a, b = tensor.stack(without):flatten(), tensor.stack(with):flatten()
    local r = stats.pearson(a, b):item()
    spec.near(out.r, r, 1e-6, "r")
    local d = tensor.stack(with) - tensor.stack(without)
    spec.near(out.diff.mean_abs, d:abs():mean():item(), 1e-6, "mean |diff|")
    spec.near(out.diff.max_abs, d:abs():max():item(), 1e-5, "max |diff|")
    spec.truthy(max_diff(out.unit_mean_abs_diff, d:abs():mean(0)) < 1e-5, "per-unit mean |diff|")
  end)

  spec.it("does not depend on the batching (padding is masked)", function()
    local one = context.spacing(m, words, { layer = layer, batch_size = 1 })
    spec.truthy(max_diff(one.acts, out.acts) < 1e-5)
  end)

  spec.it("defaults to two thirds of the depth and takes another site or prefix", function()
    spec.eq(context.spacing(m, { "cat" }).layer, m.n_layer * 2 // 3)
    local post = context.spacing(m, { "cat" }, { site = "blocks.3.mlp.hook_post" })
    spec.eq(post.layer, 3)
    local _, cache = m:run_with_cache("cat", { names = "blocks.3.mlp.hook_post" })
    spec.truthy(max_diff(post.acts[0][0], cache["blocks.3.mlp.hook_post"][0]:mean(0)) < 1e-5)
    local q = context.spacing(m, { "cat" }, { site = "blocks.2.attn.hook_q" })
    spec.same(q.acts:shape(), { 2, 1, m.d_model }, "per-head sites are flattened to heads x d_head")
    local nl = context.spacing(m, { "cat" }, { prefix = "\n" })
    spec.truthy(max_diff(nl.acts[1][0], word_mean("\ncat")) < 1e-5, "prefix")
  end)
end)

spec.describe("context.in_context", function()
  local ids = m:tokenize("I think the world could be better if we all learned to listen a little more.")
  local T = ids:numel()
  local out = context.in_context(m, ids, { layer = layer, batch_size = 4 })

  spec.it("returns [2, units, pos]: the passage's activations and each token's alone", function()
    spec.same(out.acts:shape(), { 2, 4 * m.d_model, T })
    local _, cache = m:run_with_cache(ids, { names = site })
    spec.truthy(max_diff(out.acts[0], cache[site][0]:t()) < 1e-5, "in context")
    for _, p in ipairs({ 0, 3, T - 1 }) do
      local _, alone = m:run_with_cache(ids:narrow(0, p, 1), { names = site })
      spec.truthy(max_diff(out.acts[1]:select(1, p), alone[site][0][0]) < 1e-5, "token " .. p .. " alone")
    end
    spec.truthy(out.ids:equal(ids))
  end)

  spec.it("token 0 of a causal model is the same in context and alone; later ones are not", function()
    spec.truthy(max_diff(out.acts[0]:select(1, 0), out.acts[1]:select(1, 0)) < 1e-5)
    spec.near(out.token_r[0]:item(), 1, 1e-5, "token 0 r")
    spec.truthy(max_diff(out.acts[0]:select(1, T - 1), out.acts[1]:select(1, T - 1)) > 1e-3)
  end)

  spec.it("r and the per-token r equal stats.pearson", function()
    spec.near(out.r, stats.pearson(out.acts[0]:flatten(), out.acts[1]:flatten()):item(), 1e-6, "r")
    for _, p in ipairs({ 1, T - 1 }) do
      local r = stats.pearson(out.acts[0]:select(1, p), out.acts[1]:select(1, p)):item()
      spec.near(out.token_r[p]:item(), r, 1e-6, "token " .. p)
    end
    local d = out.acts[0] - out.acts[1]
    spec.near(out.diff.std, d:std():item(), 1e-5, "std of the difference")
    spec.truthy(max_diff(out.token_mean_abs_diff, d:abs():mean(0)) < 1e-5)
  end)

  spec.it("takes a string, a list of ids or [1, pos]", function()
    local text = context.in_context(m, "I think the world could be better if", { layer = layer })
    local list = context.in_context(m, m:tokenize("I think the world could be better if"):tolist(), { layer = layer })
    local row = context.in_context(m, m:tokenize("I think the world could be better if"):unsqueeze(0), { layer = layer })
    spec.truthy(text.acts:equal(list.acts) and text.acts:equal(row.acts))
  end)
end)

spec.describe("context options", function()
  local ids = m:tokenize("a short passage")
  spec.it("rejects bad options and inputs with messages naming them", function()
    spec.raises(function() context.spacing(m, { "cat" }, { layer = 12 }) end,
      "option 'layer': 12 is not a layer of this 12-layer model (0 to 11, or -12 to -1 from the end)")
    spec.raises(function() context.in_context(m, ids, { layer = -13 }) end, "option 'layer': -13 is not a layer")
    spec.raises(function() context.spacing(m, { "cat" }, { lyr = 2 }) end, "unknown option 'lyr' (expected layer, site, prefix, batch_size)")
    spec.raises(function() context.in_context(m, ids, { prefix = " " }) end, "unknown option 'prefix'")
    spec.raises(function() context.in_context(m, ids, { site = "blocks.8.mlp.hook_prx" }) end,
      "option 'site': unknown hook point 'blocks.8.mlp.hook_prx' (did you mean 'blocks.8.mlp.hook_pre'")
    spec.raises(function() context.spacing(m, { "cat" }, { batch_size = 0 }) end, "option 'batch_size' must be at least 1")
    spec.raises(function() context.spacing(m, { "cat" }, { layer = "8" }) end, "option 'layer': integer expected, got string")
    spec.raises(function() context.spacing(m, { "cat" }, { prefix = "" }) end, "option 'prefix' must not be empty")
    spec.raises(function() context.spacing(m, {}) end, "words: expected a non-empty list of strings")
    spec.raises(function() context.spacing(m, { "cat", 3 }) end, "bad argument #2 to 'spacing' (string expected, got number)")
    spec.raises(function() context.in_context(m, tensor.ones({ 3 })) end, "passage: token ids must be an integer tensor")
    spec.raises(function() context.in_context(m, tensor.new({ 5 })) end, "the passage needs at least 2 tokens, got 1")
    spec.raises(function() context.in_context(m, tensor.new({ { 1, 2 }, { 3, 4 } })) end, "passage: one sequence expected, [pos] or [1, pos]")
    spec.raises(function() context.in_context(m, tensor.new({ 1, 60000 })) end, "passage: token id 60000 is outside the vocabulary")
    spec.raises(function() context.in_context(m, tensor.zeros({ m.max_positions + 1 }, { dtype = "int64" })) end,
      "this model takes at most " .. m.max_positions)
    spec.raises(function() context.in_context(m, true) end, "passage: token ids (tensor or list) or a text expected, got a boolean")
  end)
  spec.it("needs a tokenizer for words", function()
    local tiny = model.load(golden_dir .. "/gpt2-tiny")
    spec.raises(function() context.spacing(tiny, { "cat" }) end, "spacing needs a model with a tokenizer")
    spec.raises(function() context.in_context(tiny, "cat dog") end, "passage: this model has no tokenizer")
  end)
end)

-- The fixtures have no tokenizer: ids only. in_context runs on every architecture, and the
-- identities the hook lessons (12-05, 12-06) check hold on each.
for _, name in ipairs({ "gpt2-tiny", "gpt-neo-tiny", "pythia-tiny", "llama-tiny", "bert-tiny" }) do
  local fm, _, row = spec.golden(golden_dir, name)
  local ids = row[0]

  spec.describe(name, function()
    spec.it("in_context runs and agrees with run_with_cache", function()
      local L = fm.n_layer - 1
      local out = context.in_context(fm, ids, { layer = L })
      local s = "blocks." .. L .. ".mlp.hook_pre"
      local _, cache = fm:run_with_cache(ids, { names = s })
      spec.truthy(max_diff(out.acts[0], cache[s][0]:t()) < 1e-5)
      spec.same(out.acts:shape(), { 2, cache[s]:size(-1), ids:numel() })
    end)

    if fm.is_causal then
      spec.it("h[L+1] = h[L] + attn_out + mlp_out at every layer (to 1e-5)", function()
        local parts = {}
        local _, out = fm:forward(ids, {
          hidden_states = true,
          hooks = {
            ["blocks.*.hook_attn_out"] = function(a, ctx) parts["attn" .. ctx.layer] = a:clone() end,
            ["blocks.*.hook_mlp_out"] = function(a, ctx) parts["mlp" .. ctx.layer] = a:clone() end,
          },
        })
        -- The last hidden state is after ln_f (lesson 12-07), so the identity covers 0 .. n_layer-2.
        for L = 0, fm.n_layer - 2 do
          local rebuilt = out.hidden_states[L] + parts["attn" .. L] + parts["mlp" .. L]
          spec.truthy(max_diff(rebuilt, out.hidden_states[L + 1]) < 1e-5, "layer " .. L)
        end
      end)
    end

    spec.it("the Q slice of the Hugging Face projection equals blocks.L.attn.hook_q", function()
      local hf = ({
        gpt2 = "transformer.h.0.attn.c_attn",
        gpt_neo = "transformer.h.0.attn.attention.q_proj",
        gpt_neox = "gpt_neox.layers.0.attention.query_key_value",
        llama = "model.layers.0.self_attn.q_proj",
        bert = "bert.encoder.layer.0.attention.self.query",
      })[fm.architecture]
      local got = {}
      fm:forward(ids, { hooks = {
        [hf] = function(a) got.hf = a:clone() end,
        ["blocks.0.attn.hook_q"] = function(a) got.q = a:clone() end,
      } })
      local b, t, h, dh = table.unpack(got.q:shape())
      local q_hf
      if fm.architecture == "gpt_neox" then
        q_hf = got.hf:view({ b, t, h, 3, dh }):select(3, 0):flatten(2) -- per head: q, k, v
      else
        q_hf = got.hf:slice(-1, 0, h * dh)
      end
      spec.truthy(q_hf:equal(got.q:flatten(2)), fm.architecture)
    end)
  end)
end

spec.finish()
