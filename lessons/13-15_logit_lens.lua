-- lesson: 13-15 The Logit Lens
-- What would the model say if it stopped at layer l? Every hidden state of one sentence goes through
-- the unembedding: the course's raw version (hidden_states[l] @ lm_head.weight^T, no final norm) and
-- the full head (the final norm first). Per layer: the top token at each position, the next token's
-- log-probability and rank, and the KL divergence from the model's own output.
local lesson = require("lib.lesson")
local setup = require("lib.logit_lens_setup")

local L = lesson.start {
  id = "13-15",
  title = "The Logit Lens",
  course = "part5_layer_logitlens (video 222), GPT-2 small",
  options = {
    prompt = "The way you do anything is the way you do everything",
    k = 5,   -- top tokens kept per layer and position
  },
  summary = "One forward pass keeps every hidden state (0 = the embeddings, then each block's output; the last " ..
    "is after the final norm, as Hugging Face returns it). The `logit_lens` plugin sends each through the " ..
    "model's output head on the model's device and returns only the top tokens, the target's rank, " ..
    "log-probability and z-score, and the KL divergence KL(output || layer) per layer and position. The " ..
    "course's lens is the *raw* one, the hidden state times the unembedding matrix without the final " ..
    "LayerNorm; this run shows it next to the *full head*, which applies the final norm first (the logit " ..
    "lens as nostalgebraist defined it). The target at each position is the next token of the prompt, and " ..
    "at the last position the model's own prediction.",
}
local m = L.model
local lens = plugin("logit_lens")
local causal = m.is_causal

local ids = m:tokenize(L.opts.prompt)
local n = ids:numel()
if n < 2 then error("option --prompt: needs at least two tokens, got " .. n, 0) end
local logits = m:forward(ids:unsqueeze(0))[0]   -- [pos, vocab]
local output_top = logits:argmax(-1)
local targets
if causal then
  targets = tensor.cat({ ids:narrow(0, 1, n - 1), output_top:narrow(0, n - 1, 1) }, 0)
else
  targets = ids:clone()
  report.text("This model is a masked LM: it predicts the token at each position rather than the next one, " ..
    "so the target at each position is the input token itself.")
end

local raw = lens.lens(m, ids, { full_head = false, k = L.opts.k, target = targets })
local full = lens.lens(m, ids, { full_head = true, k = L.opts.k, target = targets })
local layers = raw.layers
local tokens = m:tokens(ids)
local rows_label = {}
for l = 0, layers - 1 do rows_label[#rows_label + 1] = tostring(l) end

-- The course's table: the top token of every hidden state at every position.
local function top_table(res, title)
  local columns, rows = { "hidden state" }, {}
  for p = 1, n do columns[#columns + 1] = ("%d %s"):format(p - 1, lesson.token_label(m, ids[p - 1]:item())) end
  for l = 0, layers - 1 do
    local row = { l }
    for p = 0, n - 1 do row[#row + 1] = lesson.token_label(m, res.top_ids[l][p][0]:item()) end
    rows[#rows + 1] = row
  end
  report.table(title, { columns = columns, rows = rows })
end

report.text(("## The top token per layer\n\nThe prompt %q is %d tokens. Column p holds what hidden state l at " ..
  "position p predicts; a causal model's position p predicts token p + 1."):format(L.opts.prompt, n))
top_table(raw, "Top token per hidden state, raw lens (the course's)")
top_table(full, "Top token per hidden state, full head (final norm first)")

report.text("## The target's log-probability per layer and position")
for _, item in ipairs({ { raw, "raw" }, { full, "full_head" } }) do
  report.figure(figure.heatmap {
    values = item[1].target_logprob, xlabels = tokens, ylabels = rows_label,
    title = ("log P(target), %s lens"):format(item[2] == "raw" and "raw" or "full-head"),
    xlabel = "input token", ylabel = "hidden state", colorbar_label = "log-probability (nats)",
  }, { name = "target_logprob_" .. item[2], caption = "Rows are hidden states (0 = embeddings), columns the " ..
    "prompt's positions; brighter = the target is more likely." })
end

local x = tensor.arange(layers)
local function share_top(res)   -- per layer, the share of positions whose top token is the target
  return res.target_rank:eq(0):double():mean(1)
end
report.figure(figure.line {
  x = x, markers = true,
  series = {
    { y = raw.target_logprob:mean(1), label = "raw lens" },
    { y = full.target_logprob:mean(1), label = "full head" },
  },
  title = "Mean log-probability of the target", xlabel = "hidden state (0 = embeddings)", ylabel = "nats",
}, { name = "mean_target_logprob", caption = "Averaged over the prompt's positions." })
report.figure(figure.line {
  x = x, markers = true,
  series = { { y = raw.kl:mean(1), label = "raw lens" }, { y = full.kl:mean(1), label = "full head" } },
  title = "KL(model output || layer)", xlabel = "hidden state (0 = embeddings)", ylabel = "nats",
}, { name = "kl", caption = "How far each layer's distribution is from the model's output; 0 at the output." })
report.figure(figure.line {
  x = x, markers = true,
  series = { { y = share_top(raw), label = "raw lens" }, { y = share_top(full), label = "full head" } },
  title = "Share of positions whose top token is the target", xlabel = "hidden state (0 = embeddings)",
  ylabel = "share", ylim = { 0, 1 },
}, { name = "target_top1", caption = "The target ranks first at this share of the positions." })

local stats = {}
for l = 0, layers - 1 do
  stats[#stats + 1] = { l, raw.target_logprob[l]:mean():item(), raw.target_rank[l]:double():median():item() + 1,
    raw.kl[l]:mean():item(), full.target_logprob[l]:mean():item(), full.target_rank[l]:double():median():item() + 1,
    full.kl[l]:mean():item() }
end
report.table("Per hidden state, averaged over positions", {
  columns = { "hidden state", "raw: mean log P", "raw: median rank (1 = top)", "raw: mean KL", "full: mean log P",
    "full: median rank (1 = top)", "full: mean KL" },
  rows = stats,
})

-- What the course reports: early layers give junk or function words, late layers converge on the next
-- token. Measured here: how often hidden state 0 predicts its own input token (the embedding read back),
-- and from which hidden state on the lens agrees with the output at most positions.
local own = raw.top_ids[0]:select(-1, 0):eq(ids):sum():item()
local function converged_from(res)
  local agree = res.top_ids:select(-1, 0):eq(output_top:unsqueeze(0)):double():mean(1)   -- [layers]
  local from = layers - 1
  for l = layers - 1, 0, -1 do
    if agree[l]:item() >= 0.5 then from = l else break end
  end
  return from
end
local early = math.max(1, layers // 3)
local early_share = share_top(raw):narrow(0, 0, early):mean():item()
local last_share = share_top(raw)[layers - 1]:item()
L:finding("early layers output junk or function words",
  "yes", ("hidden state 0 (raw) predicts its own input token at %d of %d positions; the target is the top token " ..
    "at %.0f%% of positions %s vs %.0f%% at the output"):format(own, n, 100 * early_share,
    early == 1 and "at hidden state 0" or ("over hidden states 0–" .. (early - 1)), 100 * last_share))
L:finding("late layers converge on the next token", "yes",
  ("the top token agrees with the output at ≥ half the positions from hidden state %d (raw) / %d (full head) of " ..
    "%d; mean KL %.3g → %.3g (raw)"):format(converged_from(raw), converged_from(full), layers - 1,
    raw.kl[0]:mean():item(), raw.kl[layers - 1]:mean():item()))

local middle = (layers - 1) // 2
local diff_raw = setup.lua_difference(m, raw, middle)
local diff_full = setup.lua_difference(m, full, middle)
L:check(("the plugin equals m:unembed + log-softmax in Lua at hidden state %d, raw and full (1e-9)"):format(middle),
  diff_raw < 1e-9 and diff_full < 1e-9, ("max |difference| %s, %s"):format(lesson.fmt(diff_raw), lesson.fmt(diff_full)))
local final_kl = full.kl[layers - 1]:abs():max():item()
L:check("the full head's last row is the model's output (KL < 1e-6)", final_kl < 1e-6, lesson.fmt(final_kl))
if causal then
  local raw_kl = raw.kl[layers - 1]:abs():max():item()
  L:check("the raw lens's last row is the output too: HF's last hidden state is already normalised (KL < 1e-6)",
    raw_kl < 1e-6, lesson.fmt(raw_kl))
end
local gap = (raw.top_logprobs[0] - full.top_logprobs[0]):abs():max():item()
L:check("the final norm changes what hidden state 0 predicts (raw and full differ)", gap > 1e-3, lesson.fmt(gap))
L:check("the output's top token is the last row's top-1", full.top_ids[layers - 1]:select(-1, 0):eq(output_top):all())
L:finish()
