-- What the patching lessons share (15-05, 16-06, 16-07): indirect-object sentence pairs built from
-- lessons/data/ioi_templates.txt and the names of lessons/data/names.txt that the model reads as one
-- token, so that a clean and a corrupted sentence always have the same length.
local lesson = require("lib.lesson")
local setup = {}

-- The names that are one token after a space (without one on a masked model), in file order.
function setup.names(L, m)
  local out = {}
  for _, name in ipairs(L:data_lines("names.txt")) do
    local ids = m:tokenize(lesson.mid_sentence(m, name), { add_special_tokens = false })
    if ids:numel() == 1 then out[#out + 1] = name end
  end
  if #out < 2 then error("fewer than two names of lessons/data/names.txt are one token on this model", 0) end
  return out
end

-- A clean/corrupted pair from template `t` and names a, b: the clean sentence repeats a (so the
-- answer is b), the corrupted one repeats b; metric = { b, a } as tokens, so the metric
-- logit(b) − logit(a) is positive on the clean run and negative on the corrupted one.
function setup.pair(m, t, a, b)
  local clean = (t:gsub("{A}", a):gsub("{B}", b))
  -- The second {A} becomes b: the same names in the same places but the repeated one.
  local corrupted = (t:gsub("^(.-){A}(.-){B}(.-){A}", function(p, q, r) return p .. a .. q .. b .. r .. b end))
  local wa, wb = lesson.mid_sentence(m, a), lesson.mid_sentence(m, b)
  return { clean = clean, corrupted = corrupted, a = wa, b = wb, metric = { wb, wa } }
end

-- The course's sentence (the first template) with the course's names when both are one token here,
-- else the first two names that are.
function setup.course_pair(L, m, names)
  local templates = L:data_lines("ioi_templates.txt")
  local one = {}
  for _, n in ipairs(names) do one[n] = true end
  local a, b = L.opts.name_a, L.opts.name_b
  if not (one[a] and one[b]) then
    report.text(("%s and %s are not both one token on this model; this run uses %s and %s."):format(a, b, names[1],
      names[2]))
    a, b = names[1], names[2]
  end
  return setup.pair(m, templates[1], a, b)
end

-- `count` pairs over the templates and random name pairs (seeded), for statistics.
function setup.many(L, m, names, count, seed)
  local templates = L:data_lines("ioi_templates.txt")
  local out = {}
  local r = tensor.rand({ count, 2 }, { seed = seed })
  for i = 0, count - 1 do
    local ia = math.floor(r[i][0]:item() * #names) + 1
    local ib = math.floor(r[i][1]:item() * (#names - 1)) + 1
    if ib >= ia then ib = ib + 1 end
    out[#out + 1] = setup.pair(m, templates[i % #templates + 1], names[ia], names[ib])
  end
  return out
end

return setup
