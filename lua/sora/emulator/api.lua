-- The ten /v1 endpoints of the Videos API: request decoding, validation with
-- OpenAI's wording, and the responses. Routing and auth live in init.lua.

local json = require "sora.emulator.json"
local multipart = require "sora.emulator.multipart"
local media = require "sora.emulator.media"
local errors = require "sora.emulator.errors"
local http = require "sora.emulator.http"

local api = {}

local MODELS = { "sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06",
  "sora-2-2025-12-08" }
-- The spec lists 4, 8 and 12 (and messages say so); docs later added 16 and 20.
local SECONDS_LISTED = { "4", "8", "12" }
local SECONDS = { "4", "8", "12", "16", "20" }
local SIZES = { "720x1280", "1280x720", "1024x1792", "1792x1024", "1920x1080", "1080x1920" }
local IMAGE_TYPES = { "image/jpeg", "image/png", "image/webp" }
local VIDEO_TYPES = { "video/mp4", "video/quicktime", "video/webm" }
local VARIANTS = {
  video = { file = "video.mp4", type = "video/mp4" },
  thumbnail = { file = "thumbnail.webp", type = "image/webp" },
  spritesheet = { file = "spritesheet.jpg", type = "image/jpeg" },
}
local MAX_PROMPT = 32000
-- The error of a video failed by the random fault schedule (fault kind video_fails).
local GENERATION_FAILED = { code = "internal_error",
  message = "Video generation failed due to an internal error. Please try again." }

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function json_response(status, obj)
  return { status = status, headers = { ["content-type"] = "application/json" },
    body = json.encode(obj) }
end

---------------------------------------------------------------------------
-- Request bodies: JSON or multipart, decoded into one shape. Multipart file
-- parts become { is_file = true, filename, content_type, data }; names with
-- brackets (input_reference[image_url]) become nested tables.

local function form_from_parts(parts)
  local params = {}
  for _, p in ipairs(parts) do
    local value = p.data
    if p.filename then
      value = { is_file = true, filename = p.filename, content_type = p.content_type,
        data = p.data }
    end
    local base, key = p.name:match("^([^%[]+)%[([^%]]*)%]$")
    if base then
      if type(params[base]) ~= "table" or params[base].is_file then params[base] = {} end
      params[base][key] = value
    else
      params[p.name] = value
    end
  end
  return params
end

local PARSE_ERROR = "We could not parse the JSON body of your request. (HINT: This likely "
  .. "means you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
  .. "payload, but what was sent was not valid JSON. If you have trouble figuring out how to "
  .. "fix this, please contact us through our help center at help.openai.com.)"

-- Returns params, kind ("json" | "multipart") or nil, error response.
function api.read_form(req)
  local ct = req.headers["content-type"] or ""
  local boundary = multipart.boundary(ct)
  if boundary then
    local parts = req.parts or multipart.parse(req.body, boundary)
    if not parts then
      return nil, errors.bad_request("Could not parse the multipart form body.")
    end
    return form_from_parts(parts), "multipart"
  end
  if req.body == "" then return {}, "json" end
  if ct:lower():find("^%s*application/json") or ct == "" then
    local value = json.decode(req.body)
    if type(value) ~= "table" or (#value > 0) then
      return nil, errors.bad_request(PARSE_ERROR)
    end
    return value, "json"
  end
  return nil, errors.bad_request(string.format("Unsupported content type: '%s'. This API "
    .. "method only accepts 'application/json' and 'multipart/form-data' requests, but you "
    .. "specified the header 'Content-Type: %s'. Please try again with a supported content type.",
    ct, ct), nil, "unsupported_content_type")
end

---------------------------------------------------------------------------
-- Validation. Each check returns an error response, or nil when fine.

local function check_unknown(params, allowed)
  local names = {}
  for k in pairs(params) do
    if not contains(allowed, k) then names[#names + 1] = tostring(k) end
  end
  table.sort(names)
  if names[1] then return errors.unknown(names[1]) end
end

local function utf8_length(s)
  local _, count = s:gsub("[^\128-\191]", "")
  return count
end

local function check_prompt(params, name)
  name = name or "prompt"
  local p = params[name]
  if p == nil or p == json.null then return errors.missing(name) end
  if type(p) ~= "string" then return errors.invalid_type(name, "a string", p) end
  local n = utf8_length(p)
  if n < 1 then
    return errors.bad_request(string.format("Invalid '%s': string too short. Expected a string "
      .. "with minimum length 1, but got an empty string instead.", name), name,
      "string_below_min_length")
  end
  if n > (name == "name" and 80 or MAX_PROMPT) then
    return errors.bad_request(string.format("Invalid '%s': string too long. Expected a string "
      .. "with maximum length %d, but got a string with length %d instead.", name,
      name == "name" and 80 or MAX_PROMPT, n), name, "string_above_max_length")
  end
end

-- A string enum; `listed` are the values quoted in messages.
local function check_enum(params, name, values, listed)
  local v = params[name]
  if v == nil then return end
  if type(v) ~= "string" then
    return errors.invalid_type(name, "one of " .. errors.quote_list(listed, "or"), v)
  end
  if not contains(values, v) then return errors.invalid_value(name, v, listed) end
end

local function mime(ct)
  local m = ct and ct:match("^%s*([^;%s]+)")
  return m and m:lower()
end

-- A file part of one of `types`, whose bytes are of that type too.
local function check_file(name, file, types, sniff, what)
  local declared = mime(file.content_type)
  if not contains(types, declared) then
    return errors.bad_request(string.format("Invalid file '%s': unsupported mimetype ('%s'). "
      .. "Supported mimetypes are %s.", name, tostring(declared or file.content_type),
      errors.quote_list(types)), name, "unsupported_file")
  end
  local actual = sniff(file.data)
  local same = actual == declared
    or (actual and actual:find("^video/") and declared:find("^video/") and declared ~= "video/webm"
        and actual ~= "video/webm")          -- mp4 and QuickTime share one format
  if not same then
    return errors.bad_request(string.format("Invalid file '%s': the file is not a valid %s "
      .. "(uploaded as '%s').", name, what, declared), name, "invalid_file")
  end
end

local function check_image_url(url)
  if type(url) ~= "string" then
    return errors.invalid_type("input_reference.image_url", "a string", url)
  end
  if not (url:find("^https?://.") or url:find("^data:image/[%w.+-]+;base64,")) then
    return errors.bad_request("Invalid 'input_reference.image_url': Expected a valid URL, "
      .. "or a base64-encoded data URL of an image.", "input_reference.image_url", "invalid_value")
  end
end

local function check_reference_object(ref)
  local err = check_unknown(ref, { "image_url", "file_id" })
  if err then
    local body = json.decode(err.body)
    return errors.unknown("input_reference." .. body.error.param)
  end
  if (ref.image_url == nil) == (ref.file_id == nil) then
    return errors.bad_request("Invalid 'input_reference': provide exactly one of 'image_url' "
      .. "or 'file_id'.", "input_reference", "invalid_value")
  end
  if ref.image_url ~= nil then return check_image_url(ref.image_url) end
  if type(ref.file_id) ~= "string" or ref.file_id == "" then
    return errors.invalid_type("input_reference.file_id", "a non-empty string", ref.file_id)
  end
end

local function check_input_reference(params, kind, size)
  local ref = params.input_reference
  if ref == nil then return end
  if type(ref) ~= "table" or ref == json.null then
    return errors.invalid_type("input_reference",
      kind == "multipart" and "a file" or "an object", ref)
  end
  if not ref.is_file then return check_reference_object(ref) end
  local err = check_file("input_reference", ref, IMAGE_TYPES, media.image_type, "image")
  if err then return err end
  local w, h = media.image_size(ref.data)
  local want_w, want_h = size:match("^(%d+)x(%d+)$")
  if w ~= tonumber(want_w) or h ~= tonumber(want_h) then
    return errors.bad_request(string.format("Inpaint image must match the requested width and "
      .. "height: input_reference is %sx%s, but size is %s.", tostring(w or "?"),
      tostring(h or "?"), size), "input_reference", "invalid_value")
  end
end

-- Returns the first error among the results of the checks (nils are passes).
local function run_checks(...)
  for i = 1, select("#", ...) do
    local err = select(i, ...)
    if err then return err end
  end
end

---------------------------------------------------------------------------
-- A source video given as { id } (JSON, or video[id] in multipart) or as a
-- file part. Returns the stored video (nil for an upload), or nil, error.

local function source_video(ctx, params, kind)
  local v = params.video
  if v == nil or v == json.null then return nil, errors.missing("video") end
  if type(v) ~= "table" then
    return nil, errors.invalid_type("video", kind == "multipart" and "a file" or "an object", v)
  end
  if v.is_file then
    return nil, check_file("video", v, VIDEO_TYPES, media.video_type, "video")
  end
  local err = check_unknown(v, { "id" })
  if err then return nil, errors.unknown("video." .. json.decode(err.body).error.param) end
  if type(v.id) ~= "string" then
    if v.id == nil then return nil, errors.missing("video.id") end
    return nil, errors.invalid_type("video.id", "a string", v.id)
  end
  local found = ctx.store:get(v.id)
  if not found then return nil, errors.not_found_video(v.id) end
  if ctx.store:render(found).status ~= "completed" then
    return nil, errors.bad_request(string.format("Video '%s' is not completed; only completed "
      .. "videos can be used as a source.", v.id), "video", "invalid_value")
  end
  return found
end

local function created(ctx, v)
  local res = json_response(200, ctx.store:render(v))
  res.video = v
  return res
end

---------------------------------------------------------------------------
-- Endpoints: each takes (ctx, req, id) and returns a response.

function api.create(ctx, req)
  local params, kind = api.read_form(req)
  if not params then return kind end
  local size = type(params.size) == "string" and params.size or "720x1280"
  local err = run_checks(
    check_unknown(params, { "prompt", "model", "seconds", "size", "input_reference" }),
    check_prompt(params),
    check_enum(params, "model", MODELS, MODELS),
    check_enum(params, "seconds", SECONDS, SECONDS_LISTED),
    check_enum(params, "size", SIZES, SIZES))
  err = err or check_input_reference(params, kind, size)
  if err then return err end
  return created(ctx, ctx.store:create({
    prompt = params.prompt, model = params.model or "sora-2",
    seconds = params.seconds or "4", size = size,
    fail_error = req.fail_video and GENERATION_FAILED or nil,
  }))
end

local function bad_limit(message, code)
  return errors.bad_request(message, "limit", code)
end

function api.list(ctx, req)
  local q = req.query
  local limit = 20
  if q.limit and q.limit ~= "" then
    limit = tonumber(q.limit)
    if not limit or limit ~= math.floor(limit) then
      return bad_limit(string.format("Invalid type for 'limit': expected an integer, but got "
        .. "'%s' instead.", q.limit), "invalid_type")
    end
    if limit < 0 then
      return bad_limit(string.format("Invalid 'limit': integer below minimum value. Expected a "
        .. "value >= 0, but got %d instead.", limit), "integer_below_min_value")
    end
    if limit > 100 then
      return bad_limit(string.format("Invalid 'limit': integer above maximum value. Expected a "
        .. "value <= 100, but got %d instead.", limit), "integer_above_max_value")
    end
  end
  local order = q.order
  if order == nil or order == "" then order = "desc" end
  if order ~= "asc" and order ~= "desc" then
    return errors.invalid_value("order", order, { "asc", "desc" })
  end
  local after_seq
  if q.after and q.after ~= "" then
    -- Ids of deleted videos stay valid cursors; ids never issued are an error.
    after_seq = ctx.store.seq[q.after]
    if not after_seq then
      return errors.bad_request(string.format("Invalid 'after': no video found with id '%s'.",
        q.after), "after", "invalid_value")
    end
  end
  local page, more = ctx.store:page(order, after_seq, limit)
  local data = json.array()
  for i, v in ipairs(page) do data[i] = ctx.store:render(v) end
  return json_response(200, json.ordered({ "object", "data", "first_id", "last_id", "has_more" }, {
    object = "list", data = data,
    first_id = page[1] and page[1].id or json.null,
    last_id = page[#page] and page[#page].id or json.null,
    has_more = more,
  }))
end

function api.retrieve(ctx, req, id)
  local v = ctx.store:get(id)
  if not v then return errors.not_found_video(id) end
  local res = json_response(200, ctx.store:render(v))
  res.video = v
  return res
end

-- OpenAI deletes "a completed or failed video": a queued or running job is refused.
function api.delete(ctx, req, id)
  local v = ctx.store:get(id)
  if not v then return errors.not_found_video(id) end
  local status = ctx.store:render(v).status
  if status ~= "completed" and status ~= "failed" then
    return errors.bad_request(string.format("Video '%s' cannot be deleted while it is %s; only "
      .. "completed or failed videos can be deleted.", id, status), nil, nil)
  end
  ctx.store:delete(id)
  return json_response(200, json.ordered({ "id", "object", "deleted" },
    { id = id, object = "video.deleted", deleted = true }))
end

function api.remix(ctx, req, id)
  local source = ctx.store:get(id)
  if not source then return errors.not_found_video(id) end
  local params, kind = api.read_form(req)
  if not params then return kind end
  local err = check_unknown(params, { "prompt" }) or check_prompt(params)
  if err then return err end
  if ctx.store:render(source).status ~= "completed" then
    return errors.bad_request(string.format("Video '%s' is not completed; only completed videos "
      .. "can be remixed.", id), nil, "invalid_value")
  end
  return created(ctx, ctx.store:create({
    prompt = params.prompt, model = source.model, size = source.size,
    seconds = source.seconds, remixed_from_video_id = source.id,
  }))
end

function api.edit(ctx, req)
  local params, kind = api.read_form(req)
  if not params then return kind end
  local err = check_unknown(params, { "video", "prompt" })
  if err then return err end
  local source
  source, err = source_video(ctx, params, kind)
  err = err or check_prompt(params)
  if err then return err end
  source = source or {}
  return created(ctx, ctx.store:create({
    prompt = params.prompt, model = source.model or "sora-2",
    size = source.size or "720x1280", seconds = source.seconds or "4",
  }))
end

function api.extend(ctx, req)
  local params, kind = api.read_form(req)
  if not params then return kind end
  local err = check_unknown(params, { "video", "prompt", "seconds" })
  if err then return err end
  local source
  source, err = source_video(ctx, params, kind)
  err = err or check_prompt(params)
    or (params.seconds == nil and errors.missing("seconds"))
    or check_enum(params, "seconds", SECONDS, SECONDS)
  if err then return err end
  -- The spec: "For extensions, [seconds] is the stitched total duration."
  local total = tonumber(params.seconds) + (source and tonumber(source.seconds) or 0)
  source = source or {}
  return created(ctx, ctx.store:create({
    prompt = params.prompt, model = source.model or "sora-2",
    size = source.size or "720x1280", seconds = string.format("%d", total),
  }))
end

function api.create_character(ctx, req)
  local params, kind = api.read_form(req)
  if not params then return kind end
  local err = check_unknown(params, { "video", "name" })
  if err then return err end
  local v = params.video
  if v == nil then return errors.missing("video") end
  if type(v) ~= "table" or not v.is_file then return errors.invalid_type("video", "a file", v) end
  err = check_file("video", v, VIDEO_TYPES, media.video_type, "video") or check_prompt(params, "name")
  if err then return err end
  return json_response(200, ctx.store:create_character(params.name))
end

function api.character(ctx, req, id)
  local c = ctx.store:character(id)
  if not c then
    return errors.response(404, string.format("No character found with id '%s'.", id))
  end
  return json_response(200, json.ordered({ "id", "name", "created_at" }, c))
end

---------------------------------------------------------------------------
-- Content downloads.

-- Media files live beside this module, so a checkout and an install both work.
local function media_dir()
  local source = debug.getinfo(1, "S").source
  local dir = source:match("^@(.*)[/\\][^/\\]*$") or "."
  return dir .. "/media/"
end

local media_cache = {}

local function media_bytes(name)
  if not media_cache[name] then
    local f = assert(io.open(media_dir() .. name, "rb"))
    media_cache[name] = f:read("*a")
    f:close()
  end
  return media_cache[name]
end

-- A deterministic body of n bytes, made as it is sent: byte i is (i + k) % 251, where k
-- comes from the video, so that the bodies of two videos differ and a mix-up is caught.
local PATTERN
local function synthetic_source(n, k)
  if not PATTERN then
    local cycle = {}
    for i = 0, 250 do cycle[#cycle + 1] = string.char(i) end
    PATTERN = table.concat(cycle):rep(math.ceil((65536 + 251) / 251))
  end
  return { length = n, read = function(pos, count)
    local out = {}
    while count > 0 do
      local take = math.min(count, 65536)
      local start = (pos + k) % 251
      out[#out + 1] = PATTERN:sub(start + 1, start + take)
      pos, count = pos + take, count - take
    end
    return table.concat(out)
  end }
end

-- The synthetic body's offset for a video: its creation number since start or reset, less
-- one, modulo 251. Any 251 videos created in a row have distinct bodies, and the first keeps
-- the plain pattern i % 251.
function api.content_key(v)
  return (v.seq - 1) % 251
end

-- Returns the source of a variant's bytes for video v (before any Range), and a key that
-- names those bytes for digest caches.
function api.content_source(ctx, v, name)
  if name == "video" and ctx.config.video_bytes then
    local n, k = ctx.config.video_bytes, api.content_key(v)
    return synthetic_source(n, k), string.format("synthetic:%d:%d", n, k)
  end
  local file = VARIANTS[name].file
  return http.string_source(media_bytes(file)), "file:" .. file
end

-- Returns the variant named by a query value (default "video"), or nil, error response.
function api.variant(value)
  if value == nil or value == "" then value = "video" end
  if not VARIANTS[value] then
    return nil, errors.invalid_value("variant", value, { "video", "thumbnail", "spritesheet" })
  end
  return value
end

-- Applies a Range header: returns source, status, extra headers (or a 416 response).
local function apply_range(src, header)
  local total = src.length
  if not header or header:find(",", 1, true) then return src, 200, {} end
  -- split, then trimmed: "%s*(%d*)%s*%-" would try every split of a run of spaces
  local first, last = (header:match("^%s*bytes%s*=(.*)$") or ""):match("^([^-]*)%-(.*)$")
  if first then first, last = http.trim(first), http.trim(last) end
  if not first or not (first .. last):find("^%d*$") or (first == "" and last == "") then
    return src, 200, {}
  end
  if first == "" then                       -- suffix: the last N bytes
    first, last = math.max(0, total - tonumber(last)), total - 1
    if tonumber(header:match("%-(%d+)")) == 0 then first = total end
  else
    first = tonumber(first)
    last = last == "" and total - 1 or math.min(tonumber(last), total - 1)
    if last < first and first < total then return src, 200, {} end
  end
  if first >= total then
    local res = errors.response(416, string.format("Requested range not satisfiable: %s "
      .. "(the content is %d bytes).", header, total), "range", nil)
    res.headers["content-range"] = string.format("bytes */%d", total)
    return nil, res
  end
  return http.slice_source(src, first, last), 206,
    { ["content-range"] = string.format("bytes %d-%d/%d", first, last, total) }
end

function api.content(ctx, req, id)
  local v = ctx.store:get(id)
  if not v then return errors.not_found_video(id) end
  local name, bad = api.variant(req.query.variant)
  if not name then return bad end
  local variant = VARIANTS[name]
  local video = ctx.store:render(v)
  if video.status == "failed" then
    return errors.bad_request(string.format("Video '%s' failed to generate and has no content.",
      id), nil, "video_failed")
  end
  if video.status ~= "completed" then
    return errors.bad_request(string.format("Video '%s' is not ready yet (status '%s'); use GET "
      .. "/v1/videos/%s to check its status.", id, video.status, id), nil, "video_not_ready")
  end
  if type(video.expires_at) == "number" and os.time() >= video.expires_at then
    return errors.response(410, string.format("The content of video '%s' expired at %d and is "
      .. "no longer available.", id, video.expires_at), nil, "video_expired")
  end
  local src = api.content_source(ctx, v, name)
  local status, extra
  src, status, extra = apply_range(src, req.headers["range"])
  if not src then return status end
  extra["content-type"] = variant.type
  extra["accept-ranges"] = "bytes"
  return { status = status, headers = extra, body = src }
end

return api
