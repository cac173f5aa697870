-- figure: every plot kind from Lua, saved as PNG and SVG by gnuplot; token heatmaps as HTML;
-- and the argument errors each function gives. Needs gnuplot (scripts/setup installs it).
local spec = require("spec")

-- Figures go to llmscope.out_dir when it exists (so they can be looked at), else to /tmp.
local function writable(dir)
  if dir == nil or dir == "" then return false end
  local probe = dir .. "/.figure_spec_probe"
  local f = io.open(probe, "w")
  if not f then return false end
  f:close()
  os.remove(probe)
  return true
end
local prefix, cleanup
if writable(llmscope.out_dir) then
  prefix = llmscope.out_dir .. "/figure-"
else
  prefix = os.tmpname()
  os.remove(prefix)
  prefix = prefix .. "-"
  cleanup = {}
end
local function out(name)
  local path = prefix .. name
  if cleanup then cleanup[#cleanup + 1] = path end
  return path
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

-- A PNG of width x height, as its IHDR says.
local function check_png(path, width, height)
  local data = read(path)
  spec.eq(data:sub(1, 8), "\137PNG\r\n\26\n", path .. " signature")
  spec.eq(data:sub(13, 16), "IHDR", path .. " IHDR")
  local w, h = string.unpack(">I4I4", data, 17)
  spec.eq(w, width, path .. " width")
  spec.eq(h, height, path .. " height")
end

local function check_svg(path, text)
  local data = read(path)
  spec.truthy(data:find("<svg", 1, true), path .. " has <svg")
  spec.truthy(data:find("</svg>", 1, true), path .. " has </svg>")
  spec.truthy(data:find(text, 1, true), path .. " contains '" .. text .. "'")
end

local x = tensor.linspace(0, 6.28, 100)

spec.describe("figure.line", function()
  spec.it("draws several series with a legend, x optional", function()
    local f = figure.line({
      x = x,
      series = { { y = x:sin(), label = "sin" }, { y = x:cos(), label = "cos" } },
      title = "Waves", xlabel = "x", ylabel = "y",
    })
    spec.eq(f:kind(), "line")
    spec.eq(tostring(f), "figure(line, 'Waves')")
    local path = out("line.png")
    spec.eq(f:save(path), path)
    check_png(path, 900, 600)
    check_svg(f:save(out("line.svg")), "Waves")
  end)
  spec.it("takes bare tensors, tables, per-series x, markers and log axes", function()
    local f = figure.line({
      series = { tensor.arange(1, 20):float(), { y = { 1, 2, 4, 8 }, x = { 1, 2, 3, 4 }, label = "powers" } },
      markers = true, logx = true, logy = true, legend = "top left", width = 500, height = 300, font_size = 10,
      xlim = { 1, 20 }, ylim = { 1, 100 },
    })
    check_png(f:save(out("line-log.png")), 500, 300)
  end)
  spec.it("draws classes of points with their own markers and colours, and dashed lines", function()
    local f = figure.line({
      series = {
        { x = { 1, 2, 3 }, y = { 1, 4, 9 }, label = "significant", marker = "circle", color = "#d62728" },
        { x = { 1.5, 2.5 }, y = { 2, 5 }, label = "not significant", marker = "cross" },
        { x = { 1, 3 }, y = { 3, 3 }, label = "threshold", color = "#808080", dashed = true },
      },
      title = "Classes",
    })
    check_png(f:save(out("line-classes.png")), 900, 600)
    local svg = read(f:save(out("line-classes.svg")))
    spec.truthy(svg:find("not significant", 1, true), "legend entry of the cross series")
    spec.truthy(svg:find("#d62728", 1, true) or svg:find("rgb(214,  39,  40)", 1, true), "the series colour")
  end)
  spec.it("checks its options", function()
    spec.raises(function() figure.line() end, "bad argument #1 to 'line' (table of options expected, got no value)")
    spec.raises(function() figure.line({ series = { x }, titel = "t" }) end,
      "bad argument #1 to 'line' (unknown option 'titel'")
    spec.raises(function() figure.line({}) end, "bad argument #1 to 'line' (option 'series' is required")
    spec.raises(function() figure.line({ series = {} }) end, "option 'series' must be a list of {y = tensor")
    spec.raises(function() figure.line({ series = { "a" } }) end, "(series[1] must be a table or a tensor, got string)")
    spec.raises(function() figure.line({ series = { { 1, "b" } } }) end, "(series[1]: ")
    spec.raises(function() figure.line({ series = { { label = "a" } } }) end, "(series[1].y is required")
    spec.raises(function() figure.line({ series = { { y = x, lable = "a" } } }) end,
      "(series[1]: unknown key 'lable' (expected y, x, label, marker, color, dashed))")
    spec.raises(function() figure.line({ series = { { y = x, marker = "star" } } }) end,
      "figure.line: series 0: unknown marker 'star' (expected circle, square, triangle, diamond, cross or plus)")
    spec.raises(function() figure.line({ series = { { y = x, color = "red" } } }) end,
      "figure.line: series 0: color must be '#rrggbb', got 'red'")
    spec.raises(function() figure.line({ series = { { y = "no" } } }) end,
      "(series[1].y must be a tensor or a table of numbers, got string)")
    spec.raises(function() figure.line({ series = { { y = x, label = {} } } }) end, "series[1].label must be a string")
    spec.raises(function() figure.line({ series = { x }, title = 1 }) end, "option 'title' must be a string, got number")
    spec.raises(function() figure.line({ series = { x }, xlim = { 1 } }) end, "option 'xlim' must be {min, max}")
    spec.raises(function() figure.line({ series = { x }, width = 10 }) end, "option 'width' must be between 64 and 10000")
    spec.raises(function() figure.line({ series = { x }, legend = "middle" }) end, "unknown legend position 'middle'")
    spec.raises(function() figure.line({ series = { x }, x = tensor.arange(3) }) end,
      "figure.line: series 0: x has 3 values but y has 100")
    spec.raises(function() figure.line({ series = { tensor.zeros({ 2, 2 }) } }) end, "1-D tensor expected, got shape [2, 2]")
  end)
end)

spec.describe("figure.scatter", function()
  spec.it("colours points by value with a colour bar and alpha", function()
    local px = tensor.randn({ 3000 }, { seed = 1 })
    local py = px * 0.5 + tensor.randn({ 3000 }, { seed = 2 })
    local f = figure.scatter({ x = px, y = py, color = px, alpha = 0.3, size = 0.8, colorbar_label = "x value",
      title = "Scatter", xlabel = "x", ylabel = "y" })
    spec.eq(f:kind(), "scatter")
    check_png(f:save(out("scatter.png")), 900, 600)
    check_svg(f:save(out("scatter.svg")), "Scatter")
    figure.scatter({ x = { 1, 2, 3 }, y = { 3, 1, 2 }, color = { -1, 0, 1 }, palette = "diverging", vmin = -2, vmax = 2 })
      :save(out("scatter-small.png"))
  end)
  spec.it("checks its options", function()
    spec.raises(function() figure.scatter({ y = x }) end, "bad argument #1 to 'scatter' (option 'x' is required")
    spec.raises(function() figure.scatter({ x = x, y = x, colour = x }) end, "unknown option 'colour'")
    spec.raises(function() figure.scatter({ x = x, y = x, alpha = 2 }) end, "option 'alpha' must be in (0, 1]")
    spec.raises(function() figure.scatter({ x = x, y = x, palette = "jet" }) end,
      "unknown palette 'jet' (expected viridis or diverging)")
    spec.raises(function() figure.scatter({ x = x, y = tensor.zeros({ 3 }) }) end, "x has 100 values but y has 3")
    spec.raises(function() figure.scatter({ x = x, y = x, color = tensor.zeros({ 3 }) }) end,
      "color has 3 values but there are 100 points")
  end)
end)

spec.describe("figure.histogram", function()
  spec.it("overlays series with alpha, by bins or edges, counts or density", function()
    local f = figure.histogram({
      series = { { values = tensor.randn({ 2000 }, { seed = 3 }), label = "N(0,1)" },
                 { values = tensor.randn({ 2000 }, { seed = 4 }) * 0.5 + 1, label = "N(1,0.25)" } },
      bins = 40, density = true, alpha = 0.5, title = "Histogram", xlabel = "value", ylabel = "density",
    })
    spec.eq(f:kind(), "histogram")
    check_png(f:save(out("histogram.png")), 900, 600)
    check_svg(f:save(out("histogram.svg")), "Histogram")
    figure.histogram({ series = { tensor.rand({ 100 }) }, edges = { 0, 0.1, 0.5, 1 }, logy = true })
      :save(out("histogram-edges.png"))
    figure.histogram({ series = { tensor.rand({ 100 }) }, edges = tensor.linspace(0, 1, 5) }):save(out("histogram-t.png"))
  end)
  spec.it("checks its options", function()
    spec.raises(function() figure.histogram({ series = { x }, bins = 1.5 }) end, "option 'bins' must be an integer")
    spec.raises(function() figure.histogram({ series = { x }, bins = 0 }) end, "bins must be between 1 and 100000")
    spec.raises(function() figure.histogram({ series = { x }, edges = { 1 } }) end, "option 'edges' needs at least 2 values")
    spec.raises(function() figure.histogram({ series = { x }, edges = { 1, 0 } }) end, "strictly increasing")
    spec.raises(function() figure.histogram({ series = { { value = x } } }) end, "series[1]: unknown key 'value'")
    spec.raises(function() figure.histogram({ series = { x }, logx = true }) end, "unknown option 'logx'")
    spec.raises(function() figure.histogram({ series = { tensor.zeros({ 0 }) } }) end, "has no finite values")
  end)
end)

spec.describe("figure.heatmap", function()
  spec.it("draws a 2-D tensor with a colour bar, limits, palettes and tick labels", function()
    local values = tensor.randn({ 6, 8 }, { seed = 5 })
    local cols, rows = {}, {}
    for i = 0, 7 do cols[#cols + 1] = "tok" .. i end
    for i = 0, 5 do rows[#rows + 1] = "L" .. i end
    local f = figure.heatmap({ values = values, palette = "diverging", xlabels = cols, ylabels = rows,
      colorbar_label = "logit diff", title = "Heatmap", xlabel = "position", ylabel = "layer" })
    spec.eq(f:kind(), "heatmap")
    check_png(f:save(out("heatmap.png")), 900, 600)
    check_svg(f:save(out("heatmap.svg")), "Heatmap")
    figure.heatmap({ values = tensor.rand({ 40, 40 }), vmin = 0, vmax = 1, title = "viridis" }):save(out("heatmap-v.png"))
  end)
  spec.it("checks its options", function()
    spec.raises(function() figure.heatmap({}) end, "option 'values' is required")
    spec.raises(function() figure.heatmap({ values = x }) end, "2-D tensor [rows, cols] expected, got shape [100]")
    spec.raises(function() figure.heatmap({ values = tensor.zeros({ 2, 2 }), xlabels = "ab" }) end,
      "option 'xlabels' must be a list of strings, got string")
    spec.raises(function() figure.heatmap({ values = tensor.zeros({ 2, 2 }), xlabels = { "a", {} } }) end,
      "(entry 2 is a table)")
    spec.raises(function() figure.heatmap({ values = tensor.zeros({ 2, 2 }), ylabels = { "a" } }) end, "1 ylabels for 2 rows")
    spec.raises(function() figure.heatmap({ values = tensor.zeros({ 2, 2 }), vmin = 1, vmax = 0 }) end,
      "vmin must be below vmax")
    spec.raises(function() figure.heatmap({ values = tensor.zeros({ 2, 2 }), logy = true }) end, "unknown option 'logy'")
  end)
end)

spec.describe("figure.bar", function()
  spec.it("draws grouped bars with a legend", function()
    local f = figure.bar({
      categories = { "embed", "attn", "mlp", "unembed" },
      series = { { values = { 1.0, 2.5, -0.5, 3 }, label = "clean" }, { values = tensor.new({ 0.5, 1, 0.2, 2 }), label = "corrupt" } },
      title = "Bars", ylabel = "effect",
    })
    spec.eq(f:kind(), "bar")
    check_png(f:save(out("bar.png")), 900, 600)
    check_svg(f:save(out("bar.svg")), "Bars")
    figure.bar({ categories = { 0, 1, 2 }, series = { { 3, 1, 2 } } }):save(out("bar-single.png"))
  end)
  spec.it("checks its options", function()
    spec.raises(function() figure.bar({ series = { { 1 } } }) end, "option 'categories' is required")
    spec.raises(function() figure.bar({ categories = { "a" }, series = { { values = { "x" } } } }) end, "series[1].values")
    spec.raises(function() figure.bar({ categories = { "a", "b" }, series = { { 1 } } }) end,
      "series 0 has 1 values for 2 categories")
    spec.raises(function() figure.bar({ categories = { "a" }, series = { { values = { { 1 } } } } }) end,
      "series[1].values must be a list of numbers (1-D)")
  end)
end)

spec.describe("figure.strip", function()
  spec.it("draws one jittered strip per group, reproducibly", function()
    local groups = {
      { values = tensor.randn({ 200 }, { seed = 6 }), label = "heads" },
      { values = tensor.randn({ 150 }, { seed = 7 }) + 1, label = "mlps" },
      { values = tensor.randn({ 100 }, { seed = 8 }) * 2, label = "resid", color = tensor.randn({ 100 }, { seed = 9 }) },
    }
    local f = figure.strip({ groups = groups, jitter = 0.25, seed = 3, alpha = 0.6, size = 0.7, title = "Strips",
      ylabel = "activation", palette = "diverging", colorbar_label = "colour" })
    spec.eq(f:kind(), "strip")
    check_png(f:save(out("strip.png")), 900, 600)
    check_svg(f:save(out("strip.svg")), "Strips")
    local a = read(figure.strip({ groups = groups, seed = 1 }):save(out("strip-a.png")))
    local b = read(figure.strip({ groups = groups, seed = 1 }):save(out("strip-b.png")))
    spec.truthy(a == b, "same seed, same picture")
  end)
  spec.it("checks its options", function()
    spec.raises(function() figure.strip({ groups = { x }, jitter = 1 }) end, "jitter must be in [0, 0.5]")
    spec.raises(function() figure.strip({ groups = { x }, seed = 0.5 }) end, "option 'seed' must be an integer")
    spec.raises(function() figure.strip({ groups = { { values = x, colour = x } } }) end, "groups[1]: unknown key 'colour'")
    spec.raises(function() figure.strip({ groups = { { values = x, color = tensor.zeros({ 2 }) } } }) end,
      "color has 2 values but there are 100 points")
  end)
end)

spec.describe("figure userdata", function()
  spec.it("saves only .png and .svg into existing folders", function()
    local f = figure.line({ series = { x } })
    spec.raises(function() f:save(out("f.jpg")) end, "unsupported figure format '.jpg' (expected .png or .svg)")
    spec.raises(function() f:save(out("missing-folder") .. "/f.png") end, "does not exist")
    spec.raises(function() f:save() end, "bad argument #1 to 'save' (string expected, got no value)")
    spec.raises(function() f.save(42, "x.png") end, "figure expected, got number")
    spec.raises(function() f.kind({}) end, "figure expected, got table")
  end)
end)

spec.describe("figure.token_heatmap", function()
  spec.it("colours tokens by value and escapes them", function()
    local tokens = { "The", " <cat>", " sat", "\n", " &", " \"here\"" }
    local html = figure.token_heatmap(tokens, tensor.new({ 0.1, 2.0, -1.0, 0.0, -2.0, 0.5 }), { title = "Tokens" })
    spec.eq(type(html), "string")
    spec.truthy(html:find("&lt;cat&gt;", 1, true), "escaped token")
    spec.falsy(html:find("<cat>", 1, true), "no raw markup")
    spec.truthy(html:find("&quot;here&quot;", 1, true), "escaped quotes")
    spec.truthy(html:find("\226\134\181", 1, true), "newline shown as ↵")
    spec.truthy(html:find("title=\"[1]  &lt;cat&gt; = 2\"", 1, true), "tooltip with position and value")
    spec.truthy(html:find("background:rgb(103,0,31)", 1, true), "the largest value is the darkest red")
    spec.truthy(html:find("background:rgb(5,48,97)", 1, true), "its negative the darkest blue")
    local path = out("tokens.html")
    spec.eq(figure.save_html(path, html), path)
    local page = read(path)
    spec.eq(page:sub(1, 15), "<!DOCTYPE html>")
    spec.truthy(page:find(html, 1, true), "page holds the fragment")
    -- A table of numbers works as values, and vmax fixes the scale.
    local fixed = figure.token_heatmap({ "a", "b" }, { 1, -1 }, { vmax = 4 })
    spec.truthy(fixed:find("= 1\" style=\"background:rgb(", 1, true), "token a coloured")
    spec.falsy(fixed:find("= 1\" style=\"background:rgb(103,0,31)", 1, true), "1 of 4 is not saturated")
  end)
  spec.it("checks its arguments", function()
    spec.raises(function() figure.token_heatmap("abc", x) end, "bad argument #1 to 'token_heatmap' (table expected, got string)")
    spec.raises(function() figure.token_heatmap({ "a", {} }, { 1, 2 }) end, "tokens must be a list of strings (entry 2 is a table)")
    spec.raises(function() figure.token_heatmap({ "a" }, "x") end, "bad argument #2 to 'token_heatmap'")
    spec.raises(function() figure.token_heatmap({ "a", "b" }, { 1 }) end, "2 tokens but 1 values")
    spec.raises(function() figure.token_heatmap({ "a" }, { 1 }, { vmx = 1 }) end,
      "bad argument #3 to 'token_heatmap' (unknown option 'vmx'")
    spec.raises(function() figure.token_heatmap({ "a" }, { 1 }, { vmax = -1 }) end, "vmax must be positive")
    spec.raises(function() figure.save_html(out("x.html")) end, "bad argument #2 to 'save_html' (string expected, got no value)")
    spec.raises(function() figure.save_html(out("missing-folder") .. "/x.html", "<p>") end, "does not exist")
  end)
end)

if cleanup then
  for _, path in ipairs(cleanup) do os.remove(path) end
end
spec.finish()
