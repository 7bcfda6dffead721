-- The client: `luarocks make` builds it from a checkout; `make dist` turns this file into the
-- release rockspec rockspecs/sora-<version>-1.rockspec (version, source and bin filled in).
-- A checkout's lua/ also holds the emulator, which builtin copies along with the rest; the
-- release tarball leaves it to its own rock (rockspecs/sora-emulator-scm-1.rockspec).
rockspec_format = "3.0"
package = "sora"
version = "scm-1"
source = {
  url = "git+file:///sora", -- a checkout: `luarocks make`; releases: `make dist`
}
description = {
  summary = "The OpenAI Videos API (Sora) for Lua, on libcurl",
  detailed = [[
    A client for every Videos endpoint (create, retrieve, list, delete, remix, content,
    edits, extensions, characters) with typed video handles, waiting and polling, streamed
    downloads, and non-blocking use from a host's own loop. Its local server of the API for
    offline development and tests is the separate rock sora-emulator.
  ]],
  license = "MIT",
  homepage = "https://github.com/sora-lua/sora",
  issues_url = "https://github.com/sora-lua/sora/issues",
  maintainer = "sora maintainers",
  labels = { "openai", "sora", "video", "http", "libcurl", "api-client" },
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson",
  "argparse", -- the sora command's parser (bin/sora, lua/sora/cli/); pure Lua
}
-- Debian keeps curl/curl.h in /usr/include/<triplet>, where LuaRocks does not look: the header
-- is not required here, so that the library alone passes this check; the compiler looks in
-- $(CURL_INCDIR) (set it for a libcurl of your own: luarocks install ... CURL_DIR=/opt/curl)
-- and in the system's paths. csrc/libcurl.h names the package to install when curl.h is missing.
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
        "csrc/idempotency.c", "csrc/image.c", "csrc/journal.c", "csrc/json.c", "csrc/loop.c",
        "csrc/marshal.c",
        "csrc/media.c", "csrc/multipart.c", "csrc/outcome.c", "csrc/reference.c", "csrc/response.c",
        "csrc/retry.c", "csrc/transfer.c", "csrc/url.c", "csrc/video.c", "csrc/webhooks.c",
        "csrc/interrupt.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libraries = { "curl", "crypto", "m" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
  },
  -- everything under lua/ is copied by builtin
  install = {
    bin = { sora = "bin/sora" }, -- make dist: every bin/* but sora-emulator
  },
}
test_dependencies = { "busted" }
-- `luarocks test` in a checkout after `make`: busted with the checkout's .busted (Lua 5.4)
test = {
  type = "busted",
}
