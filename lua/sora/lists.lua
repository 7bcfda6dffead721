--- The list iterators: client:pages (page after page) and client:list (video after video),
-- over the list_page endpoint.
local args = require "sora.args"

local error = error

local lists = {}

local LIST_OPTIONS = { after = "string", limit = "integer", order = "string",
                       with_response = "boolean" }

-- The page iterator of `pages` and `list`; `fname` is the public call, for argument errors.
-- Follows last_id; stops when has_more is false, a page is empty, last_id is missing, or the
-- server repeats a cursor (a broken server must not make the loop endless). Raises the error
-- object if a page cannot be fetched, as io.lines raises. With `with_response`, each page
-- comes with the HTTP response that brought it.
local function page_iterator(client, fname, params)
  args.self(fname, client, "sora.Client")
  params = args.options(fname, 1, args.table(fname, 1, params, true), LIST_OPTIONS)
  local query = { after = params.after, limit = params.limit, order = params.order,
                  with_response = params.with_response }
  local seen, finished = {}, false
  return function()
    if finished then return nil end
    local page, err = client:list_page(query) -- err is the response when with_response
    if not page then
      finished = true
      error(err, 0)
    end
    local last = page.last_id
    if not page.has_more or #page.data == 0 or last == nil or last == "" or seen[last] then
      finished = true
    else
      seen[last] = true
      query.after = last
    end
    if query.with_response then return page, err end
    return page
  end
end

--- for page in client:pages{ limit = 50 } do ... end
-- for page, response in client:pages{ with_response = true } do ... end
function lists.pages(client, params)
  return page_iterator(client, "pages", params)
end

--- for video in client:list{ limit = 50, order = "asc" } do ... end: every video, page after page.
-- With `with_response`, each video comes with the response of the page that held it.
function lists.list(client, params)
  local next_page = page_iterator(client, "list", params)
  local data, i, response = {}, 0, nil
  return function()
    while true do
      i = i + 1
      local video = data[i]
      if video ~= nil then return video, response end
      local page
      page, response = next_page()
      if page == nil then return nil end
      data, i = page.data, 0
    end
  end
end

return lists
