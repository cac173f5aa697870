-- The heads plugin against the same interventions written as Lua hooks on attn.hook_z: zeroed or
-- mean-replaced heads at all or some positions give the same log-probabilities (1e-6); every head
-- of a layer zeroed equals the attention output replaced by its output projection's bias (zero on
-- a model without one); batching changes nothing; bad options are errors. On the random GPT-2 with
-- its tokenizer and on the Pythia and Llama fixtures (ids).
-- args: GOLDEN_DIR RANDOM_GPT2_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local heads = plugin("heads")

-- Log-probabilities at `readout` with head `h` of `layer` replaced at `positions` (nil: all) by
-- `fill` ([d_head] or nil for zeros), through a Lua hook.
local function by_hook(m, ids, layer, h, positions, fill, readout)
  local site = ("blocks.%d.attn.hook_z"):format(layer)
  local logits = m:forward(ids:unsqueeze(0), { hooks = { [site] = function(z)
    local out = z:clone()
    local head = out:select(2, h)                  -- [1, pos, d_head]
    for p = 0, head:size(1) - 1 do
      local hit = positions == nil
      for _, q in ipairs(positions or {}) do hit = hit or q == p end
      if hit then
        if fill then head[0][p]:copy(fill:float()) else head[0][p]:zero_() end
      end
    end
    return out
  end } })
  return logits[0][readout]:double():log_softmax(-1)
end

local function check_model(m, ids, what)
  local n = ids:numel()
  local targets = { 1, 5, 7 }
  local r = heads.ablate(m, ids, { targets = targets, batch_size = 3 })
  spec.same(r.logprobs:shape(), { m.n_layer, r.n_head, 3 })
  for _, lh in ipairs({ { 0, 0 }, { m.n_layer - 1, r.n_head - 1 }, { m.n_layer // 2, 1 } }) do
    local lp = by_hook(m, ids, lh[1], lh[2], nil, nil, n - 1)
    for k, t in ipairs(targets) do
      spec.near(r.logprobs[lh[1]][lh[2]][k - 1]:item(), lp[t]:item(), 1e-6, what .. ": zero ablation")
    end
    spec.eq(r.top_ids[lh[1]][lh[2]]:item(), lp:argmax():item(), what .. ": top token")
  end
  -- Some positions only, another readout.
  local some = heads.ablate(m, ids, { layers = { 1 }, heads = { 0 }, positions = { 0, -1 }, position = n - 2,
    targets = targets })
  local lp = by_hook(m, ids, 1, 0, { 0, n - 1 }, nil, n - 2)
  spec.near(some.logprobs[0][0][1]:item(), lp[5]:item(), 1e-6, what .. ": positions")
  -- Mean over the input's own positions.
  local site = "blocks.1.attn.hook_z"
  local _, cache = m:run_with_cache(ids:unsqueeze(0), { names = site })
  local mean = cache[site][0]:select(1, 1):double():mean(0)
  local mr = heads.ablate(m, ids, { layers = { 1 }, heads = { 1 }, method = "mean", targets = targets })
  local mlp = by_hook(m, ids, 1, 1, nil, mean, n - 1)
  spec.near(mr.logprobs[0][0][2]:item(), mlp[7]:item(), 1e-6, what .. ": mean ablation")
  -- KL from the clean run is 0 only where nothing changed.
  spec.truthy(r.kl:min():item() >= -1e-12, what .. ": KL is not negative")
  return r
end

spec.describe("heads.ablate on the random GPT-2", function()
  local m = model.load(random_gpt2)
  local ids = m:tokenize("Berlin is the capital of")

  spec.it("equals the same ablations as Lua hooks", function() check_model(m, ids, "gpt2") end)

  spec.it("every head of a layer zeroed is the attention output set to the projection's bias", function()
    local layer = 2
    local r = heads.ablate(m, ids, { layers = { layer }, targets = { 3 } })
    local all = heads.ablate(m, ids, { layers = { layer }, heads = (function()
      local t = {}
      for h = 0, r.n_head - 1 do t[#t + 1] = h end
      return t
    end)(), targets = { 3 } })
    spec.truthy(all.logprobs:equal(r.logprobs))
    local bias = m:parameter(("transformer.h.%d.attn.c_proj.bias"):format(layer))
    -- All heads at once, by hook on hook_z, against the attention output replaced by the bias.
    local zeroed = m:forward(ids:unsqueeze(0), { hooks = { [("blocks.%d.attn.hook_z"):format(layer)] = function(z)
      return z:clone():zero_()
    end } })
    local biased = m:forward(ids:unsqueeze(0), { hooks = { [("blocks.%d.hook_attn_out"):format(layer)] = function(a)
      return a:clone():zero_():add(bias)
    end } })
    spec.truthy((zeroed - biased):abs():max():item() < 1e-5)
  end)

  spec.it("compare: the cosine of final hidden states, as a Lua hook", function()
    local n = ids:numel()
    local r = heads.ablate(m, ids, { layers = { 3 }, heads = { 1 }, positions = { n - 1 }, compare = { 0, 2 } })
    local _, out = m:forward(ids:unsqueeze(0), { hidden_states = true, hooks = { ["blocks.3.attn.hook_z"] = function(z)
      local o = z:clone(); o[0][n - 1][1]:zero_(); return o end } })
    local h = out.hidden_states[m.n_layer][0]:double()
    for k, p in ipairs({ 0, 2 }) do
      local cos = (h[n - 1] * h[p]):sum():item() / (h[n - 1]:norm():item() * h[p]:norm():item())
      spec.near(r.similarity[0][0][k - 1]:item(), cos, 1e-6)
    end
    spec.same(r.clean_similarity:shape(), { 2 })
    local t = heads.ablate(m, ids, { layers = { 3 }, heads = { 1 }, positions = { n - 1 }, token_similarity = true })
    local want = stats.upper_triangle(stats.cosine_matrix(out.hidden_states[5][0]:double()))
    spec.truthy((t.token_similarity[0][0][5] - want):abs():max():item() < 1e-6, "token similarity")
    spec.raises(function() heads.ablate(m, ids, { compare = { 50 } }) end, "option 'compare': 50 is outside")
  end)

  spec.it("refuses what it cannot do, naming the option", function()
    spec.raises(function() heads.ablate(m, ids, { heads = { 99 } }) end, "option 'heads': 99 is not a head")
    spec.raises(function() heads.ablate(m, ids, { method = "noise" }) end,
      "option 'method' must be 'zero' or 'mean', got 'noise'")
    spec.raises(function() heads.ablate(m, ids, { reference = { "x" } }) end,
      "option 'reference' gives the means of method 'mean'")
    spec.raises(function() heads.ablate(m, ids, { positions = { 40 } }) end, "option 'positions': 40 is outside")
    spec.raises(function() heads.ablate(m, ids, { position = -9 }) end, "option 'position': -9 is outside")
    spec.raises(function() heads.ablate(m, ids, { targets = { " capital of" } }) end, "option 'targets'")
    spec.raises(function() heads.ablate(m, ids, { layers = { 12 } }) end, "option 'layers'")
    spec.raises(function() heads.ablate(m, ids, { batch = 2 }) end, "unknown option 'batch'")
    spec.raises(function() heads.ablate(m, ids, { heads = {} }) end, "option 'heads' is empty")
    spec.raises(function() heads.ablate(m, ids, { targets = {} }) end, "option 'targets': no tokens given")
  end)
end)

for _, name in ipairs({ "pythia-tiny", "llama-tiny" }) do
  spec.describe("heads.ablate on " .. name, function()
    local m, expected = spec.golden(golden_dir, name)
    spec.it("equals the same ablations as Lua hooks", function() check_model(m, expected.input_ids[0], name) end)
  end)
end

spec.finish()
