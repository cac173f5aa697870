-- A small assertion helper for the Lua specs: describe/it blocks, checks that report what
-- differed, and a closing "N passed, M failed" line; the script fails if anything failed.
local spec = { passed = 0, failed = 0, failures = {} }
local prefix = {}

-- Two forward passes that batch rows differently agree only to float32 rounding: OpenBLAS picks
-- its kernel and thread split by matrix shape (on an AMD EPYC with OPENBLAS_CORETYPE=Haswell a
-- row alone and the same row in a batch differ by ~1e-6). Statistics computed in float64 from
-- such activations inherit that relative error; comparisons across passes use these tolerances.
spec.F32_RTOL, spec.F32_ATOL = 1e-4, 1e-5

function spec.describe(name, fn)
  prefix[#prefix + 1] = name
  fn()
  prefix[#prefix] = nil
end

function spec.it(name, fn)
  local full = table.concat(prefix, " ") .. (#prefix > 0 and " " or "") .. name
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    spec.passed = spec.passed + 1
    io.write("[ OK ] ", full, "\n")
  else
    spec.failed = spec.failed + 1
    spec.failures[#spec.failures + 1] = full
    io.write("[FAIL] ", full, "\n", tostring(err), "\n")
  end
end

local function fail(message, level)
  error(message, (level or 2) + 1)
end

function spec.eq(actual, expected, what)
  if actual ~= expected then
    fail(string.format("%s: expected %s, got %s", what or "value", tostring(expected), tostring(actual)))
  end
end

function spec.near(actual, expected, tolerance, what)
  tolerance = tolerance or 1e-6
  if type(actual) ~= "number" or math.abs(actual - expected) > tolerance then
    fail(string.format("%s: expected %s (+/- %g), got %s", what or "value", tostring(expected), tolerance,
      tostring(actual)))
  end
end

function spec.truthy(value, what)
  if not value then fail((what or "value") .. ": expected a true value, got " .. tostring(value)) end
end

function spec.falsy(value, what)
  if value then fail((what or "value") .. ": expected a false value, got " .. tostring(value)) end
end

-- Lists (plain Lua arrays, possibly nested) equal element by element.
function spec.same(actual, expected, what)
  local function walk(a, e, path)
    if type(e) == "table" then
      if type(a) ~= "table" then fail(string.format("%s%s: expected a table, got %s", what or "value", path, tostring(a)), 3) end
      if #a ~= #e then fail(string.format("%s%s: expected %d entries, got %d", what or "value", path, #e, #a), 3) end
      for i = 1, #e do walk(a[i], e[i], path .. "[" .. i .. "]") end
    elseif a ~= e then
      fail(string.format("%s%s: expected %s, got %s", what or "value", path, tostring(e), tostring(a)), 3)
    end
  end
  walk(actual, expected, "")
end

-- `fn` raises an error whose message contains `fragment` (plain text, not a pattern).
function spec.raises(fn, fragment)
  local ok, err = pcall(fn)
  if ok then fail("expected an error containing '" .. fragment .. "', but none was raised") end
  err = tostring(err)
  if not err:find(fragment, 1, true) then
    fail("expected an error containing '" .. fragment .. "', got: " .. err)
  end
  return err
end

-- A golden fixture model (tests/golden/<name>): the model, its expected tensors, and the first row
-- of their input_ids as [1, pos].
function spec.golden(golden_dir, name)
  local m = model.load(golden_dir .. "/" .. name)
  local expected = tensor.load(golden_dir .. "/" .. name .. "/expected.safetensors")
  return m, expected, expected.input_ids:narrow(0, 0, 1)
end

-- Prints the closing line and fails the script (non-zero exit) when anything failed.
-- The activations of one row (1-D ids) run alone: for each of `sites` (a list of hook points) its
-- [pos, units] from run_with_cache (per-head sites flattened), or without `sites` each hidden state's
-- [pos, d_model] from forward{hidden_states = true}; a list indexed from 1 (1 = hidden state 0).
function spec.row_states(m, row, sites)
  local states = {}
  if sites then
    local _, cache = m:run_with_cache(row:unsqueeze(0), { names = sites })
    for i, name in ipairs(sites) do states[i] = cache[name][0]:flatten(1) end
  else
    local _, out = m:forward(row:unsqueeze(0), { hidden_states = true })
    for l = 0, m.n_layer do states[l + 1] = out.hidden_states[l][0] end
  end
  return states
end

-- The real tokens of every row (a list of 1-D ids) run alone, each row's first `skip` positions
-- left out, stacked per site or hidden state (spec.row_states): a list of [tokens, units].
function spec.tokens_alone(m, rows, skip, sites)
  local parts = {}
  for _, row in ipairs(rows) do
    for i, st in ipairs(spec.row_states(m, row, sites)) do
      parts[i] = parts[i] or {}
      table.insert(parts[i], st:narrow(0, skip, st:size(0) - skip))
    end
  end
  local out = {}
  for i, p in ipairs(parts) do out[i] = tensor.cat(p, 0) end
  return out
end

function spec.finish()
  io.write(string.format("%d passed, %d failed\n", spec.passed, spec.failed))
  if spec.failed > 0 then
    error(string.format("%d spec(s) failed: %s", spec.failed, table.concat(spec.failures, "; ")), 0)
  end
end

return spec
