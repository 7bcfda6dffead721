-- Builds the same sources as the Makefile: `luarocks make` from a checkout.
rockspec_format = "3.0"
package = "sora"
version = "scm-1"
source = {
  url = "git+file:///sora", -- built from a checkout with `luarocks make`
}
description = {
  summary = "The OpenAI Videos API (Sora) for Lua, on libcurl",
  detailed = [[
    A client for every Videos endpoint (create, retrieve, list, delete, remix, content,
    edits, extensions, characters) with typed video handles, waiting and polling, streamed
    downloads, and a local emulator of the API for offline development and tests.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson",
  "luasocket", -- for the emulator only
  -- "argparse", -- for the sora command (bin/sora, lua/sora/cli/): add with bin = { sora = "bin/sora" }
}
-- Debian keeps curl/curl.h in /usr/include/<triplet>, where LuaRocks does not look, so
-- only the library is checked.
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { library = "crypto" }, -- libcrypto: the HMAC of sora.webhooks
}
build = {
  type = "builtin",
  modules = {
    ["sora.core"] = {
      sources = { -- every file of csrc/ (one missing fails the build in spec/install_spec.lua)
        "csrc/args.c", "csrc/body.c", "csrc/buffer.c", "csrc/client.c", "csrc/compat.c",
        "csrc/core.c", "csrc/download.c", "csrc/endpoints.c", "csrc/error.c", "csrc/headers.c",
        "csrc/image.c", "csrc/json.c", "csrc/loop.c", "csrc/marshal.c", "csrc/media.c",
        "csrc/multipart.c", "csrc/outcome.c", "csrc/reference.c", "csrc/response.c",
        "csrc/retry.c", "csrc/transfer.c", "csrc/url.c", "csrc/video.c", "csrc/webhooks.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "crypto", "m" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
  },
  -- everything under lua/ (the Lua modules and the emulator's media) is copied by builtin
  install = {
    bin = { ["sora-emulator"] = "bin/sora-emulator" },
  },
}
