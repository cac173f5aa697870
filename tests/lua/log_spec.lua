-- log and progress: levels, formatting, and progress bars that are silent when not on a terminal;
-- the llmscope table; chunks load as text only.
local spec = require("spec")

spec.describe("log", function()
  spec.it("accepts any values, like print", function()
    log.info("value", 42, true, nil, tensor.zeros({ 2 }))
    log.debug("hidden unless -v")
    log.warn("a warning")
    log.error("an error message that does not stop the script")
  end)
end)

spec.describe("progress", function()
  spec.it("counts updates", function()
    local bar <close> = progress.new(5, "work")
    for _ = 1, 5 do bar:update() end
    spec.eq(bar:count(), 5)
  end)
  spec.it("ranges from 0 to n-1", function()
    local seen = {}
    for i in progress.range(4, "loop") do seen[#seen + 1] = i end
    spec.same(seen, { 0, 1, 2, 3 })
  end)
  spec.it("rejects a negative total", function()
    spec.raises(function() progress.new(-1) end, "bad argument #1 to 'new' (total must be >= 0)")
  end)
end)

spec.describe("llmscope", function()
  spec.it("tells the script its output folder and indexing", function()
    spec.eq(type(llmscope.out_dir), "string")
    spec.truthy(#llmscope.out_dir > 0, "out_dir is set")
    spec.truthy(llmscope.indexing:find("0-based", 1, true))
    spec.eq(type(llmscope.version), "string")
  end)
end)

spec.describe("chunks", function()
  spec.it("load, loadfile and dofile take text as Lua does", function()
    spec.eq(load("return 1 + 1")(), 2)
    local parts, i = { "return ", "40 + 2" }, 0
    spec.eq(load(function() i = i + 1; return parts[i] end)(), 42)
    spec.eq(load("return x", "=env", "t", { x = 7 })(), 7)
    spec.eq(load("return x", "=env", "bt", {})(), nil)
    local path = llmscope.out_dir .. "/chunk.lua"
    local f = assert(io.open(path, "w"))
    f:write("return ...")
    f:close()
    spec.eq(loadfile(path)(5), 5)
    spec.eq(dofile(path), nil)
    spec.eq(loadfile(path, "t", {})(6), 6)
  end)
  spec.it("refuses precompiled chunks, which Lua runs unverified", function()
    local chunk, message = load(string.dump(function() return 1 end))
    spec.eq(chunk, nil)
    spec.truthy(message:find("attempt to load a binary chunk", 1, true), message)
    local path = llmscope.out_dir .. "/chunk.luac"
    local f = assert(io.open(path, "wb"))
    f:write(string.dump(function() return 1 end))
    f:close()
    spec.eq(loadfile(path), nil)
    spec.raises(function() dofile(path) end, "attempt to load a binary chunk")
  end)
end)

spec.finish()
