-- The data every negation lesson (12-21 .. 12-23) starts from: the text's tokens, labelled by the
-- course's negation/affirmation rules, cut into windows with the target at index 90.
local setup = {}

-- Returns { ids, source, labels, negations = [n, 101], affirmations = [n, 101] } for lesson `L`
-- with options max_tokens (0: all) and max_windows (per class, 0: all).
function setup.windows(L, neg)
  local opts = L.opts
  local ids, source = L:tokens {
    max_tokens = opts.max_tokens > 0 and opts.max_tokens or nil,
    max_chars = opts.max_tokens > 0 and 10 * opts.max_tokens or nil,   -- no need to tokenize the rest
  }
  local labels = neg.label(L.model, ids)
  local keep = opts.max_windows > 0 and opts.max_windows or nil
  local w_neg = neg.windows(ids, labels.negations, { max = keep })
  local w_aff = neg.windows(ids, labels.affirmations, { max = keep })
  if w_neg:size(0) < 2 or w_aff:size(0) < 2 then
    error(("lesson %s: %s has %d negation and %d affirmation windows; at least 2 of each are needed")
      :format(L.id, source, w_neg:size(0), w_aff:size(0)), 0)
  end
  local reductions = {}
  if opts.max_tokens > 0 then reductions[#reductions + 1] = ("only the first %d tokens of the text"):format(opts.max_tokens) end
  if keep and (labels.negations:numel() > keep or labels.affirmations:numel() > keep) then
    reductions[#reductions + 1] = ("at most %d windows per class (of %d negations and %d affirmations)")
      :format(keep, labels.negations:numel(), labels.affirmations:numel())
  end
  L:reduced(reductions, "the course uses every window of the whole text")
  return { ids = ids, source = source, labels = labels, negations = w_neg, affirmations = w_aff }
end

return setup
