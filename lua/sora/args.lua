--- Argument checks of the Lua layer, with the C core's message shape:
--   bad argument #N to 'NAME' (...)
-- NAME is the public call the program made (`list`, not the `list_page` it uses), and the
-- position is the program's line: the first caller outside sora's own modules, as the C core's
-- sora_raise finds it, however deep in the layer the check runs.
local debug, error, type, tostring, pairs, rawget = debug, error, type, tostring, pairs, rawget
local format, floor = string.format, math.floor

local args = {}

local core = require "sora.core"

-- "@lua/sora/args.lua" -> "@lua/sora/": every module under it is sora's own (the plugin's and
-- the command's included). The core keeps it and is the one that finds the program's line.
core._lua_dir(debug.getinfo(1, "S").source:match("^(.*[/\\])[^/\\]*$") or "")
local raise = core._raise

--- Raises a usage error (a message formatted as string.format does) at the program's line.
function args.usage(fmt, ...)
  raise(format(fmt, ...))
end

--- Raises "bad argument #n to 'fname' (message)" at the program's line.
function args.fail(fname, n, fmt, ...)
  raise(format("bad argument #%d to '%s' (%s)", n, fname, format(fmt, ...)))
end

-- The metatables of the C core's classes, by name ("sora.Client", "sora.Video").
local registry = debug.getregistry()

--- Checks that `self` of the method fname is an object of `class` ("sora.Video"), as the C
-- core's endpoints do: video.wait(5) for video:wait(5) raises "calling 'wait' on bad self
-- (sora.Video expected, got number)" at the program's line, not "attempt to index a number
-- value" deep in the layer. Returns self.
function args.self(fname, self, class)
  if type(self) ~= "userdata" or debug.getmetatable(self) ~= registry[class] then
    raise(format("calling '%s' on bad self (%s expected, got %s)", fname, class, type(self)))
  end
  return self
end

--- true for a function, or a table or userdata whose metatable has __call (as luv accepts).
function args.is_callable(value)
  if type(value) == "function" then return true end
  local meta = debug.getmetatable(value)
  return type(meta) == "table" and type(rawget(meta, "__call")) == "function"
end

-- What a value is, for a message: its type, or for a number the number itself.
local function shown(value)
  if type(value) ~= "number" then return type(value) end
  if value ~= value then return "NaN" end
  return format("%.14g", value)
end

-- Kinds of values: the Lua type they need, what else must hold, and how a message says it.
-- A value of the wrong type is named by its type ("must be a number, got string"), a number
-- that breaks the rule by its value ("must be a non-negative number, got NaN").
local KINDS = {
  string = { type = "string", says = "a string" },
  number = { type = "number", says = "a number" },
  boolean = { type = "boolean", says = "a boolean" },
  table = { type = "table", says = "a table" },
  callable = { says = "a function", check = args.is_callable },
  any = { says = "anything" }, -- checked by its caller
  -- within lua_Integer's range (2^63 either way), as the C core's fields take it
  integer = { type = "number", says = "an integer",
              check = function(v) return floor(v) == v and v >= -2 ^ 63 and v < 2 ^ 63 end },
  duration = { type = "number", says = "a non-negative number",
               check = function(v) return v >= 0 end }, -- false for NaN
  count = { type = "number", says = "a positive integer",
            check = function(v) return v >= 1 and floor(v) == v end },
  positive = { type = "number", says = "a positive number",
               check = function(v) return v > 0 end }, -- false for NaN
  retries = { type = "number", says = "a non-negative integer",
              check = function(v) return v >= 0 and floor(v) == v end },
}

-- What is wrong with a value of `kind`: what it must be and what it is, or nil.
local function problem(kind, value)
  local k = KINDS[kind]
  if k.type and type(value) ~= k.type then
    return KINDS[k.type].says, type(value)
  end
  if k.check and not k.check(value) then return k.says, shown(value) end
end

--- Checks argument #n of fname: a value of `kind` (optional: nil passes).
-- The message is "<kind> expected, got <what>", as luaL_checktype words it.
function args.check(fname, n, value, kind, optional)
  if value == nil and optional then return value end
  local k = KINDS[kind]
  if (k.type and type(value) ~= k.type) or (k.check and not k.check(value)) then
    args.fail(fname, n, "%s expected, got %s", (k.says:gsub("^an? ", "")), shown(value))
  end
  return value
end

--- A table argument; an optional one that is nil becomes {}.
function args.table(fname, n, value, optional)
  if value == nil and optional then return {} end
  if type(value) ~= "table" then
    args.fail(fname, n, "table expected, got %s", type(value))
  end
  return value
end

--- Checks one option of argument #n: `prefix` names where it sits ("jobs[2]: ").
function args.option(fname, n, name, value, kind, prefix)
  local says, got = problem(kind, value)
  if says then
    args.fail(fname, n, "%soption '%s' must be %s, got %s", prefix or "", tostring(name), says, got)
  end
  return value
end

-- Edits from a to b: insert, delete, replace, swap of two neighbours (the optimal string
-- alignment distance), row by row.
local function edit_distance(a, b)
  local up2, up = {}, {}
  for j = 0, #b do up[j] = j end
  for i = 1, #a do
    local row = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local best = math.min(up[j - 1] + cost, up[j] + 1, row[j - 1] + 1)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        best = math.min(best, up2[j - 2] + 1)
      end
      row[j] = best
    end
    up2, up = up, row
  end
  return up[#b]
end

local MAX_EDITS, MAX_LENGTH = 2, 64

--- The known name nearest to a misspelt `name` (the keys of `known` that are strings), or nil
-- when none is near: at most two edits and at most a third of the longer name; ties go to the
-- name first in byte order. csrc/args.c sora_nearest_consider has the same rule.
function args.nearest(name, known)
  if type(name) ~= "string" or #name > MAX_LENGTH then return nil end
  local best, best_distance = nil, MAX_EDITS + 1
  for candidate in pairs(known) do
    if type(candidate) == "string" and #candidate <= MAX_LENGTH then
      local d = edit_distance(name, candidate)
      if d <= MAX_EDITS and d * 3 <= math.max(#name, #candidate)
         and (d < best_distance or (d == best_distance and candidate < best)) then
        best, best_distance = candidate, d
      end
    end
  end
  return best
end

--- " (did you mean 'x'?)" for the nearest known name, or "".
function args.did_you_mean(name, known)
  local nearest = args.nearest(name, known)
  return nearest and format(" (did you mean '%s'?)", nearest) or ""
end

--- Checks every key of the options table `opts` against `allowed` (name -> kind); returns it.
function args.options(fname, n, opts, allowed, prefix)
  for name, value in pairs(opts) do
    local kind = allowed[name]
    if kind == nil then
      args.fail(fname, n, "%sunknown option '%s'%s", prefix or "", tostring(name),
                args.did_you_mean(name, allowed))
    end
    args.option(fname, n, name, value, kind, prefix)
  end
  return opts
end

--- Checks, before anything is created and paid for, that a download could write `path`
-- (argument #n of fname, an option `name` of it): its directory exists and is writable, and
-- the target is absent or a regular file. Raises "bad argument #n to 'fname' (option 'output':
-- cannot write 'x/y.mp4': no such directory)"; returns path. nil passes (no file asked for).
function args.output(fname, n, path, name, prefix)
  if path == nil then return nil end
  local ok, why = core._check_output(path)
  if not ok then
    args.fail(fname, n, "%soption '%s': cannot write '%s': %s", prefix or "", name, path, why)
  end
  return path
end

--- Raises again an error that the C core raised for `inner` (the endpoint a convenience
-- calls) as an error of the public call `fname`: "bad argument #1 to 'create' (...)" from
-- generate's create becomes "bad argument #1 to 'generate' (...)"; `prefix` says where in
-- fname's arguments the value sits ("jobs[2]: "), `n` renumbers it. The position the C core
-- found (the program's line) is kept. A refusal of the call itself ("calling 'watch' on a
-- closed sora.Client") names fname too. Any other error is raised again as it is.
function args.reraise(err, fname, inner, n, prefix)
  if type(err) == "string" then
    local position, number, rest = err:match("^(.-)bad argument #(%d+) to '" .. inner .. "' %((.*)%)$")
    if position then
      err = format("%sbad argument #%d to '%s' (%s%s)", position, n or tonumber(number), fname,
                   prefix or "", rest)
    else -- "calling 'watch' on a closed sora.Client"
      err = err:gsub("^(.-)calling '" .. inner .. "' on ", "%1calling '" .. fname .. "' on ", 1)
    end
  end
  error(err, 0)
end

return args
