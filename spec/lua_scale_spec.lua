-- 10,000 tasks (issue 7, "the host never stalls"): they work on every Lua (more than about
-- 8,000 used to break step on LuaJIT and 5.1: `unpack` of too many values), and a step costs in
-- proportion to the tasks that can go on, not to all tasks. The cost is counted in Lua VM
-- instructions (a count hook), which does not depend on the machine's speed.
-- bench/tasks_step.lua prints the same in microseconds.
local sora = require "sora"
local H = require "support.client"

local N = 10000

-- Lua instructions executed by fn() on this thread (the JIT is off meanwhile on LuaJIT, whose
-- compiled code does not call count hooks).
local function instructions(fn)
  local jit = rawget(_G, "jit")
  if jit then jit.off() end
  local count = 0
  debug.sethook(function() count = count + 1 end, "", 1)
  fn()
  debug.sethook()
  if jit then jit.on() end
  return count
end

describe("many tasks #scale", function()
  local E, c

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  local function fresh()
    return sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
  end

  it("10,000 tasks spawned at once run to completion", function()
    local k = fresh()
    local list, finished = {}, 0
    for i = 1, N do
      list[i] = k:spawn(function(n)
        coroutine.yield()              -- a bare yield: resumed at the next pass
        k:sleep(n % 7 == 0 and 0.01 or 0)
        finished = finished + 1
        return n * 2
      end, i)
    end
    assert.are.equal(N, k:step(0) + finished)
    k:run()
    assert.are.equal(N, finished)
    for i = 1, N, 997 do assert.are.equal(i * 2, list[i]:result()) end
    assert.are.equal(0, k:step(0))
    k:close()
  end)

  it("a task joins 10,000 others (generate_many's join) and is woken once", function()
    local k = fresh()
    local tasks = require "sora.tasks"
    local list = {}
    for i = 1, N do list[i] = k:spawn(function() k:sleep(0.001 * (i % 5)) return i end) end
    local joiner = k:spawn(function()
      tasks.join(k, list)
      return "all joined"
    end)
    k:run()
    assert.are.equal("all joined", joiner:result())
    k:close()
  end)

  it("200 tasks awaiting transfers are woken by the queue of finished transfers", function()
    local k = fresh()
    local video = assert(k:create{ prompt = "fetched by many" })
    local list = {}
    for i = 1, 200 do list[i] = k:spawn(function() return assert(k:retrieve(video.id)).id end) end
    k:run()
    for i = 1, 200 do assert.are.equal(video.id, list[i]:result()) end
    assert.is_nil(k:_state().finished) -- drained
    k:close()
  end)

  it("blocking calls never grow the queue: only transfers a task awaits are queued", function()
    local k = fresh()
    local video = assert(k:create{ prompt = "fetched blocking" })
    for _ = 1, 20 do assert(k:retrieve(video.id)) end
    assert.is_nil(k:_state().finished)
    k:close()
  end)

  it("step(0) costs the same with 10,000 idle tasks as with 10", function()
    local function step_cost(idle)
      local k = fresh()
      for _ = 1, idle do k:spawn(function() k:sleep(3600) end) end
      k:step(0) -- every task runs once and goes to sleep
      local cost = instructions(function()
        for _ = 1, 10 do k:step(0) end
      end)
      k:close()
      return cost
    end
    local few, many = step_cost(10), step_cost(N)
    print(string.format("\n[scale] %s: 10 x step(0): %d Lua instructions with 10 idle tasks, %d with %d",
      rawget(_G, "jit") and jit.version or _VERSION, few, many, N))
    assert.is_true(many < 2 * few + 100, string.format("%d instructions with %d idle tasks, %d with 10",
      many, N, few))
  end)
end)
