-- The him/her setup lessons 17-02 and 17-03 share: the pronouns as the model tokenises them, the
-- three test rows made from the --sentence option with their two readout slots (the [MASK]s on a
-- masked model, the token before each pronoun on a causal one), and the baseline-logits figure.
--
--   local setup = require("lib.tlesion_setup")
--   local S = setup.new(m, plugin("tlesion"), L.opts.sentence)
--   tl.lesion(m, S.texts, { targets = { S.her, S.him }, readout = { S.slot_her, S.slot_him }, ... })
local lesson = require("lib.lesson")
local setup = {}

setup.slot_names = { "HER slot", "HIM slot" }

-- A table with
--   causal          m.is_causal
--   her, him        the pronouns as one token mid-sentence (GPT-2's BPE keeps the leading space,
--                   WordPiece does not)
--   full            the sentence with "her" and "him" filled in
--   texts           the three test rows: causal, the sentence three times; masked, the sentence,
--                   then HER masked, then HIM masked (as the course)
--   slot_her, slot_him  0-based positions whose logits are read for each pronoun: on a causal model
--                   the token before the pronoun (its next-token logits predict it), else the [MASK]
function setup.new(m, tl, sentence)
  if not (sentence:find("{her}", 1, true) and sentence:find("{him}", 1, true)) then
    error("option --sentence must hold {her} and {him} where the pronouns go", 0)
  end
  local causal = m.is_causal
  local function word(w) return lesson.mid_sentence(m, w) end
  local function fill(her_text, him_text)
    return (sentence:gsub("{her}", her_text):gsub("{him}", him_text))
  end
  local s = { causal = causal, her = word("her"), him = word("him"), full = fill("her", "him") }
  if causal then
    s.texts = { s.full, s.full, s.full }
    s.slot_her = tl.find(m, { s.full }, s.her)[0]:item() - 1
    s.slot_him = tl.find(m, { s.full }, s.him)[0]:item() - 1
  else
    s.texts = { s.full, fill("[MASK]", "him"), fill("her", "[MASK]") }
    s.slot_her = tl.find(m, { s.texts[2] }, "[MASK]")[0]:item()
    s.slot_him = tl.find(m, { s.texts[3] }, "[MASK]")[0]:item()
  end
  return s
end

-- The MLP width of `m` (the units of blocks.0.mlp.hook_pre), from a one-token pass.
function setup.mlp_units(m)
  local _, cache = m:run_with_cache(tensor.new({ { 0 } }), { names = "blocks.0.mlp.hook_pre", stop_at_layer = 1 })
  return cache["blocks.0.mlp.hook_pre"]:size(-1)
end

-- The lesson option max_units as a count: -1 = 5% of the layer's units (at least 1), 0 = no cap.
function setup.unit_cap(m, max_units)
  if max_units >= 0 then return max_units end
  return math.max(1, math.floor(0.05 * setup.mlp_units(m) + 0.5))
end

-- Why a causal model selects at the pronoun but lesions one token earlier (the report's words).
setup.causal_positions_note = "Selection and lesion positions differ on a causal model. The neurons are " ..
  "selected at the pronoun itself, where the him and her sentences differ; they are lesioned at the token " ..
  "*before* the pronoun, because only that position's output predicts the pronoun (a causal model's activation " ..
  "at the pronoun cannot change its own prediction). Selecting at the token before would not work: the paired " ..
  "sentences are identical up to the pronoun, so every unit has the same activation there in both and no t-test " ..
  "is possible. The lesion therefore tests whether units that carry the pronoun's identity once it is read also " ..
  "drive its prediction one token earlier. On a masked model (BERT) both happen at the [MASK], as in the course."

-- The bar chart of the clean logits of both pronouns at each slot, from `clean` [rows 3, slots
-- (HER, HIM), targets (her, him)]; on a causal model the three rows are one sentence, so only row
-- 0 is shown. `caption` is the figure's caption.
function setup.report_baseline(s, clean, caption)
  local categories, base_her, base_him = {}, {}, {}
  for _, r in ipairs(s.causal and { 0 } or { 0, 1, 2 }) do
    for k = 0, 1 do
      categories[#categories + 1] = (s.causal and "" or ("row " .. r .. " ")) .. setup.slot_names[k + 1]
      base_her[#base_her + 1] = clean[r][k][0]:item()
      base_him[#base_him + 1] = clean[r][k][1]:item()
    end
  end
  report.figure(figure.bar {
    categories = categories,
    series = { { values = base_her, label = ("logit of %q"):format(s.her) },
               { values = base_him, label = ("logit of %q"):format(s.him) } },
    title = "Baseline logits of the two pronouns at each slot", xlabel = "text and slot", ylabel = "logit",
  }, { name = "baseline_logits", caption = caption })
end

return setup
