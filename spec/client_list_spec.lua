-- client:list and client:pages: pagination, parameters, broken servers, errors.
local sora = require "sora"
local H = require "support.client"

describe("listing", function()
  local E, c
  local ids -- in creation order

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    ids = {}
    for i = 1, 7 do ids[i] = assert(c:create{ prompt = "video " .. i }).id end
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  local function collect(iter)
    local out = {}
    for v in iter do out[#out + 1] = v.id end
    return out
  end

  local function reversed(list)
    local out = {}
    for i = #list, 1, -1 do out[#out + 1] = list[i] end
    return out
  end

  local function list_requests()
    return H.matching(E, "GET", "^/v1/videos$")
  end

  it("list walks every video over several pages, newest first by default", function()
    local seen = collect(c:list{ limit = 3 })
    assert.are.same(reversed(ids), seen)
    local requests = list_requests()
    assert.are.equal(3, #requests)
    assert.are.same({ limit = "3" }, requests[1].query)
    assert.are.same({ limit = "3", after = ids[5] }, requests[2].query)
    assert.are.same({ limit = "3", after = ids[2] }, requests[3].query)
  end)

  it("list yields Video handles", function()
    for v in c:list{ limit = 5 } do
      assert.is_userdata(v)
      assert.are.equal("video", v.object)
      assert.matches("^video %d$", v.prompt)
      assert.is_true(H.is_integer(v.created_at))
    end
  end)

  it("list sends order and after, and follows them", function()
    assert.are.same(ids, collect(c:list{ limit = 3, order = "asc" }))
    assert.are.same({ limit = "3", order = "asc" }, list_requests()[1].query)
    E:clear_requests()
    assert.are.same({ ids[3], ids[4], ids[5], ids[6], ids[7] },
      collect(c:list{ after = ids[2], order = "asc", limit = 2 }))
    assert.are.same({ after = ids[2], limit = "2", order = "asc" }, list_requests()[1].query)
    assert.are.same({ ids[1] }, collect(c:list{ after = ids[2], order = "desc" }))
  end)

  it("list without parameters sends none", function()
    assert.are.same(reversed(ids), collect(c:list()))
    assert.are.same({}, list_requests()[1].query)
  end)

  it("pages gives each page with its cursor fields", function()
    local pages = {}
    for page in c:pages{ limit = 3, order = "asc" } do pages[#pages + 1] = page end
    assert.are.equal(3, #pages)
    assert.are.same({ 3, 3, 1 }, { #pages[1].data, #pages[2].data, #pages[3].data })
    assert.are.same({ true, true, false }, { pages[1].has_more, pages[2].has_more, pages[3].has_more })
    assert.are.equal("list", pages[1].object)
    assert.are.equal(ids[1], pages[1].first_id)
    assert.are.equal(ids[3], pages[1].last_id)
    assert.are.equal(ids[7], pages[3].last_id)
    assert.are.equal(ids[4], pages[2].data[1].id)
    assert.is_userdata(pages[2].data[1])
  end)

  it("a page of exactly the rest ends the walk", function()
    local n = 0
    for _ in c:pages{ limit = 7 } do n = n + 1 end
    assert.are.equal(1, n)
    assert.are.equal(1, #list_requests())
  end)

  it("ends on an empty page", function()
    local pages = {}
    for page in c:pages{ after = ids[1], order = "desc" } do pages[#pages + 1] = page end
    assert.are.equal(1, #pages)
    assert.are.same({}, pages[1].data)
    assert.is_false(pages[1].has_more)
    assert.is_nil(pages[1].last_id)
    assert.are.same({}, collect(c:list{ after = ids[1] }))

    E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 200, times = 100,
             body = { object = "list", data = {}, has_more = true, first_id = "video_a",
                      last_id = "video_b" } }
    E:clear_requests()
    assert.are.same({}, collect(c:list()))
    assert.are.equal(1, #list_requests())
  end)

  it("ends when a broken server repeats has_more with the same last_id", function()
    local video = { id = "video_same", object = "video", model = "sora-2", status = "queued",
                    progress = 0, created_at = 1, prompt = "same", size = "720x1280", seconds = "4" }
    E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 200, times = 100,
             body = { object = "list", data = { video }, has_more = true, first_id = "video_same",
                      last_id = "video_same" } }
    local seen = collect(c:list{ limit = 1 })
    assert.is_true(#seen >= 1 and #seen <= 2, "saw " .. #seen)
    assert.are.equal("video_same", seen[1])
    assert.is_true(#list_requests() <= 2)
  end)

  it("ends when last_id is missing", function()
    local video = { id = "video_one", object = "video", status = "queued", progress = 0,
                    created_at = 1, prompt = "p", size = "720x1280", seconds = "4", model = "sora-2" }
    E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 200, times = 100,
             body = { object = "list", data = { video }, has_more = true } }
    assert.are.same({ "video_one" }, collect(c:list()))
  end)

  it("an iterator raises the error object when a later page fails", function()
    local next_page = c:pages{ limit = 3 }
    local first = next_page()
    assert.are.equal(3, #first.data)
    E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 500 }
    local ok, err = pcall(next_page)
    assert.is_false(ok)
    assert.is_table(err)
    assert.is_true(sora.is_error(err))
    assert.are.equal("internal_server", err.kind)
    assert.are.equal(500, err.status)
    assert.is_nil(next_page())

    local seen = {}
    local iter = c:list{ limit = 3 }
    E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 503, times = 1 }
    ok, err = pcall(function() for v in iter do seen[#seen + 1] = v end end)
    assert.is_false(ok)
    assert.are.equal("internal_server", err.kind)
    assert.are.equal(0, #seen)
  end)

  it("raises the server's error for a bad cursor", function()
    local ok, err = pcall(function() for _ in c:list{ after = "video_never_issued" } do end end)
    assert.is_false(ok)
    assert.are.equal("bad_request", err.kind)
    assert.are.equal("after", err.param)
  end)

  it("list_page returns one page, or nil, err", function()
    local page, err = c:list_page{ limit = 2 }
    assert.is_nil(err)
    assert.are.equal(2, #page.data)
    local bad, berr = c:list_page{ limit = 1000 }
    assert.is_nil(bad)
    assert.are.equal("bad_request", berr.kind)
  end)

  it("raises for unknown options and wrong types", function()
    assert.has_error(function() c:list{ lmit = 3 } end,
      "bad argument #1 to 'list' (unknown option 'lmit' (did you mean 'limit'?))")
    assert.has_error(function() c:pages{ limit = "3" } end,
      "bad argument #1 to 'pages' (option 'limit' must be a number, got string)")
    assert.has_error(function() c:pages{ order = 1 } end)
    assert.has_error(function() c:list("desc") end)
    assert.are.equal(0, #E:requests())
  end)
end)
