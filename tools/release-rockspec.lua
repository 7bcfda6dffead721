-- Writes a release rockspec from a scm template (sora-scm-1.rockspec or
-- rockspecs/sora-emulator-scm-1.rockspec) for `make dist`:
--   lua tools/release-rockspec.lua TEMPLATE VERSION URL MD5 DIR [BIN...] > OUT
-- VERSION is the rock's (0.1.0-1), URL the release tarball's (file:// for a local release,
-- https:// for a published one), DIR the directory the tarball unpacks to, BIN the scripts
-- under bin/ that the rock installs. The template keeps its comments; each substitution must
-- find its line, so a template that drifts fails here instead of shipping a wrong rockspec.

local template, version, url, md5, dir = arg[1], arg[2], arg[3], arg[4], arg[5]
if not (template and version and url and md5 and dir) then
  io.stderr:write("usage: lua tools/release-rockspec.lua TEMPLATE VERSION URL MD5 DIR [BIN...]\n")
  os.exit(2)
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- Replaces the one match of `pattern`; fails when it is missing.
local function substitute(text, pattern, replacement, what)
  local out, n = text:gsub(pattern, function() return replacement end, 1)
  if n ~= 1 then
    io.stderr:write(template .. ": no " .. what .. " to fill in\n")
    os.exit(1)
  end
  return out
end

local function bin_table(names)
  local entries = {}
  for _, name in ipairs(names) do
    entries[#entries + 1] = string.format("[%q] = %q", name, "bin/" .. name)
  end
  return "bin = { " .. table.concat(entries, ", ") .. (#entries > 0 and " }," or "},")
end

local bins = { (table.unpack or unpack)(arg, 6) }
local upstream = version:match("^(.*)%-%d+$")
local text = read(template)
text = substitute(text, '\nversion = "scm%-1"\n', string.format('\nversion = %q\n', version), "version")
text = substitute(text, "\nsource = {.-\n}\n", string.format(
  '\nsource = {\n  url = %q,\n  md5 = %q,\n  dir = %q,\n}\n', url, md5, dir), "source")
text = substitute(text, "bin = {[^\n]-},[^\n]*", bin_table(bins), "build.install.bin")
-- The repository's URLs are written in the client's rockspec alone; a template that says so
-- gets them from there.
local URLS_MARK = "%-%- homepage, issues_url: make dist copies[^\n]*"
if text:find(URLS_MARK) then
  local client = read((arg[0]:match("^(.*)[/\\]tools[/\\][^/\\]*$") or ".") .. "/sora-scm-1.rockspec")
  local homepage = client:match('\n  homepage = "([^"]+)"')
  local issues_url = client:match('\n  issues_url = "([^"]+)"')
  if not (homepage and issues_url) then
    io.stderr:write("sora-scm-1.rockspec: no homepage and issues_url to copy\n")
    os.exit(1)
  end
  text = substitute(text, URLS_MARK, string.format("homepage = %q,\n  issues_url = %q,", homepage, issues_url),
    "homepage and issues_url")
end
if text:find('"sora", %-%- make dist pins') then
  text = substitute(text, '"sora", %-%- make dist pins[^\n]*', string.format('"sora == %s",', upstream),
    "sora dependency")
end
io.write("-- Written by `make dist` from ", template, "; do not edit.\n", text)
