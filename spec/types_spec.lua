-- The LuaLS annotations (lua/sora/_meta.lua) against the live module: every public function,
-- method, field and option the module has is annotated, and every annotated one exists, so
-- that editor completion cannot drift from the code. Values come from the real stack (the
-- compiled module, libcurl, the emulator).
local sora = require "sora"
local core = require "sora.core"
local H = require "support.client"

local META = "lua/sora/_meta.lua"

-- The annotations as data: classes with their fields, functions and methods; aliases.
local function read_meta()
  local classes, aliases, of_local = {}, {}, {}
  local current
  for line in io.lines(META) do
    local class = line:match("^%-%-%-@class ([%w%.]+)")
    local field = line:match("^%-%-%-@field ([%w_]+)")
    local var = line:match("^local (%w+) = {}")
    local owner, sep, fn = line:match("^function ([%w_]+)([:%.])([%w_]+)%(")
    local alias, values = line:match("^%-%-%-@alias ([%w%.]+) (.*)$")
    if class then
      current = { fields = {}, functions = {} }
      classes[class] = current
    elseif field and current then
      current.fields[field] = true
    elseif var and current then
      of_local[var] = current
    elseif owner then
      local c = assert(of_local[owner], "function of an unknown class: " .. line)
      c.functions[fn] = sep
    elseif alias then
      local set = {}
      for v in values:gmatch('"([%w_]+)"') do set[v] = true end
      aliases[alias] = set
    end
  end
  return classes, aliases
end

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ", ")
end

-- Names in `live` but not in `annotated`, and the other way round, for one message.
local function same_names(what, live, annotated)
  local missing, stale = {}, {}
  for k in pairs(live) do if not annotated[k] then missing[k] = true end end
  for k in pairs(annotated) do if not live[k] then stale[k] = true end end
  assert(next(missing) == nil and next(stale) == nil, string.format(
    "%s: not annotated: {%s}; annotated but absent: {%s}", what, sorted(missing), sorted(stale)))
end

local function subset(what, live, annotated)
  local missing = {}
  for k in pairs(live) do if not annotated[k] then missing[k] = true end end
  assert(next(missing) == nil, what .. ": not annotated: {" .. sorted(missing) .. "}")
end

-- Public names of a table of methods: those that do not start with an underscore.
local function public(t, keep)
  local set = {}
  for k in pairs(t) do
    if type(k) == "string" and (k:sub(1, 1) ~= "_" or keep == k) then set[k] = true end
  end
  return set
end

local function union(...)
  local set = {}
  for _, s in ipairs{ ... } do for k in pairs(s) do set[k] = true end end
  return set
end

local function keys(t)
  local set = {}
  for k in pairs(t) do set[k] = true end
  return set
end

-- The names an option table of the C core accepts, read from the C source (the table the
-- core checks unknown keys against).
local function c_names(file, array)
  local text = H.read(file)
  local body = assert(text:match(array .. "%[%] = (%b{})"), array .. " not found in " .. file)
  local set = {}
  for name in body:gmatch('"([%w_]+)"') do set[name] = true end
  -- a macro of shared fields (REQUEST_OPTIONS) stands for the names of its definition
  for macro in body:gmatch("([%u_]+_OPTIONS)") do
    local from = assert(text:find("#define " .. macro .. " ", 1, true), macro)
    local definition = text:sub(from):match("^(.-[^\\])\n") -- lines ending in \ continue it
    for name in definition:gmatch('"([%w_]+)"') do set[name] = true end
  end
  return set
end

describe("LuaLS annotations", function()
  local classes, aliases = read_meta()
  local E, c

  lazy_setup(function()
    E, c = H.start{ max_retries = 0 }
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  local function annotated(class, part)
    local cl = assert(classes[class], "no ---@class " .. class .. " in " .. META)
    return cl[part]
  end

  it("annotate every function and field of the module", function()
    local _ = sora.webhooks -- loaded on first use
    same_names("sora", public(sora, "_VERSION"),
      union(annotated("sora", "functions"), annotated("sora", "fields")))
  end)

  it("annotate every function and field of the module's submodules", function()
    local _ = sora.webhooks -- loaded on first use
    local seen = 0
    for name, value in pairs(sora) do
      if type(value) == "table" then
        local class = "sora." .. name
        same_names(class, public(value),
          union(annotated(class, "functions"), annotated(class, "fields")))
        seen = seen + 1
      end
    end
    assert.is_true(seen > 0, "sora has no submodule (sora.webhooks?)")
  end)

  it("annotate every function of the modules required on their own", function()
    for _, name in ipairs{ "sora.luv" } do
      same_names(name, public(require(name)), annotated(name, "functions"))
    end
  end)

  it("annotate every method of sora.Client", function()
    same_names("sora.Client", public(core.Client), annotated("sora.Client", "functions"))
  end)

  it("annotate every method and field of sora.Video", function()
    same_names("sora.Video methods", public(core.Video), annotated("sora.Video", "functions"))
    local done = assert(c:create{ prompt = "a paper boat" })
    done = assert(done:wait{ timeout = 30, interval = 0.05 })
    subset("completed sora.Video fields", keys(done:to_table()), annotated("sora.Video", "fields"))
    local failing = assert(c:create{ prompt = "fail" })
    E:force_video(failing.id, { status = "failed", error = { code = "x", message = "no" } })
    failing = assert(c:retrieve(failing.id))
    subset("failed sora.Video fields", keys(failing:to_table()), annotated("sora.Video", "fields"))
    local remixed = assert(c:remix(done.id, { prompt = "again" }))
    subset("remixed sora.Video fields", keys(remixed:to_table()), annotated("sora.Video", "fields"))
  end)

  it("annotate the page, deleted and character values", function()
    local page = assert(c:list_page{ limit = 1 })
    subset("sora.Page", keys(page), annotated("sora.Page", "fields"))
    local v = assert(c:create{ prompt = "to delete" })
    assert(v:wait{ timeout = 30, interval = 0.05 })
    local gone = assert(c:delete(v.id))
    subset("sora.Deleted", keys(gone), annotated("sora.Deleted", "fields"))
    local character = assert(c:create_character{ video = { data = H.media("video.mp4"),
      filename = "c.mp4" }, name = "Ada" })
    subset("sora.Character", keys(character), annotated("sora.Character", "fields"))
  end)

  it("annotate every field of the errors the module returns", function()
    local errors = {}
    errors[#errors + 1] = select(2, c:retrieve("video_missing"))
    local closed = sora.new{ api_key = H.KEY, base_url = "http://127.0.0.1:1/v1", max_retries = 0 }
    errors[#errors + 1] = select(2, closed:retrieve("video_x"))
    closed:close()
    local failing = assert(c:create{ prompt = "fail" })
    E:force_video(failing.id, { status = "failed", error = { code = "x", message = "no" } })
    errors[#errors + 1] = select(2, failing:wait{ timeout = 5, interval = 0.05 })
    local queued = assert(c:create{ prompt = "slow" })
    E:force_video(queued.id, { status = "queued" })
    E:fault{ action = "respond", status = 500, times = 1000, method = "GET",
      path = "^/v1/videos/" .. queued.id .. "$" }
    errors[#errors + 1] = select(2, queued:wait{ timeout = 0.3, interval = 0.05 })
    E:clear_faults()
    E:fault{ action = "respond", status = 429, headers = { ["retry-after"] = "1" },
      method = "GET", path = "^/v1/videos/video_busy$" }
    errors[#errors + 1] = select(2, c:retrieve("video_busy"))
    E:clear_faults()
    errors[#errors + 1] = select(2, sora.webhooks.verify("{}", {}, "whsec_" .. ("A"):rep(32)))
    local fields, kinds = {}, {}
    for _, err in ipairs(errors) do
      assert.is_true(sora.is_error(err), tostring(err))
      for k in pairs(err) do fields[k] = true end
      kinds[err.kind] = true
    end
    subset("sora.Error fields", fields, annotated("sora.Error", "fields"))
    subset("sora.ErrorKind", kinds, aliases["sora.ErrorKind"])
    assert.is_truthy(fields.last_error and fields.video and fields.curl_code and fields.retry_after
      and fields.check and fields.headers,
      "the probe did not reach every kind of error: " .. sorted(fields))
  end)

  it("annotate the methods of sora.Transfer and sora.Task", function()
    local transfer_meta = debug.getregistry()["sora.Transfer"]
    same_names("sora.Transfer", public(transfer_meta.__index), annotated("sora.Transfer", "functions"))
    local task = c:spawn(function() end)
    c:run()
    local index = getmetatable(task).__index
    same_names("sora.Task", public(type(index) == "table" and index or getmetatable(task)),
      annotated("sora.Task", "functions"))
  end)

  it("annotate every option of sora.new", function()
    same_names("sora.ClientOptions", c_names("csrc/client.c", "option_names"),
      annotated("sora.ClientOptions", "fields"))
  end)

  it("annotate every parameter and option of the endpoints", function()
    local request = c_names("csrc/endpoints.c", "request_local")
    local shared = annotated("sora.RequestOptions", "fields")
    same_names("sora.RequestOptions", request, shared)
    local function params(class) return union(shared, annotated(class, "fields")) end
    local cases = {
      { "sora.CreateParams", { "create_body", "reference_local" } },
      { "sora.ListParams", { "list_query" } },
      { "sora.RemixParams", { "remix_body", "create_local" } },
      { "sora.EditParams", { "edit_body", "create_local" } },
      { "sora.ExtendParams", { "extend_body", "create_local" } },
      { "sora.CharacterParams", { "character_body", "create_local" } },
      { "sora.DownloadOptions", { "content_query", "content_local" } },
    }
    for _, case in ipairs(cases) do
      local live = request
      for _, array in ipairs(case[2]) do live = union(live, c_names("csrc/endpoints.c", array)) end
      same_names(case[1], live, params(case[1]))
    end
  end)

  it("annotate every option of wait, generate and generate_many", function()
    local wait = require "sora.wait"
    same_names("sora.WaitOptions", keys(wait.OPTIONS), annotated("sora.WaitOptions", "fields"))
    -- generate takes create's parameters and its own: each annotated one is known (an unknown
    -- key raises before anything is sent), and a key that is neither raises
    local generate = union(annotated("sora.CreateParams", "fields"),
      annotated("sora.RequestOptions", "fields"), annotated("sora.GenerateParams", "fields"))
    for name in pairs(generate) do
      local ok, err = pcall(c.generate, c, { prompt = "x", [name] = coroutine.create(function() end) })
      assert.is_false(ok, name)
      assert.is_nil(tostring(err):find("unknown", 1, true), name .. ": " .. tostring(err))
    end
    local ok, err = pcall(c.generate, c, { prompt = "x", not_an_option = 1 })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("unknown", 1, true), tostring(err))
    for name in pairs(annotated("sora.BatchOptions", "fields")) do
      ok, err = pcall(c.generate_many, c, {}, { [name] = coroutine.create(function() end) })
      assert.is_false(ok, name)
      assert.is_truthy(tostring(err):find(name, 1, true), name .. ": " .. tostring(err))
      assert.is_nil(tostring(err):find("unknown", 1, true), name .. ": " .. tostring(err))
    end
  end)
end)
