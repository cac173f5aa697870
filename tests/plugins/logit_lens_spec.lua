-- The logit_lens plugin against the Lua DSL on the same activations: each hidden state through
-- m:unembed (with and without the final norm), the course's raw hidden_states[l] @ W^T, log-softmax,
-- top tokens, KL from the output, a target's rank, log-probability and z-score; the last row is
-- the model's own output; on the random GPT-2 with its tokenizer, the Pythia and Llama fixtures,
-- and a random BERT (full prediction head vs the decoder alone); bad options are errors.
-- args: GOLDEN_DIR RANDOM_GPT2_DIR RANDOM_BERT_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2, random_bert = arg[1], arg[2], arg[3]
local lens = plugin("logit_lens")

local function max_diff(a, b) return (a:double() - b:double()):abs():max():item() end

-- The lens input of each layer as the plugin defines it, and the reference log-probabilities.
local function reference(m, ids, full_head)
  local last = "blocks." .. (m.n_layer - 1) .. ".hook_resid_post"
  local model_logits, out = m:forward(ids:unsqueeze(0), { hidden_states = true })
  local _, cache = m:run_with_cache(ids:unsqueeze(0), { names = last })
  local rows = {}
  for l = 0, m.n_layer do
    local h = out.hidden_states[l][0]
    if l == m.n_layer and full_head and m.is_causal then h = cache[last][0] end
    rows[l] = m:unembed(h, { full_head = full_head }):double()
  end
  return rows, model_logits
end

local function expect_lens(m, ids, full_head, what)
  local target = ids:narrow(0, 1, ids:numel() - 1)
  target = tensor.cat({ target, ids:narrow(0, 0, 1) }, 0)   -- each position's next token (wrapped)
  local res = lens.lens(m, ids, { full_head = full_head, k = 4, target = target })
  local logits, model_logits = reference(m, ids, full_head)
  local final = model_logits[0]:double():log_softmax(-1)
  spec.eq(res.layers, m.n_layer + 1, what .. ": layers")
  for l = 0, m.n_layer do
    local lp = logits[l]:log_softmax(-1)
    local values = lp:topk(4, -1)
    spec.truthy(max_diff(res.top_logprobs[l], values) < 1e-9, what .. ": top log-probabilities at " .. l)
    local kl = (final:exp() * (final - lp)):sum(-1)
    spec.truthy(max_diff(res.kl[l], kl) < 1e-9, what .. ": KL at " .. l)
    for p = 0, ids:numel() - 1 do
      local t = target[p]:item()
      local row = logits[l][p]
      spec.eq(res.target_rank[l][p]:item(), row:gt(row[t]):sum():item(), what .. ": rank")
      spec.near(res.target_logprob[l][p]:item(), lp[p][t]:item(), 1e-9, what .. ": target log-probability")
      spec.near(res.target_z[l][p]:item(), ((row[t] - row:mean()) / row:std()):item(), 1e-9, what .. ": z")
    end
  end
  -- The last row is the model's own output distribution, with or without a causal LM's final norm
  -- (its last hidden state is already normalised); a masked LM's decoder alone is not its head.
  local ends_at_output = res.kl[m.n_layer]:abs():max():item() < 1e-6
  spec.eq(ends_at_output, full_head or m.is_causal, what .. ": the last row is the model's output")
  return res
end

spec.describe("logit_lens.lens on the random GPT-2", function()
  local m = model.load(random_gpt2)
  local ids = m:tokenize("The way you do anything is the way you do everything")

  spec.it("equals m:unembed of every hidden state, with and without the final norm", function()
    expect_lens(m, ids, true, "full head")
    local raw = expect_lens(m, ids, false, "raw")
    spec.eq(raw.full_head, false)
    spec.same(raw.top_ids:shape(), { m.n_layer + 1, ids:numel(), 4 })
  end)

  spec.it("the raw lens is the course's hidden_states[l] @ wte^T", function()
    local _, out = m:forward(ids:unsqueeze(0), { hidden_states = true })
    local wte = m:parameter("transformer.wte.weight")
    local res = lens.lens(m, ids, { full_head = false, k = 1 })
    for l = 0, m.n_layer do
      local top = out.hidden_states[l][0]:matmul(wte:t()):argmax(-1)
      spec.truthy(top:eq(res.top_ids[l]:select(-1, 0)):all(), "top token at hidden state " .. l)
    end
  end)

  spec.it("takes one target for every position, as a token text", function()
    local res = lens.lens(m, ids, { target = " way" })
    spec.eq(res.target:numel(), ids:numel())
    spec.eq(res.target[0]:item(), m:tokenize(" way")[0]:item())
    spec.same(res.target_z:shape(), { m.n_layer + 1, ids:numel() })
    spec.same(res.top_ids:shape(), { m.n_layer + 1, ids:numel(), 5 }, "k defaults to 5")
  end)

  spec.it("refuses what it cannot do, naming the option", function()
    spec.raises(function() lens.lens(m, ids, { k = 0 }) end, "option 'k' must be between 1 and the vocabulary size")
    spec.raises(function() lens.lens(m, ids, { target = { 1, 2 } }) end,
      "option 'target': 2 ids for " .. ids:numel() .. " positions")
    spec.raises(function() lens.lens(m, ids, { target = " way you" }) end, "a target must be one token")
    spec.raises(function() lens.lens(m, ids, { norm = true }) end, "unknown option 'norm' (expected full_head, k, target)")
    spec.raises(function() m:unembed(tensor.zeros({ 2, 3 })) end, "unembed: expected residual-stream vectors")
  end)
end)

for _, name in ipairs({ "pythia-tiny", "llama-tiny" }) do
  spec.describe("logit_lens.lens on " .. name, function()
    local m, expected = spec.golden(golden_dir, name)
    spec.it("every row through the model's head; the last is the model's output", function()
      local ids = expected.input_ids[0]
      expect_lens(m, ids, true, name .. " full head")
      expect_lens(m, ids, false, name .. " raw")
    end)
  end)
end

spec.describe("logit_lens.lens on a random BERT", function()
  local m = model.load(random_bert)
  local ids = m:tokenize("the way you do anything is the [MASK] you do everything .", { special = true })
  spec.it("the full prediction head and the decoder alone differ, the full head ends at the output", function()
    local full = expect_lens(m, ids, true, "BERT full head")
    local decoder = expect_lens(m, ids, false, "BERT decoder alone")
    spec.truthy(max_diff(full.top_logprobs, decoder.top_logprobs) > 1e-3, "the transform matters")
  end)
end)

spec.finish()
