-- Runs inside `nvim --headless -u NONE` for loop_nvim_spec.lua: a generation driven by
-- Neovim's own loop through require("sora.luv").attach(client) (vim.loop, calls into sora
-- through vim.schedule), with no step() and no timer of the script's. A task's on_progress
-- edits a buffer, which a plain uv callback may not do. Writes "key value" lines to
-- $SORA_NVIM_RESULT and quits.
local root = os.getenv("SORA_ROOT") or vim.fn.getcwd()
package.path = table.concat({ root .. "/lua/?.lua", root .. "/lua/?/init.lua",
  "/usr/share/lua/5.1/?.lua", "/usr/share/lua/5.1/?/init.lua", package.path }, ";")
package.cpath = table.concat({ root .. "/build/5.1/?.so", "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so",
  package.cpath }, ";")

local result = {}

local function finish()
  local f = assert(io.open(assert(os.getenv("SORA_NVIM_RESULT")), "w"))
  for key, value in pairs(result) do f:write(key, " ", (tostring(value):gsub("\n", " ")), "\n") end
  f:close()
  vim.cmd("qa!")
end

local ok, err = pcall(function()
  local sora = require "sora"
  local client = sora.new{ base_url = os.getenv("OPENAI_BASE_URL"), api_key = os.getenv("OPENAI_API_KEY") }
  local detach = require("sora.luv").attach(client)
  local buf = vim.api.nvim_create_buf(false, true)
  local task = client:spawn(function()
    local video = assert(client:create{ prompt = "driven by vim.loop" })
    video = assert(video:wait{ on_progress = function(v)
      vim.api.nvim_buf_set_lines(buf, -1, -1, false, { v.status .. " " .. tostring(v.progress) })
    end })
    assert(client:download_content(video.id, { path = os.getenv("SORA_NVIM_OUTPUT") }))
    return video.status
  end)
  local cpu = os.clock()
  vim.wait(30000, function() return task:done() end, 200) -- the editor's own wait: events run
  result.cpu_ms = (os.clock() - cpu) * 1000
  local status, failure = task:result()
  result.status = status or tostring(failure)
  result.progress_lines = vim.api.nvim_buf_line_count(buf) - 1
  detach()
  client:close()
end)
if not ok then result.error = tostring(err) end
finish()
