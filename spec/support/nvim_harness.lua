-- Runs the Neovim plugin's generate (lua/sora/nvim) inside `nvim --headless -u NONE` for
-- embed_spec.lua:
--
--   nvim --headless -u NONE -i NONE -n -c "luafile spec/support/nvim_harness.lua"
--
-- Environment: SORA_ROOT (the checkout; default the working directory), OPENAI_BASE_URL and
-- OPENAI_API_KEY (the emulator), SORA_NVIM_OUTPUT (the video), SORA_NVIM_RESULT (where the
-- result goes, as "key value" lines). While the generation runs, a 10 ms timer edits a
-- buffer and counts its ticks: the proof that the editor keeps answering. Quits with qa!.
local uv = vim.uv or vim.loop

local DEADLINE_MS = 40000 -- below the spec's `timeout 60`, so a stuck run still reports

local root = os.getenv("SORA_ROOT") or vim.fn.getcwd()
-- Neovim's LuaJIT looks in none of these: the checkout, its 5.1-ABI core, Debian's 5.1
-- modules (lua-cjson, which sora.core requires).
package.path = table.concat({ root .. "/lua/?.lua", root .. "/lua/?/init.lua",
  "/usr/share/lua/5.1/?.lua", "/usr/share/lua/5.1/?/init.lua",
  package.path }, ";")
package.cpath = table.concat({ root .. "/build/5.1/?.so", "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so",
  package.cpath }, ";")

local result = { ticks = 0, longest_gap_ms = 0 }
local timers = {}

local function write_result()
  local f = assert(io.open(assert(os.getenv("SORA_NVIM_RESULT"), "SORA_NVIM_RESULT unset"), "w"))
  for key, value in pairs(result) do f:write(key, " ", tostring(value):gsub("\n", " "), "\n") end
  f:close()
end

local function finish()
  for _, t in ipairs(timers) do
    t:stop()
    t:close()
  end
  timers = {}
  pcall(write_result)
  vim.cmd("qa!")
end

local function every(ms, fn)
  local t = uv.new_timer()
  t:start(ms, ms, vim.schedule_wrap(fn))
  timers[#timers + 1] = t
end

-- The editor's pulse: ticks, the longest gap between two of them, and an edit each tick.
local function start_ticker()
  local last = uv.hrtime()
  every(10, function()
    local t = uv.hrtime()
    result.longest_gap_ms = math.max(result.longest_gap_ms, (t - last) / 1e6)
    last = t
    result.ticks = result.ticks + 1
    vim.api.nvim_buf_set_lines(0, 0, -1, false, { "tick " .. result.ticks })
  end)
end

local function main()
  start_ticker()
  every(DEADLINE_MS, function()
    result.error = "no result within " .. DEADLINE_MS .. " ms"
    finish()
  end)
  local started = uv.hrtime()
  require("sora.nvim").generate{
    prompt = "a paper boat, generated inside Neovim",
    output = assert(os.getenv("SORA_NVIM_OUTPUT"), "SORA_NVIM_OUTPUT unset"),
    on_done = function(video, path_or_err)
      result.elapsed_ms = (uv.hrtime() - started) / 1e6
      if video then
        result.video, result.status, result.path = video.id, video.status, path_or_err
      else
        result.error = tostring(path_or_err)
      end
      finish()
    end,
  }
end

local ok, err = xpcall(main, debug.traceback)
if not ok then
  result.error = err
  finish()
end
