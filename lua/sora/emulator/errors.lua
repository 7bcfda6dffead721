-- OpenAI-style error responses and the wording of validation messages.

local json = require "sora.emulator.json"

local errors = {}

local ERROR_KEYS = { "message", "type", "param", "code" }

-- Returns an error response: {"error":{"message","type","param","code"}}.
function errors.response(status, message, param, code, kind)
  local body = { error = json.ordered(ERROR_KEYS, {
    message = message, type = kind or "invalid_request_error",
    param = param or json.null, code = code or json.null,
  }) }
  return { status = status, headers = { ["content-type"] = "application/json" },
    body = json.encode(body) }
end

function errors.bad_request(message, param, code)
  return errors.response(400, message, param, code)
end

-- "'a', 'b', and 'c'" / "'a' and 'b'" / "'a'", as OpenAI lists allowed values.
function errors.quote_list(values, conjunction)
  conjunction = conjunction or "and"
  local q = {}
  for i, v in ipairs(values) do q[i] = "'" .. v .. "'" end
  if #q <= 1 then return q[1] or "" end
  if #q == 2 then return q[1] .. " " .. conjunction .. " " .. q[2] end
  return table.concat(q, ", ", 1, #q - 1) .. ", " .. conjunction .. " " .. q[#q]
end

-- How OpenAI names the JSON type of a value in "but got ... instead".
function errors.type_name(v)
  local t = type(v)
  if v == json.null then return "null" end
  if t == "string" then return "a string" end
  if t == "boolean" then return "a boolean" end
  if t == "number" then
    return v == math.floor(v) and "an integer" or "a decimal number"
  end
  if t == "table" then
    if v.is_file then return "a file" end
    if #v > 0 then return "an array" end
    return "an object"
  end
  return t
end

function errors.invalid_type(param, expected, value)
  return errors.bad_request(string.format("Invalid type for '%s': expected %s, but got %s instead.",
    param, expected, errors.type_name(value)), param, "invalid_type")
end

function errors.invalid_value(param, value, supported)
  return errors.bad_request(string.format("Invalid value: '%s'. Supported values are: %s.",
    tostring(value), errors.quote_list(supported)), param, "invalid_value")
end

function errors.missing(param)
  return errors.bad_request(string.format("Missing required parameter: '%s'.", param),
    param, "missing_required_parameter")
end

function errors.unknown(param)
  return errors.bad_request(string.format("Unknown parameter: '%s'.", param),
    param, "unknown_parameter")
end

function errors.not_found_video(id)
  return errors.response(404, string.format("No video found with id '%s'.", id), nil, nil)
end

return errors
