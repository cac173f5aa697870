-- lesson: 16-01 Head ablation and token prediction
-- Silence one attention head (its output zeroed before the output projection) and watch the
-- prediction of "Berlin is the capital of": does the right country lose probability, and does the
-- prediction change?
local lesson = require("lib.lesson")
local setup = require("lib.heads_setup")

local L = lesson.start {
  id = "16-01",
  title = "Head ablation and token prediction",
  course = "part6_attention_ablateHeadTokenPrediction (video 258), GPT-2 small, a pre-hook on h[5].attn.c_proj",
  options = {
    prompt = "Berlin is the capital of",
    target = "Germany",
    foil = "France",
    layer = -1,   -- -1: the course's layer 5 of 12 at the same relative depth
  },
  summary = "The course reshapes the input of `h[5].attn.c_proj` to [batch, pos, 12, 64] and zeroes one head; " ..
    "that input is `blocks.5.attn.hook_z` here. The `heads` plugin ablates each head of the layer in its own " ..
    "row of one batched pass (zeroed at every position) and reads the next-token log-probabilities of the " ..
    "target and the foil at the last position.",
}
local m = L.model
local heads = plugin("heads")
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(5, 12)
local target, foil, input, readout = setup.read(L, m)

local r = heads.ablate(m, input, { layers = { layer }, targets = { target, foil }, position = readout })
local n_head = r.n_head
local clean_t, clean_f = r.clean_logprobs[0]:item(), r.clean_logprobs[1]:item()
local lp_t, lp_f = r.logprobs[0]:select(1, 0), r.logprobs[0]:select(1, 1)   -- [heads]
local rows = { { "none (clean)", clean_t, clean_f, clean_t - clean_f, L:token_label(r.clean_top) } }
for h = 0, n_head - 1 do
  rows[#rows + 1] = { ("head %d"):format(h), lp_t[h]:item(), lp_f[h]:item(), (lp_t[h] - lp_f[h]):item(),
    L:token_label(r.top_ids[0][h]:item()) }
end
report.table(("Layer %d, each head zeroed"):format(layer), {
  columns = { "ablated", "log P(" .. L.opts.target .. ")", "log P(" .. L.opts.foil .. ")", "difference", "top token" },
  rows = rows,
})
report.figure(figure.bar {
  categories = (function()
    local c = {}
    for h = 0, n_head - 1 do c[#c + 1] = tostring(h) end
    return c
  end)(),
  series = { { values = lp_t - clean_t, label = L.opts.target }, { values = lp_f - clean_f, label = L.opts.foil } },
  title = ("Change in log-probability when one head of layer %d is zeroed"):format(layer),
  xlabel = "head", ylabel = "Δ log P",
}, { name = "delta_logprob", caption = "Negative: the head's output supported the token." })

local worst = (lp_t - clean_t):argmin():item()
local kept = r.top_ids[0]:eq(r.clean_top):sum():item()
L:finding("ablating a head suppresses the target's log-probability", "suppressed",
  ("the largest drop is %s nats (head %d); the mean change over heads %s"):format(
    lesson.fmt((lp_t[worst] - clean_t):item()), worst, lesson.fmt((lp_t - clean_t):mean():item())))
L:finding("the prediction stays categorically correct", "yes",
  ("the top token stays %s after %d of %d ablations; the target beats the foil after %d of %d"):format(
    L:token_label(r.clean_top), kept, n_head, (lp_t - lp_f):gt(0):sum():item(), n_head))

-- Check: one ablation written as a Lua hook gives the same log-probabilities.
local site = ("blocks.%d.attn.hook_z"):format(layer)
local ids = type(input) == "string" and m:tokenize(input) or input
local logits = m:forward(ids:unsqueeze(0), { hooks = { [site] = function(z)
  local out = z:clone()
  out:select(2, worst):zero_()
  return out
end } })
local lp = logits[0][readout]:double():log_softmax(-1)
local diff = math.max(math.abs(lp[target]:item() - lp_t[worst]:item()), math.abs(lp[foil]:item() - lp_f[worst]:item()))
L:check("the plugin's ablation equals the same ablation as a Lua hook (1e-6)", diff < 1e-6, lesson.fmt(diff))
L:finish()
