-- The replace plugin's sweep (lesson 17-01): the golden median replacement of every fixture
-- model, batched passes against one pass per intervention, agreement with replace.run, rate
-- and mode sanity, and the error messages for bad options.
-- Arguments: the golden folder, the random 12-layer GPT-2 (with the real tokenizer).
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local replace = plugin("replace")

local function max_diff(a, b) return (a - b):abs():max():item() end

local m, expected, row = spec.golden(golden_dir, "gpt2-tiny")

spec.describe("replace.sweep", function()
  spec.it("equals the golden median replacement (top 10% at the last token) on every fixture", function()
    -- The fixtures' median module is hook_post's (not on Llama, whose golden replaces act_fn).
    for _, name in ipairs({ "gpt2-tiny", "gpt-neo-tiny", "pythia-tiny", "bert-tiny" }) do
      local gm, ge, grow = spec.golden(golden_dir, name)
      local clean = ge.logits[0][-1]:log_softmax(-1)
      local replaced = ge["median.logits"][0][-1]:log_softmax(-1)
      local _, top = (clean - replaced):abs():topk(3)
      for _, target in ipairs(top:tolist()) do
        local out = replace.sweep(gm, grow, { site = "blocks.{L}.mlp.hook_post", layers = { 1 }, rates = { 0.1 }, target = target })
        spec.near(out.delta[0][0]:item(), (clean[target] - replaced[target]):item(), 1e-4, name .. " delta of token " .. target)
        spec.near(out.logprob[0][0]:item(), replaced[target]:item(), 1e-4, name .. " log-prob of token " .. target)
      end
      local out = replace.sweep(gm, grow, { site = "blocks.{L}.mlp.hook_post", layers = { 1 }, rates = { 0.1 } })
      spec.truthy(out.clean_logprobs:allclose(clean, 1e-4, 1e-4), name .. " clean log-probs")
      spec.eq(out.clean_prediction, clean:argmax():item(), name .. " clean prediction")
      spec.eq(out.target, out.clean_prediction, name .. " default target")
    end
  end)

  spec.it("returns [layers, rates] results and the units replaced per rate", function()
    local out = replace.sweep(m, row, {})
    spec.same(out.delta:shape(), { 3, 9 })
    spec.same(out.logprob:shape(), { 3, 9 })
    spec.same(out.prediction:shape(), { 3, 9 })
    spec.same(out.clean_logprobs:shape(), { m.vocab_size })
    spec.same(out.layers, { 0, 1, 2 })
    spec.eq(out.units, 256)
    local want = {}
    for i, rate in ipairs(out.rates) do
      want[i] = math.max(1, math.floor(rate * 256))
      spec.near(rate, i / 10, 1e-12, "default rate " .. i)
    end
    spec.same(out.k, want)
    spec.eq(out.position, 15)
    spec.eq(out.forwards, 2)
    spec.truthy(out.seconds > 0)
    spec.truthy((out.delta - (out.clean_logprobs[out.target]:double() - out.logprob)):abs():max():item() < 1e-6,
      "delta = clean - replaced")
  end)

  spec.it("batched passes agree with one pass per intervention", function()
    local loop = replace.sweep(m, row, { loop = true })
    spec.eq(loop.forwards, 1 + 3 * 9)
    for _, batch_size in ipairs({ 27, 4, 1 }) do
      local batched = replace.sweep(m, row, { batch_size = batch_size })
      spec.eq(batched.forwards, 1 + math.ceil(27 / batch_size))
      spec.truthy(max_diff(batched.delta, loop.delta) < 1e-5, "batch_size " .. batch_size)
      spec.truthy(batched.prediction:equal(loop.prediction), "predictions with batch_size " .. batch_size)
    end
    for _, mode in ipairs({ "zero", "mean" }) do
      local b = replace.sweep(m, row, { mode = mode, layers = { 2, 0 }, rates = { 0.05, 0.5 } })
      local l = replace.sweep(m, row, { mode = mode, layers = { 2, 0 }, rates = { 0.05, 0.5 }, loop = true })
      spec.truthy(max_diff(b.delta, l.delta) < 1e-5, mode)
    end
  end)

  spec.it("each cell equals replace.run with that layer, rate, mode and position", function()
    local cases = {
      { layer = 0, rate = 0.3, mode = "median", position = -1 },
      { layer = 2, rate = 0.9, mode = "zero", position = -1 },
      { layer = 1, rate = 0.02, mode = "mean", position = 4 },
    }
    for _, c in ipairs(cases) do
      local out = replace.sweep(m, row, { layers = { c.layer }, rates = { c.rate }, mode = c.mode, position = c.position, target = 7 })
      local run = replace.run(m, row, { layer = c.layer, fraction = c.rate, mode = c.mode, position = c.position })
      local want = run.logits[0][c.position]:double():log_softmax(-1)[7]:item()
      spec.near(out.logprob[0][0]:item(), want, 1e-5, ("layer %d rate %g %s"):format(c.layer, c.rate, c.mode))
    end
  end)

  spec.it("rates make sense: rate 1 sets the whole position to one value; tiny rates replace one unit", function()
    local out = replace.sweep(m, row, { layers = { 1 }, rates = { 1.0 }, mode = "zero", target = 3 })
    local want = m:run_with_hooks(row, {
      ["blocks.1.mlp.hook_pre"] = function(act)
        local copy = act:clone()
        copy[0][-1] = 0
        return copy
      end,
    })[0][-1]:double():log_softmax(-1)[3]:item()
    spec.near(out.logprob[0][0]:item(), want, 1e-5, "rate 1, zero")
    local tiny = replace.sweep(m, row, { layers = { 1 }, rates = { 0.001 } })
    spec.same(tiny.k, { 1 })
    local k = replace.sweep(m, row, { layers = { 0 }, rates = { 0.002, 0.045, 0.1, 0.5 } }).k
    for i = 2, #k do spec.truthy(k[i] > k[i - 1], "k grows with the rate") end
  end)

  spec.it("encodes a string target with the model's tokenizer (first token, as the course)", function()
    local rm = model.load(random_gpt2)
    local prompt = rm:tokenize("It was a dark and stormy")
    local night = rm:tokenize(" night")[0]:item()
    local out = replace.sweep(rm, prompt, { target = " night", layers = { 0, 11 }, rates = { 0.1, 0.9 } })
    spec.eq(out.target, night)
    spec.same(out.delta:shape(), { 2, 2 })
    local by_id = replace.sweep(rm, prompt, { target = night, layers = { 0, 11 }, rates = { 0.1, 0.9 } })
    spec.truthy(out.delta:equal(by_id.delta))
  end)

  spec.it("rejects bad options with messages naming them", function()
    spec.raises(function() replace.sweep(m, row, { mode = "max" }) end, "option 'mode' must be 'median', 'zero' or 'mean'")
    spec.raises(function() replace.sweep(m, row, { rates = { 0.1, 1.5 } }) end, "option 'rates': every rate must be in (0, 1]")
    spec.raises(function() replace.sweep(m, row, { rates = {} }) end, "option 'rates' is empty")
    spec.raises(function() replace.sweep(m, row, { layers = { 0, 3 } }) end, "option 'layers': 3 is not a layer of this 3-layer model")
    spec.raises(function() replace.sweep(m, row, { site = "blocks.1.mlp.hook_pre" }) end, "option 'site' must contain {L}")
    spec.raises(function() replace.sweep(m, row, { site = "blocks.{L}.mlp.hook_prex" }) end, "unknown hook point")
    spec.raises(function() replace.sweep(m, row, { position = 16 }) end, "option 'position': 16 is outside the 16 tokens")
    spec.raises(function() replace.sweep(m, row, { batch_size = 0 }) end, "option 'batch_size' must be at least 1")
    spec.raises(function() replace.sweep(m, row, { target = 5000 }) end, "option 'target': token id 5000 is outside the vocabulary")
    spec.raises(function() replace.sweep(m, row, { target = " night" }) end, "option 'target': this model has no tokenizer")
    spec.raises(function() replace.sweep(m, row, { loop = "yes" }) end, "option 'loop': boolean expected, got string")
    spec.raises(function() replace.sweep(m, row, { rate = 0.1 }) end, "unknown option 'rate'")
    spec.raises(function() replace.sweep(m, expected.input_ids, {}) end, "one prompt expected")
  end)
end)

spec.finish()
