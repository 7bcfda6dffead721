-- Cancelling a task cancels the tasks it spawned (issue 7, rule 1): their transfers are
-- aborted, a child not yet started never starts, and nothing is sent once cancel() returns.
local socket = require "socket"
local H = require "support.client"
local T = require "support.tasks"

describe("cancelling a task", function()
  local E, c, dir

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    H.stop(E, c)
    H.rmdir(dir)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  local function posts() return #H.matching(E, "POST", "^/v1/videos$") end

  it("that runs generate_many: the emulator records no request after cancel", function()
    local jobs = {}
    for i = 1, 8 do
      jobs[i] = { prompt = "billed " .. i, output = dir .. "/billed-" .. i .. ".mp4", interval = 0.05 }
    end
    local task = c:spawn(function() return c:generate_many(jobs, { concurrency = 2 }) end)
    local run = T.drive(c, function() return posts() >= 2 end, 10)
    assert.is_true(run.finished, "the batch never started")
    assert.is_false(task:done())
    assert.is_true(task:cancel())
    -- nothing moves a transfer but step: what arrives now was on the wire before cancel
    socket.sleep(0.3)
    local sent = #E:requests()
    -- left alone, the batch would create, poll and download all 8 videos in this time
    T.drive(c, function() return false end, 2, 0.01)
    assert.are.equal(sent, #E:requests(), "requests were sent after cancel() returned")
    assert.is_true(posts() < #jobs)
    assert.are.equal("aborted", select(2, task:result()).kind)
    assert.are.equal(0, c:step(0))
    local written = H.ls(dir)
    for _, name in ipairs(written) do
      assert.matches("^billed%-%d%.mp4$", name) -- finished downloads only, no temporary file
    end
  end)

  it("reaches every descendant; a child not yet started never starts", function()
    local started = {}
    local top = c:spawn(function()
      c:spawn(function()
        started.child = true
        c:spawn(function() started.grandchild = true end)
        c:sleep(30)
      end)
      c:sleep(30)
    end)
    -- runs right after the top task, in the same pass, before the child's first turn
    local killer = c:spawn(function()
      started.before_cancel = started.child or false
      return top:cancel()
    end)
    c:run()
    assert.is_true(killer:result())
    assert.are.same({ before_cancel = false }, started)
    assert.are.equal("aborted", select(2, top:result()).kind)
    assert.are.equal(0, c:step(0))

    -- and a child that is running (asleep) when its parent is cancelled
    local child
    top = c:spawn(function()
      child = c:spawn(function()
        c:spawn(function() started.late_grandchild = true end)
        c:sleep(30)
      end)
      c:sleep(30)
    end)
    c:step(0)
    c:step(0)
    assert.is_true(started.late_grandchild)
    assert.is_false(child:done())
    assert.is_true(top:cancel())
    assert.is_true(child:done())
    assert.are.equal("aborted", select(2, child:result()).kind)
    assert.are.equal(0, c:step(0))
  end)

  it("aborts the transfers of grandchildren", function()
    E:fault{ action = "stall", method = "GET", path = "^/v1/videos/video_held$", times = 10 }
    local inner, gotten
    local top = c:spawn(function()
      local child = c:spawn(function()
        inner = c:spawn(function()
          gotten = { c:retrieve("video_held") }
        end)
        c:sleep(30)
      end)
      return child
    end)
    local run = T.drive(c, function() return #H.matching(E, "GET", "video_held$") == 1 end, 5)
    assert.is_true(run.finished, "the grandchild's request never arrived")
    assert.is_true(top:done()) -- the top returned: its children live on until cancelled
    local child = top:result()
    assert.is_true(child:cancel())
    assert.is_true(inner:done())
    assert.are.equal("aborted", select(2, inner:result()).kind)
    assert.is_nil(gotten) -- cancelled tasks are never resumed, not even with an error
    assert.are.equal(0, c:step(0))
  end)

  it("a task that cancels its parent stops there, and the parent's other children too", function()
    local after, sibling_ran = false, false
    local parent
    parent = c:spawn(function()
      c:spawn(function()
        c:sleep(0.05)
        parent:cancel()
        after = true
      end)
      c:spawn(function()
        c:sleep(0.2)
        sibling_ran = true
      end)
      c:sleep(30)
    end)
    c:run()
    assert.is_false(after)
    assert.is_false(sibling_ran)
    assert.are.equal("aborted", select(2, parent:result()).kind)
  end)

  it("does not touch tasks of other parents", function()
    local a = c:spawn(function()
      c:spawn(function() c:sleep(30) end)
      c:sleep(30)
    end)
    local other = c:spawn(function() c:sleep(0.05) return "unaffected" end)
    c:step(0)
    assert.is_true(a:cancel())
    c:run()
    assert.are.equal("unaffected", other:result())
  end)
end)
