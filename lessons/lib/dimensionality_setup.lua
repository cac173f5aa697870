-- Shared by lessons 13-06 and 13-07 (effective dimensionality): a token stream cut into rows the
-- model takes, its token-shuffled control, one spectrum per text from the dimensionality plugin,
-- and the SVD cross-check of one hidden state against the plugin.
local M = {}

-- ids [n] cut into right-padded rows of at most `seq_len` tokens: { ids =, mask = } for the plugin.
function M.rows(ids, seq_len)
  local n = ids:numel()
  local count = (n + seq_len - 1) // seq_len
  local width = math.min(seq_len, n)
  local rows, mask = tensor.full({ count, width }, 0), tensor.full({ count, width }, 0)
  for r = 0, count - 1 do
    local len = math.min(seq_len, n - r * seq_len)
    rows[r]:narrow(0, 0, len):copy(ids:narrow(0, r * seq_len, len))
    mask[r]:narrow(0, 0, len):fill(1)
  end
  return { ids = rows, mask = mask }
end

-- The same tokens in a random order (seeded): the course's shuffled-token control, which keeps
-- every token's identity and frequency and destroys the order.
function M.shuffled(ids, seed)
  tensor.manual_seed(seed)
  local _, order = tensor.rand({ ids:numel() }):sort(0)
  return ids:index(0, order)
end

-- The largest |difference| between the plugin's spectrum of hidden state `layer` and the SVD of
-- that hidden state's tokens computed here from forward{hidden_states = true}, on the first
-- `check_rows` rows: the lesson's numerical cross-check.
function M.svd_difference(m, dimensionality, rows, layer, check_rows, batch_size)
  local n = math.min(check_rows, rows.ids:size(0))
  local sub = { ids = rows.ids:narrow(0, 0, n), mask = rows.mask:narrow(0, 0, n) }
  local parts = {}
  for r = 0, n - 1 do
    local len = sub.mask[r]:sum():item()
    local _, out = m:forward(sub.ids[r]:narrow(0, 0, len):unsqueeze(0), { hidden_states = true })
    parts[#parts + 1] = out.hidden_states[layer][0]
  end
  local x = tensor.cat(parts, 0):double()
  local _, s = (x - x:mean(0)):svd()
  local shares = s * s / (s * s):sum()
  local plugin_out = dimensionality.spectrum(m, sub, { batch_size = batch_size })
  local k = math.min(x:size(0) - 1, x:size(1))
  return (plugin_out.explained[layer]:narrow(0, 0, k) - shares:narrow(0, 0, k)):abs():max():item()
end

return M
