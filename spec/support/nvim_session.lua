-- The init.lua of one headless Neovim session for spec/nvim_plugin_spec.lua: the plugin is
-- installed as a package (XDG_DATA_HOME/nvim/site/pack/sora/start/sora, built with
-- `make nvim`), and this file plays the user.
--
--   nvim --headless -i NONE -n -u spec/support/nvim_session.lua
--
-- Environment:
--   SORA_SESSION_RESULT   where the result goes (JSON)
--   SORA_SESSION_COMMAND  the Ex commands to run once the editor has started, one a line
--   SORA_SESSION_SETUP    optional: a Lua table constructor given to sora.nvim.setup()
--   SORA_SESSION_UNTIL    optional: a Lua pattern; the session ends at the first notification
--                         that matches it, or at the first ERROR notification. Unset: it ends
--                         once the command has run.
-- The result: every notification { level, message }, the error the command raised if any
-- (it must not), the current buffer's name, filetype and lines, and the pulse of a 10 ms
-- timer that edits a scratch buffer meanwhile (ticks, longest gap in ms).
local uv = vim.uv or vim.loop

local DEADLINE_MS = 40000 -- below the spec's `timeout 60`, so a stuck run still reports

local result = { notifications = {}, ticks = 0, longest_gap_ms = 0 }
local timers, finished, started = {}, false, nil

local function write_result()
  local path = assert(os.getenv("SORA_SESSION_RESULT"), "SORA_SESSION_RESULT unset")
  local f = assert(io.open(path, "w"))
  f:write(vim.fn.json_encode(result))
  f:close()
end

local function finish()
  if finished then return end
  finished = true
  for _, t in ipairs(timers) do
    t:stop()
    t:close()
  end
  result.buffer = vim.fn.bufname("%")
  result.filetype = vim.bo.filetype
  result.lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  result.errmsg = vim.v.errmsg
  -- the plugin's driver must stop its timer when its last task ends
  local driver = package.loaded["sora.nvim.driver"]
  result.driving = driver and driver.driving() or false
  if started then result.elapsed_ms = (uv.hrtime() - started) / 1e6 end
  pcall(write_result)
  vim.cmd("qa!")
end

local function every(ms, fn)
  local t = uv.new_timer()
  t:start(ms, ms, vim.schedule_wrap(fn))
  timers[#timers + 1] = t
end

local stop_at = os.getenv("SORA_SESSION_UNTIL")

vim.notify = function(message, level)
  level = level or vim.log.levels.INFO
  table.insert(result.notifications, { level = level, message = tostring(message) })
  if stop_at and (level >= vim.log.levels.ERROR or tostring(message):find(stop_at)) then
    vim.schedule(finish)
  end
end

-- The editor's pulse: an edit of a scratch buffer every 10 ms, and the longest gap between
-- two ticks: the proof that the editor keeps answering while sora works.
local function start_ticker()
  local pulse = vim.api.nvim_create_buf(false, true)
  local last = uv.hrtime()
  every(10, function()
    local t = uv.hrtime()
    result.longest_gap_ms = math.max(result.longest_gap_ms, (t - last) / 1e6)
    last = t
    result.ticks = result.ticks + 1
    vim.api.nvim_buf_set_lines(pulse, 0, -1, false, { "tick " .. result.ticks })
  end)
end

local function main()
  local setup = os.getenv("SORA_SESSION_SETUP")
  if setup and setup ~= "" then
    require("sora.nvim").setup(assert(loadstring("return " .. setup))())
  end
  start_ticker()
  every(DEADLINE_MS, function()
    result.timed_out = true
    finish()
  end)
  started = uv.hrtime()
  local ok = true
  for command in assert(os.getenv("SORA_SESSION_COMMAND")):gmatch("[^\n]+") do
    local err
    ok, err = pcall(vim.cmd, command)
    if not ok then
      result.command_error = command .. ": " .. tostring(err)
      break
    end
  end
  result.command_ms = (uv.hrtime() - started) / 1e6
  if not stop_at or not ok then finish() end
end

-- After startup: the package's plugin/sora.lua is sourced after this file.
vim.api.nvim_create_autocmd("VimEnter", { once = true, callback = function()
  local ok, err = xpcall(main, debug.traceback)
  if not ok then
    result.session_error = err
    finish()
  end
end })
