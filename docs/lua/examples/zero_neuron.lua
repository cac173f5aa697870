-- Your first llmscope script: watch one MLP neuron, then silence it and see what changes.
-- Run it with:  llmscope run docs/lua/examples/zero_neuron.lua --model DIR
local m = model.load() -- the folder given with --model
local layer, neuron = 8, 91 -- 0-based, like every index in llmscope

local sentences = {
  "The cat sat on the mat.",
  "I think the world could be better if",
  "It was a dark and stormy",
}

-- 1. Collect the neuron's pre-activation (before GELU) at every token of every sentence.
local site = "blocks." .. layer .. ".mlp.hook_pre"
for _, text in ipairs(sentences) do
  local _, cache = m:run_with_cache(text, { names = site, stop_at_layer = layer + 1 })
  local acts = cache[site][0]:select(-1, neuron) -- [pos]
  local tokens = m:tokens(text)
  local best = acts:argmax():item() -- 0-based position
  print(string.format("%-40s max %.3f at token %d (%q)", text, acts:max():item(), best, tokens[best + 1]))
end

-- 2. Zero the neuron at every position and compare next-token log-probabilities.
local text = sentences[3]
local clean = m:forward(text)[0][-1]:log_softmax(-1) -- [vocab] at the last position
local zeroed = m:run_with_hooks(text, {
  [site] = function(act)
    return act:index_fill(-1, tensor.new({ neuron }), 0)
  end,
})[0][-1]:log_softmax(-1)

local change = zeroed - clean
local values, ids = change:abs():topk(5)
print(("after %q, zeroing layer %d neuron %d:"):format(text, layer, neuron))
for i = 0, 4 do
  local id = ids[i]:item()
  print(string.format("  %-14s %+.4f  (%.4f -> %.4f)", ("%q"):format(m:decode({ id })), change[id]:item(), clean[id]:item(),
    zeroed[id]:item()))
end
print(string.format("largest change in log-probability: %.4f", values[0]:item()))
