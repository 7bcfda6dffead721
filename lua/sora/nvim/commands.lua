--- The user commands' argument parsing: what plugin/sora.lua hands to sora.nvim.
--
--   :SoraGenerate [model=... seconds=... size=... output=... image=...] [--] {prompt}
--   :SoraDownload {id} [path]
--   :SoraList [limit]
--   :SoraCancel
--   :SoraStatus
-- A mistake in the arguments is a notification, like every other failure.
local nvim = require "sora.nvim"

local commands = {}

local GENERATE_OPTIONS = { model = true, seconds = true, size = true, output = true, image = true }

local function usage(text)
  vim.notify("sora: " .. text, vim.log.levels.ERROR)
end

--- Splits leading key=value words from the prompt that follows; a word `--` ends them (a
-- prompt may then start with "E=mc2"). Returns the options, or nil and a message for an
-- unknown option: it would otherwise become part of the prompt, unnoticed.
function commands.parse_generate(text)
  local opts, rest = {}, text or ""
  while true do
    local key, value, after = rest:match("^%s*([%a_]+)=(%S+)%s*(.*)$")
    if not key then
      rest = rest:gsub("^%s*%-%-%s", "", 1)
      break
    end
    if not GENERATE_OPTIONS[key] then
      return nil, string.format(":SoraGenerate: unknown option '%s'%s (its options: image, model, "
        .. "output, seconds, size; -- before a prompt that starts with word=)", key,
        require("sora.args").did_you_mean(key, GENERATE_OPTIONS))
    end
    opts[key], rest = value, after
  end
  opts.prompt = vim.trim(rest)
  return opts
end

function commands.generate(cmd)
  local opts, err = commands.parse_generate(cmd.args)
  if not opts then return usage(err) end
  if opts.prompt == "" then return usage("a prompt is needed: :SoraGenerate [option=value ...] {prompt}") end
  nvim._as_command.generate(":SoraGenerate", opts)
end

function commands.download(cmd)
  local id, path = cmd.fargs[1], cmd.fargs[2]
  if not id or #cmd.fargs > 2 then return usage("usage: :SoraDownload {id} [path]") end
  nvim._as_command.download(":SoraDownload", id, path)
end

function commands.list(cmd)
  local word = cmd.fargs[1] ~= "" and cmd.fargs[1] or nil -- Neovim 0.7: one empty word for none
  local limit = word and tonumber(word)
  if word and not (limit and limit >= 1 and limit <= nvim.LIST_LIMIT and limit % 1 == 0) then
    return usage(string.format(":SoraList: the limit must be a whole number from 1 to %d, got '%s' "
      .. "(usage: :SoraList [limit])", nvim.LIST_LIMIT, word))
  end
  nvim._as_command.list(":SoraList", { limit = limit })
end

function commands.cancel()
  nvim.cancel()
end

function commands.status()
  local line = nvim.status()
  vim.notify(line ~= "" and line or "sora: nothing running", vim.log.levels.INFO)
end

--- Runs a command's handler; a Lua error (a bug) becomes a notification too.
function commands.run(name, cmd)
  local ok, err = pcall(commands[name], cmd)
  if not ok then usage("internal error in :" .. name .. ": " .. tostring(err)) end
end

return commands
