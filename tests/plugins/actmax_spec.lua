-- The actmax plugin on the tiny fixtures (GPT-2, GPT-Neo, BERT) and the 12-layer random GPT-2:
-- where it looks (hidden states and sites equal the model's own), what optimize/repeat/sample
-- return, that ascent raises its unit, the loss's gradient against Lua autograd, reproducible
-- seeds, and the error messages for bad options.
-- Arguments: the golden folder (tests/golden); --model is the random 12-layer GPT-2.
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden = arg[1]
local actmax = plugin("actmax")

local gpt2 = model.load() -- random-gpt2-12: real tokenizer, d_model 32
local fixtures = {
  { name = "gpt2-tiny", m = model.load(golden .. "/gpt2-tiny") },
  { name = "gpt-neo-tiny", m = model.load(golden .. "/gpt-neo-tiny") },
  { name = "pythia-tiny", m = model.load(golden .. "/pythia-tiny") },
  { name = "llama-tiny", m = model.load(golden .. "/llama-tiny") },
  { name = "bert-tiny", m = model.load(golden .. "/bert-tiny") },
  { name = "random-gpt2-12", m = gpt2 },
}
local fixture = {}
for _, f in ipairs(fixtures) do fixture[f.name] = f end
local ids = tensor.new({ { 11, 25, 3, 870, 42, 7 }, { 5, 600, 12, 99, 1, 240 } })

local function max_diff(a, b) return (a - b):abs():max():item() end

spec.describe("actmax.activation", function()
  spec.it("reads hidden_states[i] (every i, and -1) exactly as forward's hidden_states", function()
    for _, f in ipairs(fixtures) do
      local _, out = f.m:forward(ids, { hidden_states = true })
      for i = 0, f.m.n_layer do
        local got = actmax.activation(f.m, ids, { hidden_state = i, unit = 3 })
        spec.same(got:shape(), { 2, 6 }, f.name)
        spec.eq(max_diff(got, out.hidden_states[i]:select(-1, 3)), 0, f.name .. " hidden_states[" .. i .. "]")
      end
      local last = actmax.activation(f.m, ids, { hidden_state = -1, unit = 3 })
      spec.eq(max_diff(last, out.hidden_states[f.m.n_layer]:select(-1, 3)), 0, f.name .. " hidden_states[-1]")
    end
  end)
  spec.it("reads any site, flattening per-head sites to [batch, pos, units]", function()
    local m = fixtures[1].m
    local _, cache = m:run_with_cache(ids, { names = { "blocks.1.mlp.hook_pre", "blocks.0.attn.hook_q" } })
    local pre = actmax.activation(m, ids, { site = "blocks.1.mlp.hook_pre", unit = 200 })
    spec.eq(max_diff(pre, cache["blocks.1.mlp.hook_pre"]:select(-1, 200)), 0, "mlp.hook_pre")
    local q = cache["blocks.0.attn.hook_q"]                 -- [batch, pos, head, d_head]
    local d_head = q:size(-1)
    local got = actmax.activation(m, ids, { site = "blocks.0.attn.hook_q", unit = d_head + 2 })
    spec.eq(max_diff(got, q:select(2, 1):select(-1, 2)), 0, "head 1, dim 2 of hook_q")
  end)
  spec.it("takes input embeddings as well as ids", function()
    local m = fixtures[1].m
    local embeds = m:embed(ids)
    local from_ids = actmax.activation(m, ids, { hidden_state = 2, unit = 5 })
    local from_embeds = actmax.activation(m, embeds, { hidden_state = 2, unit = 5 })
    spec.truthy(from_ids:allclose(from_embeds, 1e-5, 1e-6), "ids vs embeddings")
  end)
end)

spec.describe("actmax.optimize", function()
  local m = fixtures[1].m
  local r = actmax.optimize(m, { hidden_state = 2, unit = 7, steps = 60, lr = 0.01 })
  spec.it("returns the documented shapes and target fields", function()
    spec.same(r.ids:shape(), { 5 })
    spec.same(r.similarity:shape(), { 5 })
    spec.same(r.cosine:shape(), { 5, m.vocab_size })
    spec.same(r.embeddings:shape(), { 5, m.d_model })
    spec.same(r.init:shape(), { 5, m.d_model })
    for _, key in ipairs({ "activation", "neighbour", "grad_norm" }) do spec.same(r[key]:shape(), { 60 }, key) end
    spec.eq(r.site, "hidden_states[2]")
    spec.eq(r.unit, 7)
    spec.eq(r.neighbour_unit, 8)
    spec.eq(r.width, m.d_model)
    spec.eq(r.layers_run, 2)
    spec.eq(r.steps, 60)
    spec.eq(r.tokens, nil, "no tokens without a tokenizer")
  end)
  spec.it("raises the target activation above its value at the start", function()
    spec.near(r.initial_activation, r.activation[0]:item(), 1e-6, "initial = first recorded")
    spec.truthy(r.final_activation > r.initial_activation + 0.1,
      ("final %.4f > initial %.4f"):format(r.final_activation, r.initial_activation))
    spec.truthy(r.activation[-1]:item() > r.activation[0]:item(), "the curve rises")
    spec.truthy(r.grad_norm:gt(0):all(), "gradient norms are positive")
    local check = actmax.activation(m, r.embeddings:unsqueeze(0), { hidden_state = 2, unit = 7 }):mean():item()
    spec.near(r.final_activation, check, 1e-4, "final activation of the returned embeddings")
  end)
  spec.it("decodes to real vocabulary ids by highest cosine similarity", function()
    spec.truthy(r.ids:ge(0):all() and r.ids:lt(m.vocab_size):all(), "ids in the vocabulary")
    spec.truthy(r.similarity:ge(-1):all() and r.similarity:le(1):all(), "similarities in [-1, 1]")
    local vocab = m:embed(tensor.arange(m.vocab_size))[0]      -- [vocab, d_model]
    local cos = r.embeddings:unsqueeze(1):cosine_similarity(vocab:unsqueeze(0), -1)   -- [5, vocab]
    spec.truthy(cos:allclose(r.cosine, 1e-4, 1e-5), "cosine matrix")
    local best, arg = cos:max(1)
    spec.truthy(arg:equal(r.ids), "argmax ids")
    spec.truthy(best:allclose(r.similarity, 1e-4, 1e-5), "top similarities")
  end)
  spec.it("starts from N(0, std of the token embeddings)", function()
    local vocab = m:embed(tensor.arange(m.vocab_size))[0]
    spec.near(r.embedding_std, vocab:std():item(), 1e-5, "embedding_std")
    local ratio = r.init:std():item() / r.embedding_std
    spec.truthy(ratio > 0.8 and ratio < 1.2, "init std / embedding std = " .. ratio)
    spec.truthy(math.abs(r.init:mean():item()) < 0.2 * r.embedding_std, "init mean near 0")
  end)
  spec.it("follows the gradient of -mean(act) + lambda * ||E||^2 (checked with Lua autograd)", function()
    local E = r.init:clone():unsqueeze(0):set_requires_grad(true)
    local _, out = m:forward({ embeds = E }, { hidden_states = true })
    local act = out.hidden_states[2][0]:select(-1, 7):mean()
    local loss = -act + (E * E):sum() * 0.01
    loss:backward()
    spec.near(act:item(), r.activation[0]:item(), 1e-5, "activation at step 0")
    spec.near(E:grad():norm():item(), r.grad_norm[0]:item(), 1e-4, "gradient norm at step 0")
    local nb = out.hidden_states[2][0]:select(-1, 8):mean():item()
    spec.near(nb, r.neighbour[0]:item(), 1e-5, "neighbour at step 0")
  end)
  spec.it("is reproducible with a seed and differs across seeds", function()
    local a = actmax.optimize(m, { hidden_state = 1, unit = 3, steps = 10, seed = 4 })
    local b = actmax.optimize(m, { hidden_state = 1, unit = 3, steps = 10, seed = 4 })
    local c = actmax.optimize(m, { hidden_state = 1, unit = 3, steps = 10, seed = 5 })
    spec.truthy(a.init:equal(b.init) and a.embeddings:equal(b.embeddings), "same seed, same run")
    spec.truthy(a.activation:equal(b.activation) and a.ids:equal(b.ids), "same curve and ids")
    spec.falsy(a.init:equal(c.init), "another seed starts elsewhere")
  end)
  spec.it("runs on GPT-Neo, GPT-NeoX, Llama and BERT, on any site, and the neighbour of the last unit is unit - 1", function()
    for _, name in ipairs({ "gpt-neo-tiny", "pythia-tiny", "llama-tiny", "bert-tiny" }) do
      local f = fixture[name]
      local o = actmax.optimize(f.m, { site = "blocks.0.mlp.hook_pre", unit = 10, steps = 30, lr = 0.01, seq_len = 3 })
      spec.same(o.ids:shape(), { 3 }, f.name)
      spec.truthy(o.final_activation > o.initial_activation, f.name .. " activation rose")
      spec.eq(o.layers_run, 1, f.name .. " stops after block 0")
    end
    local o = actmax.optimize(m, { hidden_state = 3, unit = m.d_model - 1, steps = 2 })
    spec.eq(o.neighbour_unit, m.d_model - 2)
    spec.eq(o.layers_run, -1, "hidden_states[n_layer] runs the whole model (ln_f)")
    local last = actmax.optimize(m, { site = "blocks.2.mlp.hook_post", unit = 0, steps = 2 })
    spec.eq(last.layers_run, 3, "a site in the last block skips ln_f and the head")
    local bert = actmax.optimize(fixture["bert-tiny"].m, { hidden_state = -1, unit = 0, steps = 2 })
    spec.eq(bert.layers_run, 2, "BERT's last hidden state is its last block's output")
  end)
  spec.it("decodes tokens and text when the model has a tokenizer", function()
    local o = actmax.optimize(gpt2, { unit = 5, steps = 5 })
    spec.eq(o.site, "hidden_states[8]", "course default on 12 layers")
    spec.eq(#o.tokens, 5)
    spec.eq(o.text, gpt2:decode(o.ids))
  end)
end)

spec.describe("actmax.repeat", function()
  local m = fixtures[1].m
  local r = actmax["repeat"](m, { n = 4, steps = 20, hidden_state = 2, unit = 7, lr = 0.01, seed = 3 })
  spec.it("gives n x seq_len ids and counts the distinct ones", function()
    spec.same(r.ids:shape(), { 4, 5 })
    spec.same(r.similarity:shape(), { 4, 5 })
    spec.same(r.activation:shape(), { 20, 4 })
    spec.eq(r.total, 20)
    local seen, unique = {}, 0
    for _, id in ipairs(r.ids:flatten():tolist()) do
      if not seen[id] then seen[id], unique = true, unique + 1 end
    end
    spec.eq(r.unique, unique)
    spec.truthy(r.final_activation:gt(r.initial_activation):all(), "every start rose")
  end)
  spec.it("row 0 is optimize's run from the same seed", function()
    local o = actmax.optimize(m, { steps = 20, hidden_state = 2, unit = 7, lr = 0.01, seed = 3 })
    spec.truthy(o.activation:allclose(r.activation:select(1, 0), 1e-4, 1e-5), "same curve")
    spec.truthy(o.ids:equal(r.ids[0]), "same ids")
  end)
  spec.it("lists tokens per start with a tokenizer", function()
    local o = actmax["repeat"](gpt2, { n = 2, steps = 3, unit = 1, seq_len = 3 })
    spec.eq(#o.tokens, 2)
    spec.eq(#o.tokens[1], 3)
  end)
end)

spec.describe("actmax.sample", function()
  local m = fixtures[1].m
  local stream = tensor.arange(1, 600) % m.vocab_size
  local opts = { hidden_state = 2, unit = 4, batch = 3, seq_len = 16, samples = 12, seed = 9 }
  local r = actmax.sample(m, stream, opts)
  spec.it("counts one winner per sample, most first", function()
    spec.eq(r.total, 12)
    spec.eq(r.counts:sum():item(), 12)
    spec.eq(r.ids:numel(), r.counts:numel())
    spec.same(r.winners:shape(), { 12 })
    spec.same(r.starts:shape(), { 12, 3 })
    local counts = r.counts:tolist()
    for i = 2, #counts do spec.truthy(counts[i - 1] >= counts[i], "sorted by count") end
  end)
  spec.it("each winner is the token at the unit's maximum over the sample's windows", function()
    local offsets = tensor.arange(16)
    for i = 0, 11 do
      local windows = stream:index(0, (r.starts[i]:unsqueeze(1) + offsets):flatten()):view({ 3, 16 })
      local act = actmax.activation(m, windows, { hidden_state = 2, unit = 4 })
      local where = act:argmax():item()
      spec.eq(r.winners[i]:item(), windows:flatten()[where]:item(), "sample " .. i)
      spec.near(r.peak[i]:item(), act:max():item(), 1e-5, "peak " .. i)
    end
    spec.truthy(r.starts:ge(0):all() and r.starts:le(600 - 1 - 16):all(), "windows inside the stream")
  end)
  spec.it("is reproducible with a seed", function()
    local again = actmax.sample(m, stream, opts)
    spec.truthy(again.starts:equal(r.starts) and again.winners:equal(r.winners), "same seed")
    local other = actmax.sample(m, stream, { hidden_state = 2, unit = 4, batch = 3, seq_len = 16, samples = 12, seed = 10 })
    spec.falsy(other.starts:equal(r.starts), "another seed")
  end)
  spec.it("takes [1, n] streams and names tokens with a tokenizer", function()
    local text = gpt2:tokenize(("the cat sat on the mat while the dog slept. "):rep(20))
    local o = actmax.sample(gpt2, text:unsqueeze(0), { unit = 2, batch = 2, seq_len = 8, samples = 5 })
    spec.eq(o.counts:sum():item(), 5)
    spec.eq(#o.tokens, o.ids:numel())
    spec.eq(o.tokens[1], gpt2:decode({ o.ids[0]:item() }))
  end)
end)

spec.describe("actmax errors", function()
  local m = fixtures[1].m
  local stream = tensor.arange(100)
  spec.it("names unknown options and conflicting targets", function()
    spec.raises(function() actmax.optimize(m, { unit = 1, stpes = 3 }) end,
      "bad argument #2 to 'optimize' (unknown option 'stpes'")
    spec.raises(function() actmax.optimize(m, { unit = 1, site = "blocks.0.mlp.hook_pre", hidden_state = 1 }) end,
      "options 'site' and 'hidden_state' exclude each other")
    spec.raises(function() actmax.sample(m, stream, { unit = 1, n = 3 }) end, "unknown option 'n'")
  end)
  spec.it("rejects units, hidden states and sites that do not exist", function()
    spec.raises(function() actmax.optimize(m, { hidden_state = 1 }) end,
      "option 'unit': 91 is out of range for the 64 units of hidden_states[1] (0..63)")
    spec.raises(function() actmax.optimize(m, { hidden_state = 1, unit = -1 }) end, "option 'unit' must be >= 0")
    spec.raises(function() actmax.optimize(m, { hidden_state = 4, unit = 1 }) end,
      "option 'hidden_state': 4 is out of range (a 3-layer model has hidden_states[0..3])")
    spec.raises(function() actmax.optimize(m, { hidden_state = -5, unit = 1 }) end, "option 'hidden_state': -5")
    spec.raises(function() actmax.optimize(m, { site = "blocks.0.mlp.hook_pree", unit = 1 }) end,
      "option 'site': unknown hook point 'blocks.0.mlp.hook_pree' (did you mean")
    spec.raises(function() actmax.optimize(m, { site = "blocks.0.mlp.hook_pre", unit = 256, steps = 1 }) end,
      "option 'unit': 256 is out of range for the 256 units of blocks.0.mlp.hook_pre (0..255)")
    spec.raises(function() actmax.optimize(m, { site = "blocks.0.attn.hook_pattern", unit = 1 }) end,
      "actmax needs a site shaped [batch, pos, ...]")
    spec.raises(function() actmax.optimize(m, { site = "hook_embed", unit = 1, steps = 1 }) end,
      "a pass from input embeddings skips the token-embedding lookup")
    spec.raises(function() actmax.activation(m, ids, { site = "blocks.0.mlp.hook_pre", unit = 300 }) end,
      "bad argument #3 to 'activation' (option 'unit': 300 is out of range")
  end)
  spec.it("checks sizes, steps and rates", function()
    spec.raises(function() actmax.optimize(m, { unit = 1, hidden_state = 1, seq_len = 0 }) end,
      "option 'seq_len' must be in 1..64, got 0")
    spec.raises(function() actmax.optimize(m, { unit = 1, hidden_state = 1, seq_len = 65 }) end,
      "option 'seq_len' must be in 1..64, got 65")
    spec.raises(function() actmax.optimize(m, { unit = 1, hidden_state = 1, steps = 0 }) end,
      "option 'steps' must be >= 1, got 0")
    spec.raises(function() actmax.optimize(m, { unit = 1, hidden_state = 1, lr = 0 }) end, "option 'lr' must be a number > 0")
    spec.raises(function() actmax.optimize(m, { unit = 1, hidden_state = 1, lambda = -1 }) end,
      "option 'lambda' must be a number >= 0")
    spec.raises(function() actmax.optimize(m, { unit = 1, hidden_state = 1, seed = -2 }) end, "option 'seed' must be >= 0")
    spec.raises(function() actmax.optimize(m, { unit = 1, hidden_state = 1, steps = 2.5 }) end,
      "option 'steps': number has no integer representation")
    spec.raises(function() actmax["repeat"](m, { unit = 1, hidden_state = 1, n = 0 }) end, "option 'n' must be >= 1, got 0")
    spec.raises(function() actmax.sample(m, stream, { unit = 1, hidden_state = 1, batch = 0 }) end,
      "option 'batch' must be >= 1, got 0")
    spec.raises(function() actmax.sample(m, stream, { unit = 1, hidden_state = 1, samples = 0 }) end,
      "option 'samples' must be >= 1, got 0")
  end)
  spec.it("checks the token stream", function()
    spec.raises(function() actmax.sample(m, stream, { unit = 1, hidden_state = 1, seq_len = 65 }) end,
      "bad argument #3 to 'sample' (option 'seq_len' must be in 1..64, got 65)")
    spec.raises(function() actmax.sample(m, tensor.arange(30), { unit = 1, hidden_state = 1, seq_len = 31 }) end,
      "the token stream has 30 tokens, fewer than seq_len 31")
    spec.raises(function() actmax.sample(m, tensor.arange(100):float(), { unit = 1, hidden_state = 1, seq_len = 8 }) end,
      "token ids must be an integer tensor")
    spec.raises(function() actmax.sample(m, tensor.arange(100):view({ 2, 50 }), { unit = 1, hidden_state = 1, seq_len = 8 }) end,
      "token ids must be [n] or [1, n], got 2-D")
    spec.raises(function() actmax.sample(m, tensor.arange(2000), { unit = 1, hidden_state = 1, seq_len = 8 }) end,
      "token id 1999 is out of range (vocab_size is 1000)")
  end)
end)

spec.finish()
