-- What the editing lessons (15-01, 15-02) share: a list of edits of one kind over a sweep.
local setup = {}

-- One edit per value of `values` (a Lua array): `make(value)` returns the edit table.
function setup.sweep(values, make)
  local edits = {}
  for i, v in ipairs(values) do edits[i] = make(v) end
  return edits
end

return setup
