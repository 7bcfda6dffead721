-- Checks a downloaded file against the emulator's synthetic video body (--video-bytes N):
-- byte i is (i + k) % 251, k being the video's own offset (so its first byte). Compared a
-- block of 4096 cycles at a time, so that tens of megabytes take no time, where the
-- emulator's pure-Lua digest would take a minute.
local M = {}

local CYCLE = 251

--- True when the file at `path` is the synthetic body of `n` bytes.
function M.matches(path, n)
  local f = assert(io.open(path, "rb"))
  local first = f:read(1)
  if not first then
    f:close()
    return n == 0
  end
  local cycle = {}
  for i = 0, CYCLE - 1 do cycle[#cycle + 1] = string.char((first:byte() + i) % CYCLE) end
  local block = table.concat(cycle):rep(4096)
  f:seek("set", 0)
  local total, same = 0, true
  while same do
    local chunk = f:read(#block)
    if not chunk then break end
    total = total + #chunk
    same = chunk == block:sub(1, #chunk)
  end
  f:close()
  return same and total == n
end

return M
