-- The shared frame of every lesson: options from the command line over the course's defaults,
-- the model, texts, course layers mapped onto the model at hand, and the report's closing
-- sections — what the course found next to what this run found, and the numeric checks.
--
--   local lesson = require("lib.lesson")
--   local L = lesson.start {
--     id = "12-02", title = "Activation maximisation (code)",
--     course = "part5_neurons_activationMaximization (video 186), GPT-2 small",
--     options = { layer = 8, dim = 91, steps = 500 },   -- course defaults; --steps 50 overrides
--   }
--   ...
--   L:finding("Top cosine similarity of a decoded vector", "about 0.17", ("%.2f"):format(best))
--   L:check("activation rose", after > before, ("%.3f -> %.3f"):format(before, after))
--   L:finish()
local lesson = {}

local Lesson = {}
Lesson.__index = Lesson

-- The lessons/ folder, from this file's own path (lessons/lib/lesson.lua).
local function lessons_dir()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = source:match("^(.*)/lib/[^/]*$")
  return dir or "lessons"
end

-- "--key value" and "--flag" pairs from the script's arguments, typed like the defaults.
local function parse_args(args, defaults)
  local given = {}
  local i = 1
  while i <= #args do
    local key = args[i]:match("^%-%-([%w_%-]+)$")
    if not key then error("lesson argument " .. i .. ": expected --name value, got '" .. args[i] .. "'", 0) end
    key = key:gsub("%-", "_")
    local value = args[i + 1]
    if value == nil or value:match("^%-%-[%a]") then
      given[key] = true
      i = i + 1
    else
      given[key] = value
      i = i + 2
    end
  end
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  for key, value in pairs(given) do
    local default = defaults[key]
    if default == nil and key ~= "text" then
      local known = {}
      for k in pairs(defaults) do known[#known + 1] = "--" .. k:gsub("_", "-") end
      table.sort(known)
      error("unknown lesson option --" .. key:gsub("_", "-") .. " (this lesson takes " ..
        (#known > 0 and table.concat(known, ", ") or "no options") .. ", and --text FILE)", 0)
    end
    local kind = type(default)
    if kind == "number" then
      local n = tonumber(value)
      if not n then error("option --" .. key .. ": expected a number, got '" .. tostring(value) .. "'", 0) end
      if math.type(default) == "integer" then
        if math.type(n) ~= "integer" and n ~= math.floor(n) then
          error("option --" .. key .. ": expected an integer, got '" .. tostring(value) .. "'", 0)
        end
        n = math.tointeger(n) or math.floor(n)
      end
      opts[key] = n
    elseif kind == "boolean" then
      opts[key] = value == true or value == "true" or value == "1" or value == "yes"
    elseif kind == "table" then
      -- Comma-separated lists: --rates 0.1,0.5
      local list = {}
      for item in tostring(value):gmatch("[^,]+") do list[#list + 1] = tonumber(item) or item end
      opts[key] = list
    else
      opts[key] = value
    end
  end
  return opts
end

-- Starts a lesson: parses options, loads the model (unless spec.model == false), titles the report.
function lesson.start(spec)
  assert(type(spec) == "table" and spec.id and spec.title, "lesson.start{ id =, title = } expected")
  local self = setmetatable({}, Lesson)
  self.id, self.title, self.course = spec.id, spec.title, spec.course
  self.opts = parse_args(arg or {}, spec.options or {})
  self.findings, self.checks = {}, {}
  self.dir = lessons_dir()
  if spec.model ~= false then self.model = model.load() end
  report.title(spec.id .. " " .. spec.title)
  local intro = {}
  if spec.course then intro[#intro + 1] = "Course notebook: " .. spec.course .. "." end
  if self.model then intro[#intro + 1] = "Model in this run: `" .. tostring(self.model) .. "` from `" ..
      tostring(self.model.source) .. "`." end
  if spec.summary then intro[#intro + 1] = spec.summary end
  local shown = {}
  for k, v in pairs(self.opts) do
    shown[#shown + 1] = k .. " = " .. (type(v) == "table" and table.concat(v, ",") or tostring(v))
  end
  table.sort(shown)
  if #shown > 0 then intro[#intro + 1] = "Options: `" .. table.concat(shown, "`, `") .. "`." end
  report.text(table.concat(intro, "\n\n"))
  report.set({ lesson = spec.id })
  return self
end

-- States, near the top of the report, how this run is smaller than the course's (`what`: a Lua
-- array of phrases; nothing is written when it is empty). `course` says what the course does.
function Lesson:reduced(what, course)
  if #what == 0 then return end
  report.text(("Reduced run: %s%s. Drop the options to run at the course's size.")
    :format(table.concat(what, "; "), course ~= "" and ("; " .. course) or ""))
  report.set({ reduced = table.concat(what, "; ") })
end

-- States every size option set below the course's: `course` maps an option name to
-- { course value, what it counts }, e.g. { steps = { 500, "ascent steps" } }. A list option counts
-- its entries.
function Lesson:sizes(course)
  local what, names = {}, {}
  for name in pairs(course) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local value, spec = self.opts[name], course[name]
    local n = type(value) == "table" and #value or value
    if type(n) == "number" and n < spec[1] then
      what[#what + 1] = ("%s %s instead of the course's %s (--%s)"):format(tostring(n), spec[2], tostring(spec[1]),
        (name:gsub("_", "-")))
    end
  end
  self:reduced(what, "")
end

-- A path inside lessons/data/.
function Lesson:data_path(name)
  return self.dir .. "/data/" .. name
end

-- Lines of a lessons/data file, without blank lines and `#` comments.
function Lesson:data_lines(name)
  local path = self:data_path(name)
  local f, err = io.open(path, "r")
  if not f then error("lesson data file " .. path .. ": " .. tostring(err), 0) end
  local lines = {}
  for line in f:lines() do
    line = line:gsub("%s+$", "")
    if line ~= "" and not line:match("^#") then lines[#lines + 1] = line end
  end
  f:close()
  return lines
end

-- The text a lesson reads: --text FILE when given, else the Brown corpus (optionally one
-- category) as plain text. Returns the text and a short description of where it came from.
function Lesson:text(opts)
  opts = opts or {}
  if self.opts.text then
    return corpus.read_text(self.opts.text), "the file " .. self.opts.text
  end
  local brown = corpus.brown()
  local selection = opts.category and { category = opts.category } or nil
  return brown:text(selection), "the Brown corpus" .. (opts.category and (" (" .. opts.category .. ")") or "")
end

-- The text's token ids (1-D int64), at most `max_tokens` of them when given.
function Lesson:tokens(opts)
  opts = opts or {}
  local text, source = self:text(opts)
  if opts.max_chars and #text > opts.max_chars then text = text:sub(1, opts.max_chars) end
  local ids = self.model:tokenize(text, { add_special_tokens = false })  -- one stream, no BOS
  if opts.max_tokens and ids:numel() > opts.max_tokens then ids = ids:narrow(0, 0, opts.max_tokens) end
  return ids, source
end

-- The course's layer `layer` of a `course_layers`-layer model mapped onto this model at the same
-- relative depth (the same layer when the depths match).
function Lesson:layer(layer, course_layers)
  local n = self.model.n_layer
  if course_layers == n then return math.min(layer, n - 1) end
  local mapped = math.floor(layer * n / course_layers + 0.5)
  return math.max(0, math.min(n - 1, mapped))
end

-- Lesson:layer, and when the depths differ a line in the report that says where the course's layer
-- went (`what` names it, e.g. "attention layer"; default "layer").
function Lesson:course_layer(layer, course_layers, what)
  local mapped = self:layer(layer, course_layers)
  if course_layers ~= self.model.n_layer or mapped ~= layer then
    report.text(("The course's %s %d of its %d is %s %d of this model's %d (the same relative depth)."):format(
      what or "layer", layer, course_layers, what or "layer", mapped, self.model.n_layer))
  end
  return mapped
end

-- One row of the closing "course vs this run" table.
function Lesson:finding(what, course, this_run)
  self.findings[#self.findings + 1] = { what, tostring(course), tostring(this_run) }
end

-- A numeric identity or sanity check the lesson verifies; failed checks fail the lesson.
function Lesson:check(what, ok, detail)
  self.checks[#self.checks + 1] = { what, ok and "pass" or "FAIL", tostring(detail or "") }
  log.info(("check %s: %s %s"):format(ok and "passed" or "FAILED", what, detail and ("(" .. detail .. ")") or ""))
  return ok
end

-- Writes the closing sections and raises an error (so the run's status is failed) when a check failed.
function Lesson:finish()
  if #self.findings > 0 then
    report.text("## What the course found and what this run found")
    report.table("Course vs this run", { columns = { "finding", "course", "this run" }, rows = self.findings })
  end
  local failed = {}
  if #self.checks > 0 then
    report.text("## Checks")
    report.table("Checks", { columns = { "check", "result", "detail" }, rows = self.checks })
    for _, c in ipairs(self.checks) do
      if c[2] ~= "pass" then failed[#failed + 1] = c[1] end
    end
  end
  report.save()
  if #failed > 0 then error("lesson check failed: " .. table.concat(failed, "; "), 0) end
end

-- Formats a number for tables and findings.
-- A word's or target's own ids, without the framing tokens (a BOS) a whole input gets: what
-- find_tokens looks for and how many tokens the word itself takes.
function lesson.word_ids(m, text)
  return m:tokenize(text, { add_special_tokens = false })
end

function lesson.fmt(x, digits)
  if x == nil then return "n/a" end
  if type(x) ~= "number" then return tostring(x) end
  if x ~= x then return "NaN" end
  return (("%." .. (digits or 3) .. "g"):format(x))
end

-- The course's unit (a neuron or residual dimension) on a site `width` units wide: the same
-- index when this model has it, else the index modulo the width. Returns the unit and a note
-- for the report (nil when the course's index was kept).
function Lesson:unit(unit, width)
  if unit < width then return unit, nil end
  local mapped = unit % width
  return mapped, ("The course's unit %d does not exist here (%d units), so this run uses %d (= %d mod %d)."):format(
    unit, width, mapped, unit, width)
end

-- Tab-separated pairs from a lessons/data file (blank lines and `#` comments skipped): two
-- lists, the first and the second column of each line, in file order.
function Lesson:data_pairs(name)
  local first, second = {}, {}
  for i, line in ipairs(self:data_lines(name)) do
    local a, b = line:match("^([^\t]+)\t([^\t]+)$")
    if not a then error(("lesson data file %s: line %d is not two tab-separated fields"):format(name, i), 0) end
    first[#first + 1], second[#second + 1] = a, b
  end
  return first, second
end

-- A token heatmap as HTML, `per_line` tokens to a line (the course's 20): `tokens` a Lua array of
-- token strings, `values` [n] already scaled to [0, 1] (red) or [-1, 0] (blue); `title` optional.
function lesson.token_lines(tokens, values, per_line, title)
  local html = { title and ("<h4>" .. title .. "</h4>") or nil }
  for start = 0, #tokens - 1, per_line do
    local count = math.min(per_line, #tokens - start)
    html[#html + 1] = figure.token_heatmap(table.move(tokens, start + 1, start + count, 1, {}),
      values:narrow(0, start, count), { vmax = 1 })
  end
  return table.concat(html, "\n")
end

-- Min-max scaling of a 1-D tensor to [0, 1] (all zeros when it is constant).
function lesson.minmax(values)
  local lo, hi = values:min():item(), values:max():item()
  return (values - lo) / math.max(hi - lo, 1e-12)
end

-- The text of one token id, or "#id" when the model has no tokenizer (the test fixtures).
function Lesson:token_text(id)
  local ok, text = pcall(self.model.decode, self.model, { id })
  return ok and text or ("#" .. id)
end

-- A token for the report's prose and tables: quoted, so a leading space shows, newlines as ↵;
-- "#id" when the model has no tokenizer.
function lesson.token_label(m, id)
  local ok, text = pcall(m.decode, m, { id })
  if not ok then return "#" .. id end
  return '"' .. text:gsub("\n", "↵") .. '"'
end

function Lesson:token_label(id)
  return lesson.token_label(self.model, id)
end

-- A word as it stands inside a sentence: GPT-2-style BPE keeps the leading space with the word
-- (" her"), WordPiece and SentencePiece tokenizers take it bare.
function lesson.mid_sentence(m, word)
  return m.is_causal and (" " .. word) or word
end

return lesson
