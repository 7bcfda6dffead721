-- GC stress, for `make test-gcstress`: a busted helper (--helper=spec/support/gcstress.lua)
-- that makes the collector run all the time, so that a value the C core uses without
-- anchoring it (a transfer in flight, its body, a callback, the client) is collected while
-- libcurl or the core still points at it, and the suite crashes or fails instead of passing
-- by luck.
--
-- SORA_GCSTRESS=<mode>[:<every>]
--   mode   incremental  the incremental collector with the smallest pause and largest step
--                       multiplier: a new cycle starts as soon as one ends (the default)
--          generational the generational collector with minor collections at 1 % growth
--          hook         only the hook below, collector parameters unchanged
--   every  a full collectgarbage() every <every> VM instructions (default 1000; 0 = none),
--          in the main thread and in every coroutine created afterwards, so that Lua
--          callbacks run by libcurl from inside curl_multi_perform collect too.
-- Without SORA_GCSTRESS the helper does nothing.
local setting = os.getenv("SORA_GCSTRESS")
if not setting or setting == "" or setting == "0" then return end

local mode, every = setting:match("^(%a+):?(%d*)$")
if not mode then error("SORA_GCSTRESS: expected <mode>[:<every>], got " .. setting) end
every = tonumber(every) or 1000

if mode == "incremental" then
  -- pause 1 %: the next cycle starts at once; step multiplier 1000 (the largest Lua 5.4
  -- keeps); steps every 2^10 bytes allocated.
  collectgarbage("incremental", 1, 1000, 10)
elseif mode == "generational" then
  collectgarbage("generational", 1, 10)
elseif mode ~= "hook" then
  error("SORA_GCSTRESS: unknown mode " .. mode)
end
collectgarbage("restart")

local collections = 0
local function collect()
  collections = collections + 1
  collectgarbage("collect")
end

if every > 0 then
  debug.sethook(collect, "", every)
  -- Hooks are per thread: give every new coroutine the same one (the sora tasks, busted's).
  local create = coroutine.create
  coroutine.create = function(f)
    local co = create(f)
    debug.sethook(co, collect, "", every)
    return co
  end
  coroutine.wrap = function(f)
    local co = coroutine.create(f)
    return function(...)
      local results = table.pack(coroutine.resume(co, ...))
      if not results[1] then error(results[2], 0) end
      return table.unpack(results, 2, results.n)
    end
  end
end

io.stderr:write(string.format("gcstress: %s collector, a full collection every %s instructions\n",
  mode, every > 0 and tostring(every) or "(never)"))

-- Reports at exit how many forced collections ran, so a run that lost its hook shows.
_G.__sora_gcstress = setmetatable({}, { __gc = function()
  io.stderr:write(string.format("gcstress: %d forced collections\n", collections))
end })
