-- The edit plugin against the same edits written as Lua hooks: scale, add (value and vector), set,
-- zero and mean with positions, heads and units, permute (a permutation of the units), skip and
-- mix give the same log-probabilities (1e-6); an edit that changes nothing (scale 1, noise 0)
-- reports exactly no change; noise is fixed by its seed; bad edits are errors naming the edit. On
-- the random GPT-2 with its tokenizer and on the Pythia and Llama fixtures (ids).
-- args: GOLDEN_DIR RANDOM_GPT2_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local edit = plugin("edit")

local function logprob(m, ids, target, hooks)
  local logits = m:forward(ids:unsqueeze(0), { hooks = hooks })
  return logits[0][-1]:double():log_softmax(-1)[target]:item()
end

local function check_model(m, ids, what)
  local n = ids:numel()
  local target = 5
  local d = m.d_model
  local vec = tensor.randn({ d }, { seed = 4 })
  local other = ids:index(0, tensor.arange(ids:numel() - 1, -1, -1))   -- the prompt reversed
  local cases = {
    { { site = "blocks.1.hook_resid_post", op = "scale", factor = 0.3 }, function(x) return x * 0.3 end },
    { { site = "blocks.0.hook_resid_post", op = "add", value = 2, positions = { 1 } }, function(x)
      local o = x:clone(); o[0][1]:copy(o[0][1] + 2); return o end },
    { { site = "blocks.1.hook_resid_pre", op = "add", vector = vec, positions = { -1 } }, function(x)
      local o = x:clone(); o[0][n - 1]:copy(o[0][n - 1] + vec); return o end },
    { { site = "blocks.0.hook_resid_post", op = "set", value = 0.5, units = { 0, 3 } }, function(x)
      local o = x:clone(); o:select(2, 0):fill(0.5); o:select(2, 3):fill(0.5); return o end },
    { { site = "blocks.1.attn.hook_q", op = "zero", heads = { 1 }, positions = { 2 } }, function(x)
      local o = x:clone(); o[0][2][1]:zero_(); return o end },
    { { site = "blocks.0.mlp.hook_post", op = "mean", units = { 1, 2 } }, function(x)
      local o = x:clone()
      for _, u in ipairs({ 1, 2 }) do o:select(2, u):copy(x:select(2, u):mean(1, true):expand({ 1, n })) end
      return o end },
    { { site = "blocks.1.hook_resid_post", op = "mix", other = other, weight = 0.25 }, nil },
  }
  local edits = {}
  for i, c in ipairs(cases) do edits[i] = c[1] end
  edits[#edits + 1] = { site = "blocks.0.hook_resid_post", op = "skip" }   -- not the last block (see 15-06)
  edits[#edits + 1] = { site = "blocks.0.hook_resid_post", op = "scale", factor = 1 }
  edits[#edits + 1] = { site = "blocks.0.hook_resid_post", op = "noise", sd = 0 }
  local r = edit.run(m, ids, edits, { targets = { target }, batch_size = 3 })
  for i, c in ipairs(cases) do
    if c[2] then
      spec.near(r.logprobs[i - 1][0]:item(), logprob(m, ids, target, { [c[1].site] = c[2] }), 1e-6,
        what .. ": " .. c[1].op)
    end
  end
  -- mix: (1 - w) this + w other at the same positions.
  local _, cache = m:run_with_cache(other:unsqueeze(0), { names = "blocks.1.hook_resid_post" })
  local o = cache["blocks.1.hook_resid_post"]
  spec.near(r.logprobs[6][0]:item(), logprob(m, ids, target, { ["blocks.1.hook_resid_post"] = function(x)
    return x * 0.75 + o * 0.25 end }), 1e-6, what .. ": mix")
  -- skip: the block's output is its input.
  spec.eq(r.block_change[7][0]:item(), 0, what .. ": skip")
  -- nothing changed: bit for bit.
  for _, k in ipairs({ 8, 9 }) do
    spec.eq(r.hidden_delta[k]:abs():max():item(), 0, what .. ": no-op edit " .. k)
    spec.eq(r.kl[k]:item(), 0, what .. ": no-op KL")
    spec.near(r.logit_r[k]:item(), 1, 1e-12, what .. ": no-op r")
  end
end

spec.describe("edit.run on the random GPT-2", function()
  local m = model.load(random_gpt2)
  local ids = m:tokenize("Duct tape will be very useful after the apocalypse.")
  spec.it("equals the same edits as Lua hooks", function() check_model(m, ids, "gpt2") end)

  spec.it("skip and mix act on the selected units only", function()
    local units = { 1, 4 }
    local r = edit.run(m, ids, { { site = "blocks.1.hook_resid_post", op = "skip", units = units },
      { site = "blocks.1.hook_resid_post", op = "mix", other = "Hi", other_position = 0, weight = 0.5, units = units } },
      { targets = { 5 } })
    local saved
    local want = logprob(m, ids, 5, { ["blocks.1.hook_resid_pre"] = function(x) saved = x:clone() end,
      ["blocks.1.hook_resid_post"] = function(x)
        local o = x:clone()
        for _, u in ipairs(units) do o:select(2, u):copy(saved:select(2, u)) end
        return o
      end })
    spec.near(r.logprobs[0][0]:item(), want, 1e-6, "skip on units")
    local _, c = m:run_with_cache(m:tokenize("Hi"):unsqueeze(0), { names = "blocks.1.hook_resid_post" })
    local other = c["blocks.1.hook_resid_post"][0][0]
    local mixed = logprob(m, ids, 5, { ["blocks.1.hook_resid_post"] = function(x)
      local o = x:clone()
      for _, u in ipairs(units) do o:select(2, u):copy(x:select(2, u) * 0.5 + other[u] * 0.5) end
      return o
    end })
    spec.near(r.logprobs[1][0]:item(), mixed, 1e-6, "mix on units")
  end)

  spec.it("noise is fixed by its seed; permute keeps the values", function()
    local e = { { site = "blocks.2.hook_resid_post", op = "noise", sd = 1, seed = 9 },
      { site = "blocks.2.hook_resid_post", op = "noise", sd = 1, seed = 9 },
      { site = "blocks.2.hook_resid_post", op = "noise", sd = 1, seed = 10 } }
    local r = edit.run(m, ids, e)
    spec.eq(r.logprobs[0][0]:item(), r.logprobs[1][0]:item())
    spec.truthy(r.logprobs[0][0]:item() ~= r.logprobs[2][0]:item())
    local p = edit.run(m, ids, { { site = "blocks.2.hook_resid_post", op = "permute", seed = 1 } })
    spec.truthy(p.hidden_delta[0][3]:item() > 0, "permuting moves the units")
    spec.near(p.hidden_std[0][3]:item(), p.clean_std[3]:item(), 1e-5, "and keeps their spread")
  end)

  spec.it("gradients flow through the edits to the input embeddings, as Lua's autograd", function()
    local target = 5
    local r = edit.run(m, ids, { { site = "blocks.1.hook_resid_post", op = "scale", factor = 0.5 },
      { site = "blocks.2.hook_resid_post", op = "skip" } }, { targets = { target }, gradient = true })
    local e = m:embed(ids:unsqueeze(0)):detach():set_requires_grad(true)
    local logits = m:forward({ embeds = e }, { hooks = { ["blocks.1.hook_resid_post"] = function(x) return x * 0.5 end } })
    logits[0][-1]:log_softmax(-1)[target]:backward()
    local g = e:grad()[0]:double():norm(2, 1)
    spec.truthy((g - r.embedding_grad[0]):abs():max():item() < 1e-5 * g:max():item(), "scale")
    spec.same(r.embedding_grad:shape(), { 2, ids:numel() })
    spec.same(r.clean_embedding_grad:shape(), { ids:numel() })
  end)

  spec.it("refuses bad edits, naming them", function()
    spec.raises(function() edit.run(m, ids, { { site = "blocks.0.hook_resid_post", op = "squash" } }) end,
      "edit 1: op 'squash' is not one of")
    spec.raises(function() edit.run(m, ids, { { op = "zero" } }) end, "edit 1: 'site' is required")
    spec.raises(function() edit.run(m, ids, { { site = "blocks.0.mlp.hook_post", op = "skip" } }) end,
      "edit 1: op 'skip' takes a block's output")
    spec.raises(function() edit.run(m, ids, { { site = "blocks.0.hook_resid_post", op = "mix" } }) end,
      "edit 1: op 'mix' needs 'other'")
    spec.raises(function() edit.run(m, ids, { { site = "blocks.0.hook_resid_post", op = "zero", heads = { 0 } } }) end,
      "'heads' needs a per-head site")
    spec.raises(function() edit.run(m, ids, { { site = "blocks.0.hook_resid_post", op = "add", vector = tensor.ones({ 3 }) } }) end,
      "'vector' has 3 values for")
    spec.raises(function() edit.run(m, ids, {}) end, "edits: no edits")
    spec.raises(function() edit.run(m, ids, { { site = "blocks.0.hook_resid_post", op = "zero" } }, { targets = {} }) end,
      "option 'targets': no tokens given")
    spec.raises(function() edit.run(m, ids, { { site = "blocks.0.hook_resid_post", op = "mix", other = "Hi there" } }) end,
      "give other_position to mix in one position")
    spec.raises(function() edit.run(m, ids, { { site = "blocks.0.hook_resid_post", op = "zero", positions = { 99 } } }) end,
      "position 99 is outside")
  end)
end)

for _, name in ipairs({ "pythia-tiny", "llama-tiny" }) do
  spec.describe("edit.run on " .. name, function()
    local m, expected = spec.golden(golden_dir, name)
    spec.it("equals the same edits as Lua hooks", function() check_model(m, expected.input_ids[0], name) end)
  end)
end

spec.finish()
