-- Generates a video and writes it to an MP4 file, showing progress while it waits.
--
--   lua5.4 examples/demo.lua [out.mp4] [reference-image]     (--help for the options)
--
-- With OPENAI_API_KEY and OPENAI_BASE_URL both set, it talks to that server; otherwise it
-- starts the local emulator for the run (make demo sets up the paths). The same in one line
-- with the command line tool: `sora generate "a paper boat" -o demo.mp4` (docs/cli.md).
local sora = require "sora"
local argparse = require "argparse"

-- argparse, as the `sora` command does: `--help` prints help, a stray option is refused,
-- never taken for a file name.
local parser = argparse("demo.lua", "Generates a video and writes it to an MP4 file.")
  :epilog("Uses OPENAI_API_KEY and OPENAI_BASE_URL when both are set, else a local emulator.")
-- (argparse 0.7 gives an absent optional argument no default: demo.mp4 is filled in below)
parser:argument("output", "The MP4 file to write (default demo.mp4)."):args("?")
parser:argument("image", "A reference image (JPEG, PNG or WebP) of the video's size, 1280x720.")
  :args("?")
local options = parser:parse(arg)
local output, image = options.output or "demo.mp4", options.image

local key, base_url = os.getenv("OPENAI_API_KEY"), os.getenv("OPENAI_BASE_URL")
local emulator
if not (key and base_url) then
  emulator = require("sora.emulator.process").spawn{ job_seconds = 5 }
  key, base_url = "sk-local-emulator", emulator.url
end

local function progress_bar(video)
  local width, percent = 30, video.progress or 0
  local filled = math.floor(width * percent / 100)
  io.write(string.format("\r  [%s%s] %3d%% %-12s", string.rep("#", filled),
    string.rep(".", width - filled), percent, video.status))
  io.flush()
end

local client = sora.new{ api_key = key, base_url = base_url }
print(string.format("sora %s (libcurl %s, %s) -> %s", sora._VERSION, sora.curl_version,
  _VERSION, base_url))

local video, err = client:create{
  prompt = "A paper boat drifting down a rainy street at dusk, reflections on wet asphalt",
  model = "sora-2", seconds = "4", size = "1280x720", input_reference = image,
}
if video then
  print("created " .. video.id)
  progress_bar(video)
  video, err = video:wait{ on_progress = progress_bar }
  print()
end
if video then
  local ok
  ok, err = video:download{ path = output }
  if ok then
    local file = assert(io.open(output, "rb"))
    local size = file:seek("end")
    file:close()
    print(string.format("wrote %s (%d bytes, %s s, %s)", output, size, video.seconds, video.size))
  end
end
client:close()
if emulator then emulator:stop() end
if err then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
