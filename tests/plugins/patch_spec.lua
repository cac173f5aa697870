-- The patch plugin against the same patches written as Lua hooks: a clean activation at one
-- (site, position), one head, or a whole site put into the corrupted run gives the same metric
-- (1e-6); patching a run into itself changes nothing, bit for bit; attribution patching equals exact
-- patching where the metric is linear in the patched activation (after the final norm) and its
-- gradient equals a finite difference elsewhere; prompts of different lengths and bad options are
-- errors. On the random GPT-2 with its tokenizer and on the Pythia and Llama fixtures (ids).
-- args: GOLDEN_DIR RANDOM_GPT2_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local patch = plugin("patch")

-- logit(a) - logit(b) at the last position of `ids` with `hooks`.
local function metric(m, ids, a, b, hooks)
  local logits = m:forward(ids:unsqueeze(0), { hooks = hooks })
  local row = logits[0][-1]:double()
  return row[a]:item() - row[b]:item()
end

local function check_model(m, clean, corrupted, what)
  local a, b = 3, 11
  local n = clean:numel()
  local site = "blocks.1.hook_resid_pre"
  local _, cache = m:run_with_cache(clean:unsqueeze(0), { names = { site, "blocks.1.attn.hook_z" } })
  local r = patch.activation(m, clean, corrupted, { metric = { a, b }, layers = { 1 }, batch_size = 4 })
  spec.same(r.metric:shape(), { 1, n })
  for _, p in ipairs({ 0, n // 2, n - 1 }) do
    local expected = metric(m, corrupted, a, b, { [site] = function(x)
      local out = x:clone()
      out[0][p]:copy(cache[site][0][p])
      return out
    end })
    spec.near(r.metric[0][p]:item(), expected, 1e-6, what .. ": position " .. p)
  end
  spec.near(r.corrupted_metric, metric(m, corrupted, a, b), 1e-9, what .. ": corrupted metric")
  -- One head at the last position.
  local h = patch.activation(m, clean, corrupted, { metric = { a, b }, layers = { 1 }, per_head = true,
    positions = { -1 } })
  local expected = metric(m, corrupted, a, b, { ["blocks.1.attn.hook_z"] = function(z)
    local out = z:clone()
    out[0][n - 1][1]:copy(cache["blocks.1.attn.hook_z"][0][n - 1][1])
    return out
  end })
  spec.near(h.metric[0][1]:item(), expected, 1e-6, what .. ": head 1")
  -- A whole site.
  local t = patch.activation(m, clean, corrupted, { metric = { a, b }, layers = { 1 }, together = true })
  spec.same(t.metric:shape(), { 1, 1 })
  spec.near(t.metric[0][0]:item(), r.clean_metric, 1e-5, what .. ": the whole residual stream is the clean run")
  -- Attribution after the final norm (if the model has one) is exact.
  local ok_site = pcall(m.run_with_cache, m, clean:unsqueeze(0), { names = "ln_final.hook_normalized" })
  if ok_site then
    local e = patch.activation(m, clean, corrupted, { metric = { a, b }, sites = "ln_final.hook_normalized" })
    local at = patch.attribution(m, clean, corrupted, { metric = { a, b }, sites = "ln_final.hook_normalized" })
    spec.truthy((e.metric - at.estimate):abs():max():item() < 1e-4, what .. ": attribution is exact where linear")
  end
end

spec.describe("patch on the random GPT-2", function()
  local m = model.load(random_gpt2)
  local clean = m:tokenize("When John and Mary went to the park, John gave a gift to")
  local corrupted = m:tokenize("When John and Mary went to the park, Mary gave a gift to")

  spec.it("equals the same patches as Lua hooks", function() check_model(m, clean, corrupted, "gpt2") end)

  spec.it("patching a run into itself changes nothing, bit for bit", function()
    local r = patch.activation(m, clean, clean, { metric = { 3, 11 }, batch_size = 1, positions = { 0, -1 } })
    spec.eq((r.metric - r.clean_metric):abs():max():item(), 0)
  end)

  spec.it("attribution's gradient is the metric's derivative (a finite difference)", function()
    local site = "blocks.4.hook_resid_post"
    local at = patch.attribution(m, clean, corrupted, { metric = { 3, 11 }, sites = site, positions = { 9 } })
    local _, cc = m:run_with_cache(clean:unsqueeze(0), { names = site })
    local _, cr = m:run_with_cache(corrupted:unsqueeze(0), { names = site })
    local delta = (cc[site][0][9] - cr[site][0][9]):double()
    local eps = 1e-3
    local moved = metric(m, corrupted, 3, 11, { [site] = function(x)
      local out = x:clone()
      out[0][9]:add(delta:float() * eps)
      return out
    end })
    local slope = (moved - at.corrupted_metric) / eps
    spec.near(at.estimate[0][0]:item() - at.corrupted_metric, slope, 1e-2 * math.max(1, math.abs(slope)))
  end)

  spec.it("refuses what it cannot do, naming the argument", function()
    spec.raises(function() patch.activation(m, clean, m:tokenize("When John went"), { metric = { 3, 11 } }) end,
      "patching needs prompts of the same length")
    spec.raises(function() patch.activation(m, clean, corrupted, {}) end, "option 'metric' must be two tokens {a, b}")
    spec.raises(function() patch.activation(m, clean, corrupted, { metric = { 3, 11 }, position = 40 }) end,
      "option 'position': 40 is outside the")
    spec.raises(function() patch.activation(m, clean, corrupted, { metric = { 3, 11 }, batch_size = 0 }) end,
      "option 'batch_size' must be at least 1")
    spec.raises(function() patch.activation(m, clean, corrupted, { metric = { 3, 11 }, positions = { 99 } }) end,
      "option 'positions': 99 is outside the")
    spec.raises(function() patch.activation(m, clean, corrupted, { metric = { 3, 11 }, per_head = true,
      sites = "blocks.0.hook_resid_pre" }) end, "is not per head")
    spec.raises(function() patch.attribution(m, clean, corrupted, { metric = { 3, 11 }, batch_size = 2 }) end,
      "unknown option 'batch_size'")
  end)
end)

for _, name in ipairs({ "pythia-tiny", "llama-tiny" }) do
  spec.describe("patch on " .. name, function()
    local m, expected = spec.golden(golden_dir, name)
    spec.it("equals the same patches as Lua hooks", function()
      local clean = expected.input_ids[0]
      local corrupted = clean:clone()
      corrupted[1] = (clean[1]:item() + 7) % m.vocab_size
      check_model(m, clean, corrupted, name)
    end)
  end)
end

spec.finish()
