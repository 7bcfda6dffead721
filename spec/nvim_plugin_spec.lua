-- The Neovim plugin, installed by its documented route and used as a user would, in
-- `nvim --headless` (Debian's 0.7.2) against the emulator: the repository is copied into a
-- fresh package directory (XDG_DATA_HOME/nvim/site/pack/sora/start/sora), built there with
-- `make nvim`, and every session starts with nothing but that (its own XDG directories and
-- spec/support/nvim_session.lua as init.lua). Timing figures are printed, never asserted.
local emulator = require "support.emulator"
local H = require "support.client"
local cjson = require "cjson"
local synthetic = require "support.synthetic"
local tools = require "support.tools"

local q = H.shell_quote

local VIDEO_BYTES = 16 * 1024 * 1024

local sh = H.sh

local function env(vars)
  local parts = { "env", "-u", "OPENAI_API_KEY", "-u", "OPENAI_BASE_URL" }
  for name, value in pairs(vars) do parts[#parts + 1] = name .. "=" .. q(value) end
  return table.concat(parts, " ")
end

local function report(what, text)
  io.stderr:write("\n  [", what, "] ", text, "\n")
end

describe("the Neovim plugin", function()
  local ok, why = tools.require_tool("nvim", "the plugin runs in nvim --headless")
  if not ok then
    it("needs nvim", function() pending(why) end)
    return
  end

  local E, dir, root, plugin, sessions = nil, nil, nil, nil, 0

  -- One headless session; returns its result table and what nvim printed.
  local function session(opts)
    sessions = sessions + 1
    local result = dir .. "/result-" .. sessions .. ".json"
    local vars = { XDG_CONFIG_HOME = dir .. "/config", XDG_DATA_HOME = dir .. "/data",
      XDG_CACHE_HOME = dir .. "/cache", XDG_STATE_HOME = dir .. "/state",
      SORA_SESSION_RESULT = result, SORA_SESSION_COMMAND = opts.command,
      SORA_SESSION_SETUP = opts.setup, SORA_SESSION_UNTIL = opts["until"] }
    for name, value in pairs(opts.env or {}) do vars[name] = value end
    local out, status = sh(env(vars) .. " timeout 60 nvim --headless -i NONE -n -u "
      .. q(root .. "/spec/support/nvim_session.lua") .. " </dev/null")
    assert.are.equal(0, status, out)
    assert.is_true(H.exists(result), "no result; nvim said: " .. out)
    local r = cjson.decode(H.read(result))
    -- no Lua error anywhere: not from the command, not from a timer, not at startup
    assert.is_nil(r.session_error)
    assert.is_nil(r.command_error)
    assert.is_falsy(r.timed_out, "the session timed out: " .. out)
    assert.is_nil(out:find("E5108", 1, true), out)
    assert.is_nil(out:find("Error executing", 1, true), out)
    assert.is_nil(out:find("stack traceback", 1, true), out)
    return r, out
  end

  local function errors_of(r)
    local found = {}
    for _, n in ipairs(r.notifications) do
      if n.level >= 4 then found[#found + 1] = n.message end
    end
    return found
  end

  local function served(key)
    return { OPENAI_BASE_URL = E.url, OPENAI_API_KEY = key or H.KEY }
  end

  lazy_setup(function()
    E = emulator.start{ job_seconds = 1, api_key = H.KEY }
    dir = H.tempdir()
    root = (sh("pwd")):match("[^\n]+")
    -- The documented route without a plugin manager: a clone in pack/*/start, then make nvim.
    plugin = dir .. "/data/nvim/site/pack/sora/start/sora"
    assert(os.execute("mkdir -p " .. q(plugin)))
    local copied = select(2, sh("cp -R Makefile csrc lua plugin doc tools " .. q(plugin)
      .. " && rm -f " .. q(plugin .. "/lua/sora/core.so") .. " " .. q(plugin .. "/doc/tags")))
    assert.are.equal(0, copied)
    local out, built = sh("cd " .. q(plugin) .. " && make -s nvim")
    assert.are.equal(0, built, out)
  end)

  lazy_teardown(function()
    if E then E:stop() end
    if dir then H.rmdir(dir) end
  end)

  it("is installed by make nvim: the core for LuaJIT on the runtimepath, and help tags", function()
    assert.is_true(H.exists(plugin .. "/lua/sora/core.so"))
    local tags = H.read(plugin .. "/doc/tags")
    assert.truthy(tags:find("\nsora\tsora.txt\t", 1, true), tags)
    assert.truthy(tags:find(":SoraGenerate\tsora.txt\t", 1, true), tags)
  end)

  describe(":checkhealth sora", function()
    it("finds and loads the module, names libcurl, sees the key, reaches the base URL", function()
      local r = session{ command = "checkhealth sora", env = served() }
      local text = table.concat(r.lines, "\n")
      assert.matches("## sora", text, 1, true)
      assert.matches("sora.core: " .. plugin .. "/lua/sora/core.so", text, 1, true)
      assert.matches("OK: sora [%d.]+ loaded %(LuaJIT", text)
      assert.matches("OK: libcurl %d+%.%d+", text)
      assert.matches("OK: API key: from $OPENAI_API_KEY", text, 1, true)
      assert.matches("OK: base URL " .. E.url .. " is reachable and accepts the key", text, 1, true)
      assert.is_nil(text:find("ERROR", 1, true), text)
      assert.is_nil(text:find(H.KEY, 1, true), "the key must never be shown")
    end)

    it("reports a missing key and an unreachable base URL as errors", function()
      local r = session{ command = "checkhealth sora",
        env = { OPENAI_BASE_URL = "http://127.0.0.1:1/v1" } }
      local text = table.concat(r.lines, "\n")
      assert.matches("OK: libcurl", text, 1, true)
      assert.matches("ERROR: no API key", text, 1, true)
      assert.matches("ERROR: base URL http://127.0.0.1:1/v1 is not reachable: sora: connection", text, 1, true)
    end)

    it("reports a key the server refuses", function()
      local r = session{ command = "checkhealth sora", env = served("sk-wrong") }
      local text = table.concat(r.lines, "\n")
      assert.matches("ERROR: base URL " .. E.url .. " is reachable but refused the key (401 authentication)",
        text, 1, true)
      assert.is_nil(text:find("sk-wrong", 1, true), "the key must never be shown")
    end)
  end)

  it("without make nvim, says what is missing: in :checkhealth and as a notification", function()
    -- the same package, never built: its own XDG_DATA_HOME
    local data = dir .. "/unbuilt"
    local unbuilt = data .. "/nvim/site/pack/sora/start"
    assert(os.execute("mkdir -p " .. q(unbuilt) .. " && cp -R " .. q(plugin) .. " " .. q(unbuilt)
      .. " && rm " .. q(unbuilt .. "/sora/lua/sora/core.so")))
    for _, elsewhere in ipairs{ "/usr/local/lib/lua/5.1/sora/core.so",
                                "/usr/lib/x86_64-linux-gnu/lua/5.1/sora/core.so" } do
      if H.exists(elsewhere) then
        pending("a sora core for Lua 5.1 is installed at " .. elsewhere .. ": Neovim would load it")
        return
      end
    end
    local vars = served()
    vars.XDG_DATA_HOME = data
    local health = session{ command = "checkhealth sora", env = vars }
    local text = table.concat(health.lines, "\n")
    assert.matches("ERROR: sora.core (the C module) was not found", text, 1, true)
    assert.matches("make nvim", text, 1, true)
    local r = session{ command = "SoraGenerate a boat", ["until"] = "saved to", env = vars }
    local errors = errors_of(r)
    assert.are.equal(1, #errors)
    assert.matches("^sora: :SoraGenerate: cannot load the sora module: .*module 'sora.core' not found.*make nvim",
      errors[1])
  end)

  it(":help sora opens doc/sora.txt", function()
    local r = session{ command = "help sora" }
    assert.are.equal("help", r.filetype)
    assert.matches("doc/sora%.txt$", r.buffer)
    assert.matches("%*sora%*", table.concat(r.lines, "\n"))
    local c = session{ command = "help :SoraGenerate" }
    assert.matches("doc/sora%.txt$", c.buffer)
  end)

  describe(":SoraGenerate", function()
    it("generates and downloads the video while the editor keeps answering", function()
      -- an emulator whose videos weigh 16 MB: the download spans many ticks too
      local big = emulator.start{ job_seconds = 1, api_key = H.KEY, video_bytes = VIDEO_BYTES }
      finally(function() big:stop() end)
      local output = dir .. "/boat.mp4"
      local r = session{ command = "SoraGenerate seconds=4 output=" .. output .. " a paper boat",
        ["until"] = "saved to", env = { OPENAI_BASE_URL = big.url, OPENAI_API_KEY = H.KEY } }
      report("nvim", string.format("generate + %d MB download: %d ticks of a 10 ms timer in %.0f ms,"
        .. " longest gap %.1f ms", VIDEO_BYTES / 2^20, r.ticks, r.elapsed_ms or -1, r.longest_gap_ms))
      assert.are.same({}, errors_of(r))
      local last = r.notifications[#r.notifications].message
      assert.matches("^sora: video_%w+ saved to " .. output:gsub("%p", "%%%0") .. "$", last)
      assert.is_true(synthetic.matches(output, VIDEO_BYTES))
      assert.is_true(r.ticks > 5, "the editor stopped ticking: " .. r.ticks)
      assert.is_false(r.driving, "the driver outlived its last task")
      -- what was asked is what the emulator got
      local created = H.matching(big, "POST", "^/v1/videos$")
      local request = created[#created]
      local sent = cjson.decode(request.body)
      assert.are.equal("a paper boat", sent.prompt)
      assert.are.equal("4", sent.seconds)
    end)

    it("uploads an image= reference with the options before the prompt", function()
      local image = root .. "/" .. H.FIXTURES .. "ref-1280x720.png"
      local output = dir .. "/from-image.mp4"
      local r = session{ command = "SoraGenerate size=1280x720 model=sora-2-pro image=" .. image
        .. " output=" .. output .. " a boat from a picture", ["until"] = "saved to", env = served() }
      assert.are.same({}, errors_of(r))
      assert.are.equal(H.media("video.mp4"), H.read(output))
      local created = H.matching(E, "POST", "^/v1/videos$")
      local request = created[#created]
      assert.are.equal("ref-1280x720.png", H.part(request, "input_reference").filename)
      assert.are.equal("image/png", H.part(request, "input_reference").content_type)
      assert.are.equal("a boat from a picture", H.part(request, "prompt").data)
      assert.are.equal("sora-2-pro", H.part(request, "model").data)
      assert.are.equal("1280x720", H.part(request, "size").data)
    end)

    it("reports a missing key as a notification", function()
      local r = session{ command = "SoraGenerate a boat", ["until"] = "saved to",
        env = { OPENAI_BASE_URL = E.url } }
      assert.are.same({ "sora: :SoraGenerate: no API key: pass api_key or set OPENAI_API_KEY" }, errors_of(r))
    end)

    it("reports a bad base URL as a notification", function()
      local r = session{ command = "SoraGenerate a boat", ["until"] = "saved to",
        setup = "{ base_url = 'ftp://example.com/v1' }", env = { OPENAI_API_KEY = H.KEY } }
      local errors = errors_of(r)
      assert.are.equal(1, #errors)
      assert.matches("^sora: :SoraGenerate: base_url must start with http:// or https://", errors[1])
    end)

    it("reports an unreachable server as a notification", function()
      local r = session{ command = "SoraGenerate a boat", ["until"] = "saved to",
        setup = "{ max_retries = 0 }",
        env = { OPENAI_BASE_URL = "http://127.0.0.1:1/v1", OPENAI_API_KEY = H.KEY } }
      local errors = errors_of(r)
      assert.are.equal(1, #errors)
      assert.matches("^sora: :SoraGenerate: connection: ", errors[1])
    end)

    it("reports an API error as a notification", function()
      local r = session{ command = "SoraGenerate size=3x3 a boat", ["until"] = "saved to",
        env = served() }
      local errors = errors_of(r)
      assert.are.equal(1, #errors)
      assert.matches("^sora: :SoraGenerate: bad_request %(400%): Invalid value: '3x3'.*param=size", errors[1])
    end)

    it("reports a failed video as a notification", function()
      local r = session{ command = "SoraGenerate a boat #fail", ["until"] = "saved to",
        env = served() }
      local errors = errors_of(r)
      assert.are.equal(1, #errors)
      assert.matches("^sora: :SoraGenerate: failed: video video_%w+ failed: .*moderation_blocked", errors[1])
    end)

    it("refuses an output or output_dir it cannot write, before anything is sent", function()
      E:clear_requests()
      local r = session{ command = "SoraGenerate output=" .. dir .. "/no/such/x.mp4 a boat",
        ["until"] = "saved to", env = served() }
      assert.are.same({ "sora: :SoraGenerate: option 'output': cannot write '" .. dir .. "/no/such/x.mp4': no such directory" },
        errors_of(r))
      r = session{ command = "SoraGenerate a boat", ["until"] = "saved to",
        setup = string.format("{ output_dir = %q }", dir .. "/missing"), env = served() }
      assert.are.same({ "sora: :SoraGenerate: option 'output_dir': cannot write '" .. dir .. "/missing/<id>.mp4': "
        .. "no such directory" }, errors_of(r))
      assert.are.same({}, E:requests())
    end)

    it("refuses an unknown key=value option, naming it, and sends nothing", function()
      E:clear_requests()
      local r = session{ command = "SoraGenerate bogus=1 a boat", ["until"] = "saved to", env = served() }
      local errors = errors_of(r)
      assert.are.equal(1, #errors)
      assert.matches("^sora: :SoraGenerate: unknown option 'bogus' %(its options: ", errors[1])
      r = session{ command = "SoraGenerate modle=sora-2 a boat", ["until"] = "saved to", env = served() }
      assert.matches("unknown option 'modle' %(did you mean 'model'%?%)", errors_of(r)[1])
      assert.are.same({}, E:requests())
      -- after --, a word with = is the prompt's
      local output = dir .. "/emc2.mp4"
      r = session{ command = "SoraGenerate output=" .. output .. " -- E=mc2 explained", ["until"] = "saved to",
        env = served() }
      assert.are.same({}, errors_of(r))
      local created = H.matching(E, "POST", "^/v1/videos$")
      assert.are.equal("E=mc2 explained", cjson.decode(created[#created].body).prompt)
    end)

    it("reports a missing prompt as a notification", function()
      local r = session{ command = "SoraGenerate", ["until"] = "saved to", env = served() }
      assert.matches("a prompt is needed", errors_of(r)[1])
    end)
  end)

  it(":SoraList lists the videos in a scratch buffer, :SoraDownload fetches one", function()
    local c = require("sora").new{ api_key = H.KEY, base_url = E.url }
    finally(function() c:close() end)
    local video = H.completed_video(c, E, { prompt = "a listed lighthouse" })
    local r = session{ command = "SoraList 5", ["until"] = "listed", env = served() }
    assert.are.same({}, errors_of(r))
    assert.are.equal("sora://videos", r.buffer)
    assert.matches(video.id .. "%s+completed%s+100%%.*a listed lighthouse", table.concat(r.lines, "\n"))
    local output = dir .. "/listed.mp4"
    local d = session{ command = "SoraDownload " .. video.id .. " " .. output, ["until"] = "saved to",
      env = served() }
    assert.are.same({}, errors_of(d))
    assert.are.equal(H.media("video.mp4"), H.read(output))
  end)

  it(":SoraStatus tells what runs, :SoraCancel stops it", function()
    local r = session{ command = "SoraGenerate a boat to cancel\nSoraStatus\nSoraCancel\nSoraStatus",
      ["until"] = "aborted", env = served() }
    local messages = {}
    for _, n in ipairs(r.notifications) do messages[#messages + 1] = n.message end
    assert.are.equal("sora: 1 job, generate", messages[1])
    assert.are.equal("sora: cancelled 1 job(s)", messages[2])
    assert.matches("^sora: aborted", messages[3])
    assert.are.equal("sora: nothing running", messages[4])
    assert.are.equal(4, #messages, table.concat(messages, "\n"))
    -- a cancel the user asked for is news, not an error
    assert.are.same({}, errors_of(r))
    assert.are.equal(2, r.notifications[3].level) -- vim.log.levels.INFO
  end)

  it("sora.nvim.download: a thumbnail named by its type; a raising on_done is a notification", function()
    local c = require("sora").new{ api_key = H.KEY, base_url = E.url }
    finally(function() c:close() end)
    local video = H.completed_video(c, E, { prompt = "a thumbnail" })
    local out_dir = dir .. "/thumbs"
    assert(os.execute("mkdir -p " .. q(out_dir)))
    local r = session{ setup = string.format("{ output_dir = %q }", out_dir), ["until"] = "on_done",
      command = string.format("lua require('sora.nvim').download(%q, nil, { variant = 'thumbnail',"
        .. " on_done = function() error('boom') end })", video.id), env = served() }
    local messages = {}
    for _, n in ipairs(r.notifications) do messages[#messages + 1] = n.message end
    assert.are.equal(string.format("sora: %s saved to %s/%s.webp", video.id, out_dir, video.id), messages[1])
    assert.matches("^sora: on_done: .*boom$", messages[2])
    assert.are.equal(H.media("thumbnail.webp"), H.read(out_dir .. "/" .. video.id .. ".webp"))
  end)

  it(":SoraDownload of an unknown video is a notification naming the command", function()
    local r = session{ command = "SoraDownload video_nope", ["until"] = "saved to", env = served() }
    assert.matches("^sora: :SoraDownload: not_found %(404%): ", errors_of(r)[1])
    r = session{ command = "SoraList", ["until"] = "listed", setup = "{ max_retries = 0 }",
      env = { OPENAI_BASE_URL = "http://127.0.0.1:1/v1", OPENAI_API_KEY = H.KEY } }
    assert.matches("^sora: :SoraList: connection: ", errors_of(r)[1])
  end)

  -- as :SoraGenerate does: a download spent on a file that cannot be written is wasted
  it(":SoraDownload refuses a path or output_dir it cannot write, before anything is sent", function()
    E:clear_requests()
    local r = session{ command = "SoraDownload video_1 " .. dir .. "/no/such/x.mp4", ["until"] = "saved to",
      env = served() }
    assert.are.same({ "sora: :SoraDownload: cannot write '" .. dir .. "/no/such/x.mp4': no such directory" },
      errors_of(r))
    r = session{ command = "SoraDownload video_1", ["until"] = "saved to",
      setup = string.format("{ output_dir = %q }", dir .. "/missing"), env = served() }
    assert.are.same({ "sora: :SoraDownload: option 'output_dir': cannot write '" .. dir
      .. "/missing/video_1.mp4': no such directory" }, errors_of(r))
    -- the Lua call: the same check, told to on_done too
    r = session{ ["until"] = "on_done", env = served(), command = string.format(
      "lua require('sora.nvim').download('video_1', %q, { on_done = function(_, e) "
      .. "vim.notify('on_done: ' .. e) end })", dir .. "/no/such/y.mp4") }
    assert.are.same({ "sora: cannot write '" .. dir .. "/no/such/y.mp4': no such directory" }, errors_of(r))
    assert.are.equal("on_done: sora: cannot write '" .. dir .. "/no/such/y.mp4': no such directory",
      r.notifications[2].message)
    assert.are.same({}, E:requests())
  end)
end)
