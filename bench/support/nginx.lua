-- The bench's own nginx: a config, static JSON and large files under a temporary directory,
-- served on free ports of 127.0.0.1 over plain HTTP/1.1, TLS HTTP/1.1 and TLS HTTP/2 (a
-- self-signed certificate made now by openssl). Started with `daemon off`, stopped by its PID.
--
-- What it serves, under each base URL http(s)://127.0.0.1:PORT/v1:
--   /videos/video_bench              one video (JSON)
--   /videos?limit=100[&after=ID]     100 pages of 100 videos, keyed by `after` (a map to a file)
--   /videos/<name>/content           the large files asked for (zeros, sparse on disk)
-- The TLS servers log `$connection` per request, so that a run can count the connections used.
local socket = require "socket"
local cjson = require "cjson"

local nginx = {}

local PAGES, PER_PAGE = 100, 100

local function sh(cmd)
  local ok = os.execute(cmd)
  if ok ~= true and ok ~= 0 then error("bench: failed: " .. cmd, 2) end
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  f:close()
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function video(id, created)
  return { id = id, object = "video", model = "sora-2", status = "completed", progress = 100,
           created_at = created, completed_at = created + 120, expires_at = created + 86520,
           prompt = "A calico cat plays a grand piano on a stage, warm spotlight, 35 mm film",
           size = "1280x720", seconds = "8", remixed_from_video_id = cjson.null, error = cjson.null }
end

-- 100 pages of 100 videos: pages/first.json, then each named by the last id of the one before.
local function write_pages(dir)
  sh("mkdir -p " .. dir .. "/pages")
  local after = "first"
  for p = 1, PAGES do
    local data = {}
    for i = 1, PER_PAGE do
      local n = (p - 1) * PER_PAGE + i
      data[i] = video(string.format("video_%05d", n), 1767225600 + n)
    end
    write(string.format("%s/pages/%s.json", dir, after), cjson.encode{
      object = "list", data = data, first_id = data[1].id, last_id = data[#data].id,
      has_more = p < PAGES })
    after = data[#data].id
  end
end

local CONFIG = [[
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
  default_type application/json;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  http2_max_requests 10000000;
  access_log off;
  log_format connection '$connection $server_protocol';
  client_body_temp_path %s/tmp/body;
  proxy_temp_path %s/tmp/proxy;
  fastcgi_temp_path %s/tmp/fastcgi;
  uwsgi_temp_path %s/tmp/uwsgi;
  scgi_temp_path %s/tmp/scgi;
  map $arg_after $page { "" first; default $arg_after; }
  ssl_certificate %s/cert.pem;
  ssl_certificate_key %s/key.pem;
  root %s/www;
  server {
    listen 127.0.0.1:%d;
    location = /v1/videos { try_files /pages/$page.json =404; }
    location ~ /content$ { default_type video/mp4; try_files $uri =404; }
    location / { try_files $uri =404; }
  }
  server {
    listen 127.0.0.1:%d ssl;
    access_log %s/h1.log connection;
    location = /v1/videos { try_files /pages/$page.json =404; }
    location ~ /content$ { default_type video/mp4; try_files $uri =404; }
    location / { try_files $uri =404; }
  }
  server {
    listen 127.0.0.1:%d ssl http2;
    access_log %s/h2.log connection;
    location = /v1/videos { try_files /pages/$page.json =404; }
    location ~ /content$ { default_type video/mp4; try_files $uri =404; }
    location / { try_files $uri =404; }
  }
}
]]

local Server = {}
Server.__index = Server

--- Starts nginx in dir (made by the caller, removed by it); big = { name = bytes, ... }.
function nginx.start(dir, big)
  local self = setmetatable({ dir = dir, ports = { http = free_port(), h1 = free_port(), h2 = free_port() } }, Server)
  sh(string.format("mkdir -p %s/www/v1/videos %s/tmp", dir, dir))
  write_pages(dir .. "/www")
  write(dir .. "/www/v1/videos/video_bench", cjson.encode(video("video_bench", 1767225600)))
  for name, bytes in pairs(big or {}) do
    sh(string.format("mkdir -p %s/www/v1/videos/%s && truncate -s %d %s/www/v1/videos/%s/content",
      dir, name, bytes, dir, name))
  end
  sh(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
    .. "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem 2>/dev/null", dir, dir))
  local d = dir
  write(dir .. "/nginx.conf", string.format(CONFIG, d, d, d, d, d, d, d, d, d, d,
    self.ports.http, self.ports.h1, d, self.ports.h2, d))
  sh("chmod -R a+rX " .. dir) -- the worker may run as nobody
  sh(string.format("nginx -p %s -c %s/nginx.conf -g 'daemon off;' >%s/stdout.log 2>&1 & echo $! > %s/launcher.pid",
    dir, dir, dir, dir))
  self:wait_ready()
  return self
end

function Server:wait_ready()
  for _ = 1, 200 do
    local c = socket.connect("127.0.0.1", self.ports.http)
    if c then c:close() return end
    socket.sleep(0.02)
  end
  local f = io.open(self.dir .. "/error.log")
  error("bench: nginx did not start: " .. (f and f:read("*a") or "?"), 0)
end

function Server:url(kind)
  return string.format("%s://127.0.0.1:%d/v1", kind == "http" and "http" or "https", self.ports[kind])
end

--- Lines of a TLS server's connection log so far (kind "h1" or "h2").
function Server:log_lines(kind)
  local f = io.open(self.dir .. "/" .. kind .. ".log")
  if not f then return {} end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

--- Distinct connections among the log lines after the first `from`, and their protocol.
function Server:connections_since(kind, from)
  local seen, count, protocol = {}, 0, nil
  local lines = self:log_lines(kind)
  for i = from + 1, #lines do
    local id, proto = lines[i]:match("^(%d+) (%S+)")
    if id and not seen[id] then seen[id], count = true, count + 1 end
    protocol = proto or protocol
  end
  return count, protocol, #lines
end

function Server:stop()
  local f = io.open(self.dir .. "/nginx.pid")
  local pid = f and f:read("*n")
  if f then f:close() end
  if pid then os.execute("kill " .. math.floor(pid) .. " 2>/dev/null") end
  for _ = 1, 100 do
    if not io.open(self.dir .. "/nginx.pid") then return end
    socket.sleep(0.02)
  end
end

return nginx
