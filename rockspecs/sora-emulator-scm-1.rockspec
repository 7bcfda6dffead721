-- The emulator of the OpenAI Videos API as its own rock: lua/sora/emulator/* and
-- bin/sora-emulator. `make dist` packs exactly those files into the emulator's release tarball
-- and turns this file into rockspecs/sora-emulator-<version>-1.rockspec (version, source and
-- the sora version filled in). It is a template: builtin copies a source tree's whole lua/,
-- so build it from that tarball (`make rock`), not with `luarocks make` in a checkout.
rockspec_format = "3.0"
package = "sora-emulator"
version = "scm-1"
source = {
  url = "git+file:///sora", -- releases: `make dist`
}
description = {
  summary = "A local, in-memory OpenAI Videos API (Sora) server for tests and offline work",
  detailed = [[
    The emulator behind sora's tests and demo: every Videos endpoint on loopback, jobs that
    progress in real time, real MP4/WebP/JPEG assets, recorded requests, injected faults and a
    control API. Pure Lua on LuaSocket; `sora-emulator --port 8000` or require "sora.emulator".
  ]],
  license = "MIT",
  -- homepage, issues_url: make dist copies sora-scm-1.rockspec's (the one place they are written)
  maintainer = "sora maintainers",
  labels = { "openai", "sora", "video", "emulator", "testing", "luasocket" },
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "sora", -- make dist pins the version released with it
  "luasocket",
}
build = {
  type = "builtin",
  modules = {}, -- lua/sora/emulator/ (the modules and their media) is copied by builtin
  install = {
    bin = { ["sora-emulator"] = "bin/sora-emulator" },
  },
}
