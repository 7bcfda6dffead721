-- Progress of the `sora` command: a bar redrawn in place on a real pseudo-terminal (made by
-- util-linux's `script`), plain lines through pipes, nothing or stderr when asked.
local H = require "support.client"
local cli = require "support.cli"

describe("sora progress", function()
  local E, env, dir

  lazy_setup(function()
    E, env, dir = cli.start(0.6)
  end)

  lazy_teardown(function()
    cli.stop(E, dir)
  end)

  -- Carriage returns that do not end a line: the bar going back to redraw itself.
  local function redraws(text)
    local count = 0
    for _ in text:gmatch("\r[^\n]") do count = count + 1 end
    return count
  end

  it("draws a bar on a terminal while waiting and downloading", function()
    local r = cli.run_tty({ "generate", "a paper boat", "-o", "tty.mp4", "--interval", "0.1" }, env,
      { dir = dir })
    assert.are.equal(0, r.code, r.output)
    assert.is_true(redraws(r.output) >= 2, r.output)
    assert.matches("video    %[#+%.*%]%s+%d+%% in_progress", r.output)
    assert.matches("video    %[" .. ("#"):rep(24) .. "%] 100%% completed", r.output)
    assert.matches("download %[" .. ("#"):rep(24) .. "%] 100%%", r.output)
    assert.matches("wrote tty.mp4 %(%d+ bytes%)", r.output)
    assert.is_true(H.exists(dir .. "/tty.mp4"))
    -- every redrawn line fits in 60 columns, so that it never wraps
    for line in r.output:gmatch("[^\r\n]+") do assert.is_true(#line < 60 or not line:find("%[")) end
  end)

  it("draws a download's bar on a terminal", function()
    local id = cli.decode(cli.run({ "--json", "create", "x", "--wait" }, env).stdout).id
    local r = cli.run_tty({ "download", id, "-o", "d.mp4" }, env, { dir = dir })
    assert.are.equal(0, r.code, r.output)
    assert.matches("\rdownload %[#+%] 100%% %d+%.%d of %d+%.%d MB", r.output)
  end)

  it("writes plain lines through a pipe: no carriage return, no escape", function()
    local r = cli.run({ "generate", "a paper boat", "-o", "pipe.mp4", "--interval", "0.1" }, env,
      { dir = dir })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:find("[\r\27]"))
    -- on stderr: stdout holds only the result
    assert.are.equal("pipe.mp4\n", r.stdout)
    local lines = cli.lines(r.stderr)
    assert.matches("^created (video_%w+) %(queued%)$", lines[1])
    local id = lines[1]:match("created (video_%w+)")
    assert.is_truthy(r.stderr:find("\n" .. id .. " in_progress %d+%%\n"), r.stderr)
    assert.is_truthy(r.stderr:find("\n" .. id .. " completed 100%%\n"), r.stderr)
    assert.is_truthy(r.stderr:find("\ndownload 100%% %(%d+ of %d+ bytes%)\n"), r.stderr)
    assert.matches("wrote pipe.mp4 %(%d+ bytes%)\n$", r.stderr)
  end)

  it("prints lines, not a bar, on a terminal with --progress lines, and nothing with none", function()
    local r = cli.run_tty({ "generate", "x", "-o", "l.mp4", "--progress", "lines" }, env, { dir = dir })
    assert.are.equal(0, r.code, r.output)
    assert.are.equal(0, redraws(r.output), r.output)
    assert.matches("completed 100%%", r.output)
    r = cli.run({ "generate", "x", "-o", "n.mp4", "--progress", "none" }, env, { dir = dir })
    assert.are.equal(0, r.code)
    assert.is_nil(r.stdout:find("%d%%"), r.stdout)
    assert.is_nil(r.stderr:find("%d%%"), r.stderr)
  end)

  it("keeps stdout for JSON: progress goes to stderr, a bar when it is a terminal", function()
    local r = cli.run({ "--json", "generate", "x", "-o", "j.mp4" }, env, { dir = dir })
    assert.are.equal(0, r.code)
    assert.are.equal(1, #cli.lines(r.stdout))
    assert.matches("completed 100%%", r.stderr)
    r = cli.run_tty({ "--json", "generate", "x", "-o", "j2.mp4" }, env, { dir = dir })
    assert.are.equal(0, r.code, r.output)
    assert.is_true(redraws(r.output) >= 1, r.output)
    -- the bar was ended before the JSON: it starts a line of its own
    local line = r.output:match("\n({[^\r\n]*})\r?\n")
    assert.are.equal("j2.mp4", cli.decode(line).output)
  end)

  it("forces a bar with --progress bar, even through a pipe", function()
    local r = cli.run({ "generate", "x", "-o", "b.mp4", "--progress", "bar" }, env, { dir = dir })
    assert.are.equal(0, r.code)
    assert.is_true(redraws(r.stderr) >= 1, r.stderr)
    assert.are.equal("b.mp4\n", r.stdout)
  end)
end)
