-- The README's install routes, run as a user would: `make dist` and `make rock` (the release
-- tarballs, rockspecs and source rocks), `luarocks install` of those rocks into a fresh tree
-- with no network, a custom libcurl through CURL_INCDIR, headers missing, `make install` of
-- the command line tools, and `make demo`.
local helper = require "support.client"
local emulator = require "support.emulator"

local q = helper.shell_quote

-- A shell command's output and whether it exited 0 (read from the shell: the close of a
-- popen'd file tells nothing on Lua 5.1 and LuaJIT).
local function run(command)
  local p = assert(io.popen("(" .. command .. ") 2>&1; echo \"exit $?\""))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.*)exit (%d+)\n$")
  return body, code == "0"
end

local function assert_run(command)
  local out, ok = run(command)
  assert(ok, command .. "\n" .. out)
  return out
end

-- The Makefile's LUA_VERSION and the interpreter for the running Lua (LuaJIT: the 5.1 ABI).
local LUA_VERSION = rawget(_G, "jit") and "5.1" or _VERSION:match("Lua (%d%.%d)")
local LUA = rawget(_G, "jit") and "luajit" or "lua" .. LUA_VERSION

local VERSION = helper.read("csrc/sora.h"):match('#define SORA_VERSION "([^"]+)"')

-- A copy of what a release is made from, so that dist, rock and builds leave the checkout alone.
local function copy_sources(dir)
  assert_run("cp -R csrc lua bin docs tools rockspecs README.md Makefile sora-scm-1.rockspec "
    .. q(dir) .. " && rm -f " .. q(dir) .. "/rockspecs/*-[0-9]*-[0-9]*.rockspec")
end

-- A rockspec's fields, read as LuaRocks reads it: a Lua chunk that sets globals.
local function load_rockspec(path)
  local env = {}
  local chunk
  if setfenv then
    chunk = assert(loadstring(helper.read(path), "@" .. path))
    setfenv(chunk, env)
  else
    chunk = assert(load(helper.read(path), "@" .. path, "t", env))
  end
  chunk()
  return env
end

local function listing(tarball)
  local names = {}
  for name in assert_run("tar tzf " .. q(tarball)):gmatch("[^\n]+") do names[name] = true end
  return names
end

describe("make dist and make rock", function()
  local dir, dist
  lazy_setup(function()
    dir = helper.tempdir()
    copy_sources(dir)
    dist = dir .. "/dist/"
    assert_run("cd " .. q(dir) .. " && make -s dist && make -s rock")
  end)
  lazy_teardown(function() helper.rmdir(dir) end)

  it("makes a client tarball without the emulator and an emulator tarball with it alone", function()
    local client = listing(dist .. "sora-" .. VERSION .. ".tar.gz")
    local top = "sora-" .. VERSION .. "/"
    assert.is_true(client[top .. "csrc/client.c"])
    assert.is_true(client[top .. "lua/sora/init.lua"])
    assert.is_true(client[top .. "Makefile"])
    for name in pairs(client) do
      assert.is_nil(name:match("^" .. top:gsub("%p", "%%%0") .. "lua/sora/emulator"), name)
      assert.is_nil(name:match("bin/sora%-emulator$"), name)
    end
    local emulator_files = listing(dist .. "sora-emulator-" .. VERSION .. ".tar.gz")
    local etop = "sora-emulator-" .. VERSION .. "/"
    assert.is_true(emulator_files[etop .. "lua/sora/emulator/init.lua"])
    assert.is_true(emulator_files[etop .. "lua/sora/emulator/media/video.mp4"])
    assert.is_true(emulator_files[etop .. "bin/sora-emulator"])
    for name in pairs(emulator_files) do
      assert.is_nil(name:match("csrc/"), name)
      assert.is_nil(name:match("lua/sora/[%w_]+%.lua$"), name)
    end
  end)

  it("writes versioned rockspecs under rockspecs/ that point at the tarballs", function()
    local client = load_rockspec(dir .. "/rockspecs/sora-" .. VERSION .. "-1.rockspec")
    assert.are.equal(VERSION .. "-1", client.version)
    assert.are.equal("file://" .. dist .. "sora-" .. VERSION .. ".tar.gz", client.source.url)
    assert.are.equal("sora-" .. VERSION, client.source.dir)
    local md5 = assert_run("md5sum < " .. q(dist .. "sora-" .. VERSION .. ".tar.gz")):sub(1, 32)
    assert.are.equal(md5, client.source.md5)
    -- the client needs lua-cjson; luasocket is the emulator's alone
    local deps = table.concat(client.dependencies, "\n")
    assert.matches("^lua >= 5.1, < 5.5\n", deps)
    assert.matches("\nlua%-cjson\n?", deps)
    assert.is_nil(deps:find("socket", 1, true))
    assert.are.equal("busted", client.test.type)
    for _, field in ipairs({ "homepage", "issues_url", "maintainer", "license", "summary" }) do
      assert.are.equal("string", type(client.description[field]), field)
    end
    assert.is_true(#client.description.labels > 0)
    assert.are.same({ "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" }, client.build.modules["sora.core"].incdirs)
    local emulator_spec = load_rockspec(dir .. "/rockspecs/sora-emulator-" .. VERSION .. "-1.rockspec")
    assert.are.equal("sora-emulator", emulator_spec.package)
    -- the repository's URLs, written in the client's rockspec alone
    assert.are.equal(client.description.homepage, emulator_spec.description.homepage)
    assert.are.equal(client.description.issues_url, emulator_spec.description.issues_url)
    assert.are.same({ "lua >= 5.1, < 5.5", "sora == " .. VERSION, "luasocket" }, emulator_spec.dependencies)
    assert.are.same({ ["sora-emulator"] = "bin/sora-emulator" }, emulator_spec.build.install.bin)
  end)

  it("installs every bin/* script but the emulator's with the client rock", function()
    local client = load_rockspec(dir .. "/rockspecs/sora-" .. VERSION .. "-1.rockspec")
    local expected = {}
    for _, name in ipairs(helper.ls("bin")) do
      if name ~= "sora-emulator" then expected[name] = "bin/" .. name end
    end
    assert.are.same(expected, client.build.install.bin)
  end)

  it("builds every csrc/*.c in the rockspec, as the Makefile does", function()
    local client = load_rockspec("sora-scm-1.rockspec")
    local listed = {}
    for _, source in ipairs(client.build.modules["sora.core"].sources) do listed[#listed + 1] = source end
    table.sort(listed)
    local present = {}
    for _, name in ipairs(helper.ls("csrc")) do
      if name:match("%.c$") then present[#present + 1] = "csrc/" .. name end
    end
    assert.are.same(present, listed)
  end)

  it("packs both source rocks into dist/, a local server of rocks", function()
    for _, rock in ipairs({ "sora", "sora-emulator" }) do
      local names = assert_run("unzip -Z1 " .. q(dist .. rock .. "-" .. VERSION .. "-1.src.rock"))
      assert.matches(rock .. "-" .. VERSION .. "-1.rockspec\n", names, 1, true)
      assert.matches(rock .. "-" .. VERSION .. ".tar.gz\n", names, 1, true)
    end
    local manifest = helper.read(dist .. "manifest")
    assert.matches('["sora-emulator"]', manifest, 1, true)
    assert.matches('\n   sora = {', manifest, 1, true)
  end)

  describe("luarocks install of the source rocks into a fresh tree, offline, for Lua " .. LUA_VERSION, function()
    local tree
    lazy_setup(function()
      -- A new network namespace has no network at all; where one cannot be made (not root),
      -- rock-install still gives LuaRocks no server but dist/.
      local _, can_unshare = run("unshare -n true")
      local offline = can_unshare and "unshare -n " or ""
      tree = dir .. "/build/rocks/" .. LUA_VERSION
      assert_run("cd " .. q(dir) .. " && " .. offline .. "make -s rock-install LUA_VERSION=" .. LUA_VERSION)
    end)

    it("gives a module that the interpreter loads from the tree and that works", function()
      local E = emulator.start{ job_seconds = 0.2 }
      local share, lib = tree .. "/share/lua/" .. LUA_VERSION, tree .. "/lib/lua/" .. LUA_VERSION
      local code = string.format([[
        package.path = %q .. package.path
        package.cpath = %q .. package.cpath
        local sora = require "sora"
        local client = sora.new{ api_key = "sk-test", base_url = %q }
        local video = assert(client:create{ prompt = "installed" })
        local core -- PUC 5.1 has no package.searchpath
        for template in package.cpath:gmatch("[^;]+") do
          local file = template:gsub("%%?", "sora/core")
          local f = io.open(file, "rb")
          if f then core = file; f:close(); break end
        end
        print(sora._VERSION, core, video.status)
      ]], share .. "/?.lua;" .. share .. "/?/init.lua;", lib .. "/?.so;", E.url)
      local out, ok = run("cd / && " .. LUA .. " -e " .. q(code))
      E:stop()
      assert(ok, out)
      assert.are.equal(VERSION .. "\t" .. lib .. "/sora/core.so\tqueued\n", out)
      assert.is_true(helper.exists(share .. "/sora/emulator/media/video.mp4"))
    end)

    it("installs sora-emulator as a command that serves the API", function()
      local out = assert_run(q(tree .. "/bin/sora-emulator") .. " --help")
      assert.matches("%-%-port", out)
    end)

    it("installs sora as a command that loads the tree's module (its argparse from the system)", function()
      local out = assert_run("cd / && env -u LUA_PATH -u LUA_CPATH " .. q(tree .. "/bin/sora") .. " --version")
      assert.matches("^sora " .. VERSION:gsub("%p", "%%%0") .. " %(libcurl ", out)
    end)
  end)
end)

describe("building against a libcurl of one's own", function()
  local dir
  before_each(function() dir = helper.tempdir() end)
  after_each(function() helper.rmdir(dir) end)

  -- A curl/curl.h that stops the compiler (not the preprocessor): whoever compiles with it was
  -- told CURL_INCDIR.
  local function marked_incdir()
    assert_run("mkdir -p " .. q(dir .. "/inc/curl"))
    helper.write(dir .. "/inc/curl/curl.h", "typedef int the_curl_h_of_CURL_INCDIR[-1];\n")
    return dir .. "/inc"
  end

  it("make compiles with CURL_INCDIR", function()
    local out, ok = run("make -s BUILD=" .. q(dir .. "/build") .. " LUA_VERSION=" .. LUA_VERSION
      .. " CURL_INCDIR=" .. q(marked_incdir()))
    assert.is_false(ok)
    assert.matches("the_curl_h_of_CURL_INCDIR", out, 1, true)
  end)

  it("luarocks make compiles with CURL_INCDIR", function()
    local incdir = marked_incdir()
    copy_sources(dir)
    local out, ok = run("cd " .. q(dir) .. " && luarocks --lua-version " .. LUA_VERSION
      .. " make --deps-mode=none --tree tree sora-scm-1.rockspec CURL_INCDIR=" .. q(incdir))
    assert.is_false(ok)
    assert.matches("the_curl_h_of_CURL_INCDIR", out, 1, true)
  end)

  -- A compiler that sees the system's headers but curl's: libcurl itself stays installed.
  local function cc_without_curl_headers()
    local inc = dir .. "/sysinc"
    assert_run(string.format([[
      set -e
      mkdir -p %s/x86_64-linux-gnu
      for f in /usr/include/*; do [ "$f" = /usr/include/x86_64-linux-gnu ] || [ "$f" = /usr/include/curl ] || ln -s "$f" %s/; done
      for f in /usr/include/x86_64-linux-gnu/*; do [ "${f##*/}" = curl ] || ln -s "$f" %s/x86_64-linux-gnu/; done]],
      q(inc), q(inc), q(inc)))
    local gcc_include = assert_run("cc -print-file-name=include"):gsub("%s+$", "")
    return string.format("cc -nostdinc -isystem %s -isystem %s/x86_64-linux-gnu -isystem %s",
      gcc_include, inc, inc)
  end

  it("make names the package when the library is there but its headers are not, before compiling", function()
    local out, ok = run("make BUILD=" .. q(dir .. "/build") .. " LUA_VERSION=" .. LUA_VERSION
      .. " CURL_CFLAGS= CC=" .. q(cc_without_curl_headers()))
    assert.is_false(ok)
    assert.matches("libcurl is installed but its headers (curl/curl.h) are not", out, 1, true)
    assert.matches("libcurl4-openssl-dev", out, 1, true)
    assert.is_nil(out:find(" -c ", 1, true), out)
  end)

  it("the compiler says the same when the build bypasses the Makefile (luarocks)", function()
    local out, ok = run(cc_without_curl_headers() .. " -I/usr/include/lua5.4 -fsyntax-only csrc/core.c")
    assert.is_false(ok)
    assert.matches("curl/curl.h not found: install libcurl4-openssl-dev", out, 1, true)
  end)
end)

describe("make install", function()
  it("installs every command line tool with a shebang for the chosen Lua", function()
    local dir = helper.tempdir()
    assert_run("make -s install LUA_VERSION=" .. LUA_VERSION .. " DESTDIR=" .. q(dir) .. " PREFIX=/usr")
    local expected_lua = LUA_VERSION == "5.1" and "lua5.1" or "lua" .. LUA_VERSION
    for _, name in ipairs(helper.ls("bin")) do
      local installed = dir .. "/usr/bin/" .. name
      assert.are.equal("#!/usr/bin/env " .. expected_lua, helper.read(installed):match("^[^\n]*"))
      assert.matches("x", assert_run("stat -c %A " .. q(installed)):sub(4, 4))
    end
    local share = dir .. "/usr/share/lua/" .. LUA_VERSION
    local paths = "LUA_PATH=" .. q(share .. "/?.lua;" .. share .. "/?/init.lua;;") .. " LUA_CPATH="
      .. q(dir .. "/usr/lib/lua/" .. LUA_VERSION .. "/?.so;;")
    local out = assert_run(paths .. " " .. q(dir .. "/usr/bin/sora-emulator") .. " --help")
    assert.matches("%-%-port", out)
    -- the installed sora loads the installed core, whichever `lua` comes first on the PATH
    out = assert_run("cd / && " .. paths .. " " .. q(dir .. "/usr/bin/sora") .. " --version")
    assert.matches("^sora " .. VERSION:gsub("%p", "%%%0") .. " %(libcurl ", out)
    helper.rmdir(dir)
  end)
end)

describe("make demo", function()
  -- on the running Lua's version: each run of make test-all tries the demo on its own Lua
  it("generates a playable MP4 against the emulator, showing progress, on Lua " .. LUA_VERSION, function()
    local dir = helper.tempdir()
    local out_file = dir .. "/demo.mp4"
    local out, ok = run("env -u OPENAI_API_KEY -u OPENAI_BASE_URL make -s demo LUA_VERSION=" .. LUA_VERSION
      .. " DEMO_ARGS=" .. q(out_file))
    assert(ok, out)
    assert.matches("%] 100%% completed", out)
    assert.matches("wrote " .. out_file:gsub("%p", "%%%0"), out)
    local bytes = helper.read(out_file)
    assert.are.equal("ftyp", bytes:sub(5, 8))
    assert.are.equal(#helper.media("video.mp4"), #bytes)
    helper.rmdir(dir)
  end)
end)
