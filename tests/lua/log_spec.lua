-- log and progress: levels, formatting, and progress bars that are silent when not on a terminal.
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

spec.finish()
