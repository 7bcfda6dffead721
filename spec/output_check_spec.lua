-- args.output: the check that generate, generate_many, the command and the plugin make before
-- a create, so that no video is paid for whose file cannot be written. Through the compiled
-- core (core._check_output) on real paths.
local args = require "sora.args"
local core = require "sora.core"

describe("the output check before a create", function()
  local dir

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
  end)

  after_each(function()
    os.execute("chmod -R u+w '" .. dir .. "'; rm -rf '" .. dir .. "'")
  end)

  local function leftovers()
    local names = {}
    local pipe = io.popen("ls -A '" .. dir .. "'")
    for name in pipe:lines() do names[#names + 1] = name end
    pipe:close()
    return names
  end

  it("passes a new file in a writable directory and leaves nothing behind", function()
    assert.is_true(core._check_output(dir .. "/new.mp4"))
    assert.same({}, leftovers())
    assert.equal(dir .. "/new.mp4", args.output("generate", 1, dir .. "/new.mp4", "output"))
  end)

  it("passes an existing regular file, untouched", function()
    local f = assert(io.open(dir .. "/old.mp4", "wb"))
    f:write("old bytes")
    f:close()
    assert.is_true(core._check_output(dir .. "/old.mp4"))
    f = assert(io.open(dir .. "/old.mp4", "rb"))
    assert.equal("old bytes", f:read("*a"))
    f:close()
    assert.same({ "old.mp4" }, leftovers())
  end)

  it("refuses a missing directory, a directory, a file as a directory and a device", function()
    assert.same({ nil, "no such directory" }, { core._check_output(dir .. "/no/such/x.mp4") })
    assert.same({ nil, "is a directory" }, { core._check_output(dir) })
    local f = assert(io.open(dir .. "/file", "wb"))
    f:close()
    assert.same({ nil, "a directory in the path is a file" },
                { core._check_output(dir .. "/file/x.mp4") })
    assert.same({ nil, "is not a regular file" }, { core._check_output("/dev/null") })
    assert.same({ nil, "empty path" }, { core._check_output("") })
  end)

  it("says a directory that exists but takes no new file is not writable, not missing", function()
    -- Linux's /proc/self: there, even root's create fails with ENOENT
    if not io.open("/proc/self/status") then return pending("no /proc/self here") end
    assert.same({ nil, "the directory is not writable" }, { core._check_output("/proc/self/x.mp4") })
    assert.same({ nil, "the directory is not writable" }, { core._check_output("/proc/version") })
  end)

  it("refuses a directory it cannot write in (unless root, who can)", function()
    assert(os.execute("mkdir '" .. dir .. "/ro' && chmod 555 '" .. dir .. "/ro'"))
    local ok, why = core._check_output(dir .. "/ro/x.mp4")
    local root = io.popen("id -u"):read("*l") == "0"
    if root then
      assert.is_true(ok)
    else
      assert.same({ nil, "the directory is not writable" }, { ok, why })
    end
  end)

  it("raises an argument error naming the call, the option and the path", function()
    local ok, err = pcall(args.output, "generate", 1, dir .. "/no/x.mp4", "output")
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'generate' %(option 'output': cannot write '.*/no/x%.mp4': "
                   .. "no such directory%)", err)
    ok, err = pcall(args.output, "generate_many", 1, dir, "output", "jobs[2]: ")
    assert.matches("to 'generate_many' %(jobs%[2%]: option 'output': cannot write '.*': is a directory%)", err)
    assert.is_nil(args.output("generate", 1, nil, "output"))
    assert.has_error(function() core._check_output(nil) end)
  end)
end)
