-- The `corpus` module on the hand-made fixture tests/golden/corpus/brown-mini (three documents
-- in NLTK's Brown format) and, when scripts/fetch-corpus has run, on the real Brown corpus.
-- Runs without a model:
--   llmscope run tests/lua/corpus_spec.lua -- tests/golden
local spec = require("spec")
local describe, it = spec.describe, spec.it
local eq, same, raises, truthy = spec.eq, spec.same, spec.raises, spec.truthy

local golden_dir = arg[1] or "tests/golden"
local mini = corpus.brown(golden_dir .. "/corpus/brown-mini")

describe("corpus on the mini fixture", function()
  it("lists categories and documents in file order", function()
    same(mini:categories(), { "editorial", "humor", "news" })
    same(mini:documents(), { "ca01", "cb01", "cr01" })
    same(mini:documents({ category = "news" }), { "ca01" })
    same(mini:documents({ category = { "humor", "news" } }), { "ca01", "cr01" })
    same(mini:documents({ document = { "cr01", "cb01" } }), { "cb01", "cr01" })
    eq(mini:category("cr01"), "humor")
    truthy(tostring(mini):find("Corpus(3 documents, 3 categories, 125 words", 1, true), tostring(mini))
  end)

  it("counts words with # and :size()", function()
    eq(#mini, 125)
    eq(mini:size(), 125)
    eq(mini:size({ category = "news" }), 64)
    eq(#mini:words(), 125)
    eq(#mini:tags({ document = "cr01" }), 32)
  end)

  it("gives sentences as arrays of words, '/' inside words kept", function()
    local s = mini:sentences({ document = "cb01" })
    eq(#s, 3)
    same(s[3], { "What", "did", "he", "say", "?" })
    same(s[2], { "The", "'", "Met", "'", "is", "back", "/", "forward", ",", "says", "the", "critic", "." })
    local ca = mini:sentences({ category = "news" })
    eq(#ca, 5)
    eq(ca[2][6], "1-1/2")
    eq(ca[2][9], "and/or")
  end)

  it("gives tagged sentences as {word, tag} pairs with the file's tags", function()
    local t = mini:tagged_sentences({ document = "ca01" })
    same(t[1][2], { "Fulton", "np-tl" })
    same(t[1][11], { "Atlanta's", "np$" })
    same(t[2][4], { "not", "*" })
    same(t[2][11], { "wasn't", "bedz*" })
    same(mini:tagged_sentences({ document = "cb01" })[2][7], { "/", "in" })
    same(mini:tags({ document = "cb01" }), {
      "nn-tl", "nn", "vbd", "ap", "nn", "(", "cc", "dti", "jj", ")", ".",
      "at", "'", "np", "'", "bez", "rb", "in", "rb", ",", "vbz", "at", "nn", ".",
      "wdt", "dod", "pps", "vb", ".",
    })
  end)

  it("renders plain text that reads like English", function()
    eq(mini:text({ document = "cb01" }),
      "Assembly session brought much good (and some bad). The 'Met' is back / forward, says the critic.\n" ..
      "What did he say?\n")
    local news = mini:text({ category = "news" })
    truthy(news:find('produced "no evidence" that any irregularities took place.\n', 1, true), news)
    truthy(news:find("\nMerger proposed\nHowever, the jury said", 1, true), news)
    truthy(news:find([[It said: "Don't worry."]], 1, true), news)
    eq(mini:text(), mini:text({ document = "ca01" }) .. "\n" .. mini:text({ document = "cb01" }) .. "\n" ..
      mini:text({ document = "cr01" }))
    eq(corpus.detokenize({ "``", "Hello", ",", "''", "he", "said", "." }), '"Hello," he said.')
    eq(corpus.detokenize({ "I", "do", "n't", "know", "(", "yet", ")", "!" }), "I don't know (yet)!")
  end)

  it("splits documents deterministically", function()
    local train, validation = mini:split({ every = 2 })
    same(train, { "ca01", "cr01" })
    same(validation, { "cb01" })
    local all, none = mini:split()
    eq(#all, 3)
    eq(#none, 0)
  end)

  it("lists words by tag, most frequent first", function()
    local nouns, counts = mini:words_with_tag("nn")
    eq(nouns[1], "jury")
    eq(counts[1], 3)
    eq(#nouns, 14)
    eq(nouns[2], "Assembly") -- nn-tl counts as nn; ties in byte order
    local lower, n = corpus.words_with_tag("nn", { corpus = mini, lower = true, min_count = 2 })
    same(lower, { "jury" })
    same(n, { 4 })
    same(mini:words_with_tag("nn", { modifiers = true, category = "news", limit = 2 }), { "jury", "election" })
    -- '-', '*', '+' and '$' are magic in Lua patterns: escape them with '%'.
    same(mini:words_with_tag("nn%-tl", { modifiers = true }), { "Assembly", "County", "Jury" })
    same(mini:words_with_tag("nn-tl", { modifiers = true }), {}) -- 'n-' means "any number of n"
    same(mini:words_with_tag("np%$"), { "Atlanta's" })
    same(mini:words_with_tag("%*"), { "not" })
    same(mini:words_with_tag("vbn?", { document = "cb01" }), { "say" }) -- vb or vbn; not vbd, vbz
    same(mini:words_with_tag("vb.?", { document = "cb01" }), { "brought", "say", "says" })
    same(mini:words_with_tag("^np$", { document = "cb01" }), { "Met" })
  end)

  it("reads text files", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("\239\187\191caf\195\169\r\nline two\n")
    f:close()
    eq(corpus.read_text(path), "caf\195\169\nline two\n")
    os.remove(path)
  end)

  it("raises errors like the other modules", function()
    raises(function() corpus.brown("/nonexistent/brown") end,
      "/nonexistent/brown: Brown corpus folder not found (scripts/fetch-corpus fetches it)")
    raises(function() corpus.read_text("/nonexistent.txt") end, "/nonexistent.txt: file not found")
    raises(function() corpus.read_text() end, "bad argument #1 to 'read_text' (string expected, got no value)")
    raises(function() mini:sentences({ categry = "news" }) end,
      "bad argument #1 to 'sentences' (unknown option 'categry' (expected category, document))")
    raises(function() mini:documents({ category = "newz" }) end,
      "unknown category 'newz' (did you mean 'news'?); the categories are editorial, humor, news")
    raises(function() mini:words({ document = "zz99" }) end, "unknown document 'zz99'")
    raises(function() mini:documents({ category = 5 }) end,
      "option 'category' must be a string or an array of strings, got number")
    raises(function() mini:words_with_tag("nn%") end,
      "bad argument #1 to 'words_with_tag' (bad tag pattern 'nn%': malformed pattern (ends with '%'))")
    raises(function() mini:split({ every = 1 }) end, "option 'every' must be at least 2")
    raises(function() corpus.words_with_tag("nn", { corpus = 5 }) end, "option 'corpus' must be a corpus, got number")
    raises(function() mini.words(5) end, "bad argument #1 to 'words' (corpus expected, got number)")
  end)
end)

describe("corpus on the real Brown corpus", function()
  local ok, brown = pcall(corpus.brown)
  if not ok then
    print("[SKIP] the Brown corpus is not fetched (run scripts/fetch-corpus): " .. tostring(brown))
    return
  end

  it("has 500 documents in 15 categories and 1,161,192 words", function()
    eq(#brown:documents(), 500)
    same(brown:categories(), {
      "adventure", "belles_lettres", "editorial", "fiction", "government", "hobbies", "humor", "learned",
      "lore", "mystery", "news", "religion", "reviews", "romance", "science_fiction",
    })
    eq(#brown, 1161192)
    eq(#brown:documents({ category = "news" }), 44)
    eq(#brown:documents({ category = "science_fiction" }), 6)
    eq(brown:documents()[1], "ca01")
    eq(brown:documents()[500], "cr09")
    eq(#brown:sentences(), 57340)
  end)

  it("reads the first news story as English", function()
    local text = brown:text({ document = "ca01" })
    local first = 'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary ' ..
      'election produced "no evidence" that any irregularities took place.'
    eq(text:sub(1, #first + 1), first .. "\n")
  end)

  it("holds out every 10th document", function()
    local train, validation = brown:split()
    eq(#train, 450)
    eq(#validation, 50)
    eq(validation[1], "ca10")
  end)

  it("lists the most frequent nouns, verbs and proper nouns", function()
    same(brown:words_with_tag("nn", { limit = 2 }), { "time", "man" })
    same(corpus.words_with_tag("vb.?", { limit = 2 }), { "said", "made" })
    local names, counts = brown:words_with_tag("np", { limit = 3 })
    same(names, { "Mr.", "Mrs.", "John" })
    same(counts, { 844, 534, 359 })
  end)
end)

spec.finish()
