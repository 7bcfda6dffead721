-- What the packaging says is true. The repository is written in one place, the `homepage` of
-- sora-scm-1.rockspec (the emulator's release rockspec copies it: spec/install_spec.lua):
-- every mention of it in the docs (a plugin manager's "owner/sora", a github.com URL) is that
-- one, and no "<owner>" placeholder is left. The client rock's dependencies are the modules
-- the client and its `sora` command load, so what LuaRocks installs is what runs.
local H = require "support.client"

local function rockspec_field(text, name)
  return text:match("\n%s*" .. name .. ' = "([^"]+)"')
end

-- The files that name the repository for a user.
local function documents()
  local p = assert(io.popen("ls README.md docs/*.md doc/sora.txt examples/nvim/*.lua 2>/dev/null"))
  local files = {}
  for path in p:lines() do files[#files + 1] = path end
  p:close()
  return files
end

describe("packaging", function()
  local client = H.read("sora-scm-1.rockspec")

  it("names the repository in one place, the rockspec, and the docs agree with it", function()
    local homepage = rockspec_field(client, "homepage")
    local repository = homepage and homepage:match("^https://github%.com/([%w._-]+/[%w._-]+)$")
    assert.is_string(repository, "sora-scm-1.rockspec: homepage " .. tostring(homepage))
    assert.are.equal(homepage .. "/issues", rockspec_field(client, "issues_url"))
    assert.is_nil(rockspec_field(H.read("rockspecs/sora-emulator-scm-1.rockspec"), "homepage"),
      "the emulator's rockspec names the repository again")
    local files, mentions = documents(), 0
    assert.is_true(#files > 3)
    for _, path in ipairs(files) do
      local n = 0
      for line in io.lines(path) do
        n = n + 1
        local where = path .. ":" .. n .. ": " .. line
        assert.is_nil(line:find("<owner>", 1, true), where)
        for named in line:gmatch("github%.com/([%w._-]+/sora)[^%w._-]") do
          assert.are.equal(repository, named, where)
          mentions = mentions + 1
        end
        for named in line:gmatch("[\"']([%w._-]+/sora)[\"']") do
          assert.are.equal(repository, named, where)
          mentions = mentions + 1
        end
      end
    end
    assert.is_true(mentions >= 4, "the plugin managers' specs name the repository")
  end)

  it("declares what the client and its command load: lua-cjson and argparse, not luasocket", function()
    local deps = client:match("\ndependencies = (%b{})")
    assert.matches('"lua%-cjson"', deps)
    assert.matches('"argparse"', deps)
    assert.is_nil(deps:find("socket", 1, true))
    assert.matches('bin = { sora = "bin/sora" }', client, 1, true)
    -- the command's parser is argparse, loaded when the command starts
    assert.matches('require "argparse"', H.read("lua/sora/cli/parser.lua"), 1, true)
    -- the offline install declares Debian's lua-argparse as provided, as it does lua-cjson
    assert.matches("argparse:lua-argparse", H.read("tools/luarocks-offline.sh"), 1, true)
  end)
end)
