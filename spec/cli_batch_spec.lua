-- `sora batch JOBS -o DIR`, run as a user would (bin/sora in a child process) against the
-- emulator: jobs from text and JSON Lines, the journal a rerun resumes from, --dry-run,
-- --status, --retry-failed, the exit codes and the display.
local H = require "support.client"
local cli = require "support.cli"

describe("sora batch", function()
  local E, env, dir

  lazy_setup(function()
    E, env, dir = cli.start(0.2)
  end)

  lazy_teardown(function()
    cli.stop(E, dir)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  local function sora(args, env_override)
    return cli.run(args, env_override or env, { dir = dir })
  end

  local function creates() return #H.matching(E, "POST", "^/v1/videos$") end

  it("makes one video per prompt line, prints one result a line, and a rerun sends nothing", function()
    H.write(dir .. "/prompts.txt", "a red kite\n\na blue kite\n")
    os.execute("mkdir -p " .. H.shell_quote(dir .. "/kites"))
    local r = sora({ "batch", "prompts.txt", "-o", "kites", "--seconds", "8", "--interval", "0.05" })
    assert.are.equal(0, r.code, r.stderr)
    local lines = cli.lines(r.stdout)
    assert.are.equal(2, #lines)
    table.sort(lines) -- in the order the jobs ended
    assert.matches("^1\tvideo_%w+\tkites/0001%.mp4$", lines[1])
    assert.matches("^3\tvideo_%w+\tkites/0003%.mp4$", lines[2])
    assert.are.equal("ftyp", H.read(dir .. "/kites/0001.mp4"):sub(5, 8))
    assert.are.equal("ftyp", H.read(dir .. "/kites/0003.mp4"):sub(5, 8))
    assert.matches("job 1: done", r.stderr, 1, true)
    local posts = H.matching(E, "POST", "^/v1/videos$")
    assert.are.equal(2, #posts)
    E:clear_requests()
    r = sora({ "batch", "prompts.txt", "-o", "kites", "--seconds", "8" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(2, #cli.lines(r.stdout))
    assert.are.same({}, E:requests())
    assert.truthy(H.read(dir .. "/prompts.txt.journal"))
  end)

  it("exits 12 with a summary of the failed jobs; --status and --retry-failed", function()
    H.write(dir .. "/jobs.jsonl", '{"prompt": "fine", "output": "fine.mp4"}\n'
      .. '{"prompt": "#fail this one", "seconds": 4}\n')
    local r = sora({ "batch", "jobs.jsonl", "--interval", "0.05" })
    assert.are.equal(12, r.code, r.stderr)
    assert.matches("1 of 2 jobs failed", r.stderr, 1, true)
    assert.matches("line 2 (#fail this one)", r.stderr, 1, true)
    assert.are.equal("ftyp", H.read(dir .. "/fine.mp4"):sub(5, 8))
    E:clear_requests()
    r = sora({ "batch", "jobs.jsonl", "--status" }, {})
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("done%s+1", r.stdout)
    assert.matches("failed%s+1", r.stdout)
    assert.matches("failed: line 2: failed:", r.stdout)
    assert.are.same({}, E:requests())
    r = sora({ "batch", "jobs.jsonl", "--retry-failed", "--interval", "0.05" })
    assert.are.equal(12, r.code)
    assert.are.equal(1, creates())
  end)

  it("--dry-run counts videos and seconds per model and size, sending nothing and needing no key", function()
    H.write(dir .. "/plan.jsonl", '{"prompt": "a", "model": "sora-2-pro", "size": "1280x720", "seconds": "8"}\n'
      .. '{"prompt": "b", "model": "sora-2-pro", "size": "1280x720", "seconds": "12"}\n'
      .. '{"prompt": "c"}\n')
    local r = sora({ "batch", "plan.jsonl", "--dry-run" }, {})
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("sora%-2%-pro%s+1280x720%s+2%s+20", r.stdout)
    assert.matches("sora%-2%s+720x1280%s+1%s+4", r.stdout)
    assert.matches("total%s+3%s+24", r.stdout)
    assert.are.same({}, E:requests())
  end)

  it("checks every output before the first create, and refuses a bad line by number", function()
    H.write(dir .. "/bad-out.jsonl", '{"prompt": "a"}\n{"prompt": "b", "output": "nowhere/b.mp4"}\n')
    local r = sora({ "batch", "bad-out.jsonl" })
    assert.are.equal(2, r.code, r.stderr) -- usage: as generate, wait and download, nothing sent
    assert.matches("line 2: cannot write 'nowhere/b.mp4': no such directory", r.stderr, 1, true)
    H.write(dir .. "/bad-line.jsonl", '{"prompt": "a"}\n{"prompt": "b", "colour": "red"}\n')
    r = sora({ "batch", "bad-line.jsonl" })
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("bad-line.jsonl: line 2: unknown field 'colour'", r.stderr, 1, true)
    assert.are.equal(0, creates())
  end)

  it("on a terminal, draws one line per running job and a total", function()
    H.write(dir .. "/tty.txt", "on a terminal\n")
    local r = cli.run_tty({ "batch", "tty.txt", "-o", ".", "--interval", "0.05" }, env, { dir = dir })
    assert.are.equal(0, r.code, r.output)
    assert.matches("job 1 +video_%w+", r.output)
    assert.matches("1 of 1 done, 0 failed, 0 running", r.output, 1, true)
    assert.matches("\27[2K", r.output, 1, true)
  end)
end)
