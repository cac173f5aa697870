-- lesson: 12-11 CodeChallenge: Activation histograms by token length (part 1)
-- How long are tokens? Each token of a text decoded on its own, counted in characters (a leading
-- space included); the median splits the tokens into shorter, median-length and longer ones.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-11",
  title = "CodeChallenge: Activation histograms by token length (part 1)",
  course = "part5_neurons_CCactivationByLength (video 195), GPT-Neo 125M, the first 8192 tokens of FineWeb",
  options = {
    tokens = 8192,   -- the first tokens of the text, as the course's 8192
  },
  summary = "Every token of the text is decoded on its own with the model's tokenizer and its length " ..
    "counted in characters (UTF-8 code points), a leading space included: `\" the\"` has length 4. The " ..
    "`token_length` plugin does the counting; parts 2 and 3 (lessons 12-12 and 12-13) split the tokens at " ..
    "the median length and compare the MLP activations of the groups.",
}
local m = L.model
L:sizes { tokens = { 8192, "tokens of the text" } }
local tl = plugin("token_length")

local ids, source = L:tokens { max_tokens = L.opts.tokens, max_chars = 16 * L.opts.tokens }
local res = tl.lengths(m, ids, { tokens = L.opts.tokens })
local n, median = res.tokens, res.median
local lengths = res.lengths
local shortest, longest = lengths:min():item(), lengths:max():item()
local shorter, equal, longer = res.group_counts[0]:item(), res.group_counts[1]:item(), res.group_counts[2]:item()

-- Counts of each length from the shortest to the longest.
local categories, counts = {}, {}
for len = shortest, longest do
  categories[#categories + 1] = len == median and (tostring(len) .. " = median") or tostring(len)
  counts[#counts + 1] = lengths:eq(len):sum():item()
end

report.text(("## Token lengths\n\nThe first %d tokens of %s, tokenised by this model's tokenizer. " ..
  "Lengths run from %d to %d characters; the median is %s."):format(n, source, shortest, longest,
  lesson.fmt(median)))
report.figure(figure.bar {
  categories = categories, series = { { values = counts, label = "tokens" } },
  title = ("Token lengths of %d tokens (median %s)"):format(n, lesson.fmt(median)),
  xlabel = "token length (characters, leading space included)", ylabel = "count", legend = "none",
}, { name = "length_counts", caption = "How many tokens have each length. The bar labelled \"median\" marks " ..
  "the median length (the course drew it as a vertical line): the tokens of that bar form their own group, " ..
  "as lengths are integers and many tokens tie with the median." })
report.table("Tokens by length group", {
  columns = { "group", "tokens", "share" },
  rows = {
    { "shorter than the median", shorter, shorter / n },
    { "equal to the median", equal, equal / n },
    { "longer than the median", longer, longer / n },
  },
})
report.table("Token length counts", { columns = { "length", "tokens" }, data = {
  length = tensor.arange(shortest, longest + 1), tokens = counts } })

-- The longest tokens, to see what they are.
local _, order = lengths:topk(math.min(10, n))
local rows, seen = {}, {}
for i = 0, order:numel() - 1 do
  local id = ids[order[i]:item()]:item()
  if not seen[id] then
    seen[id] = true
    rows[#rows + 1] = { id, ("%q"):format(m:decode({ id })), lengths[order[i]:item()]:item() }
  end
end
report.table("Longest tokens", { columns = { "id", "text", "length" }, rows = rows })

-- Checks: the plugin's lengths against Lua's own count of the decoded text, and numpy's median.
local sample = math.min(n, 500)
local mismatches = 0
for i = 0, sample - 1 do
  if lengths[i]:item() ~= utf8.len(m:decode({ ids[i]:item() })) then mismatches = mismatches + 1 end
end
L:check("lengths equal utf8.len of each decoded token", mismatches == 0,
  ("%d of the first %d tokens differ"):format(mismatches, sample))
local sorted = lengths:double():sort()
local numpy_median = n % 2 == 1 and sorted[n // 2]:item() or (sorted[n // 2 - 1]:item() + sorted[n // 2]:item()) / 2
L:check("median as numpy computes it", numpy_median == median, ("%s vs %s"):format(numpy_median, median))
L:check("the three groups hold every token", shorter + equal + longer == n, ("%d + %d + %d = %d"):format(
  shorter, equal, longer, n))

L:finding("Token lengths", "1 to 16 characters", ("%d to %d characters"):format(shortest, longest))
L:finding("Median length", "4", lesson.fmt(median))
L:finding("Tokens equal to the median", "about 1/8", ("%d of %d (1/%.1f)"):format(equal, n, n / math.max(equal, 1)))
L:finding("Tokens shorter / longer than the median", "not reported", ("%d / %d"):format(shorter, longer))
L:finish()
