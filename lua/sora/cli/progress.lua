--- Progress of the `sora` command while it waits for a video and downloads it, on stderr (as
-- curl and gh write theirs; stdout holds only results): a bar redrawn in place when a person
-- watches a terminal, plain lines otherwise (pipes, logs, CI), nothing when asked.
--
-- Whether stderr is a terminal is asked of the kernel through `test -t 2`: the shell that
-- os.execute starts inherits our descriptor 2, and `test -t` is isatty(3) on it. This costs
-- one fork per command (a millisecond), needs nothing from the C core, and works the same on
-- every Lua; io.stderr offers no way to ask.
local format, rep, floor = string.format, string.rep, math.floor
local max, min = math.max, math.min

local progress = {}

local BAR_WIDTH = 24 -- the longest line stays under 60 columns, so it never wraps

--- True when descriptor 2 is a terminal.
function progress.stderr_is_terminal()
  local ok = os.execute("test -t 2")
  if type(ok) == "number" then return ok == 0 end -- 5.1 and LuaJIT return the status
  return ok == true
end

--- The mode for a `--progress` choice: "bar", "lines" or "none". `auto` draws a bar when
-- stderr is a terminal.
function progress.mode(choice)
  if choice ~= "auto" then return choice end
  return progress.stderr_is_terminal() and "bar" or "lines"
end

local Reporter = {}
Reporter.__index = Reporter

--- A reporter writing to `out` (a file) in `mode`.
function progress.new(mode, out)
  return setmetatable({ mode = mode, out = out, drawn = 0, last = nil }, Reporter)
end

local function megabytes(bytes)
  return format("%.1f MB", bytes / 1e6)
end

local function bar(percent)
  local filled = floor(BAR_WIDTH * percent / 100 + 0.5)
  return "[" .. rep("#", filled) .. rep(".", BAR_WIDTH - filled) .. "]"
end

-- Redraws the bar line in place: back to its start, the new text, spaces over what is left of
-- a longer previous text.
function Reporter:draw(text)
  if text == self.last then return end
  self.last = text
  self.out:write("\r", text, rep(" ", max(0, self.drawn - #text)))
  self.out:flush()
  self.drawn = #text
end

-- A plain line, once per distinct text.
function Reporter:line(text)
  if text == self.last then return end
  self.last = text
  self.out:write(text, "\n")
  self.out:flush()
end

--- A video's status and progress, as a wait's on_progress sees them.
function Reporter:video(video)
  if self.mode == "none" then return end
  local percent = min(100, max(0, floor(tonumber(video.progress) or 0)))
  local status = tostring(video.status)
  if self.mode == "bar" then
    self:draw(format("video    %s %3d%% %s", bar(percent), percent, status))
  else
    self:line(format("%s %s %d%%", video.id, status, percent))
  end
end

--- Whether the reporter shows anything: without it, a transfer needs no progress callback.
function Reporter:shows()
  return self.mode ~= "none"
end

--- Bytes of a download so far, as a download's on_progress sees them (total may be 0 or nil
-- when the server does not say).
function Reporter:bytes(received, total)
  if self.mode == "none" then return end
  local known = total and total > 0
  if self.mode == "bar" then
    if known then
      local percent = min(100, floor(100 * received / total))
      self:draw(format("download %s %3d%% %.1f of %s", bar(percent), percent, received / 1e6,
        megabytes(total)))
    else
      self:draw(format("download %s", megabytes(received)))
    end
  elseif known then
    -- one line per tenth, so a log holds at most eleven lines per download
    local tenth = min(10, floor(10 * received / total))
    if tenth ~= self.tenth then
      self.tenth = tenth
      self:line(format("download %d%% (%d of %d bytes)", tenth * 10, received, total))
    end
  end
end

--- Ends a bar drawn on the current line, before anything else is printed (a log line, an
-- error, a result on the same terminal); the next draw starts a fresh line.
function Reporter:interrupt()
  if self.mode == "bar" and self.drawn > 0 then
    self.out:write("\n")
    self.out:flush()
    self.drawn, self.last = 0, nil
  end
end

--- Ends the bar's line, so that what is printed next starts on a line of its own, and starts
-- afresh for the next phase.
function Reporter:finish()
  if self.mode == "bar" and self.drawn > 0 then
    self.out:write("\n")
    self.out:flush()
  end
  self.drawn, self.last, self.tenth = 0, nil, nil
end

return progress
