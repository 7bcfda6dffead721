#!/bin/sh
# Installs what a purpose needs, when missing, from Debian 12's packages:
#   sh tools/deps.sh [purpose...]          (the Makefile runs it; DEPS=0 there skips it)
#   build   make, make demo, make install: compile and run sora for LUA_VERSION (default 5.4)
#   nvim    make nvim: compile the core for Neovim's LuaJIT (LUA_PKG: lua5.1 or luajit headers)
#   test    make test: build for 5.4 and 5.1/LuaJIT, and every tool the specs start
#   all     make test-all: test, and Lua 5.1, 5.2, 5.3 with their headers and modules
#   bench   make bench: build for 5.4 and LuaJIT, nginx, curl, Node and npm
#   memory  make test-asan, test-valgrind, fuzz: clang and valgrind
#   lint    make lint: luacheck, cppcheck, clang-tidy (and the headers they read)
# What is there is found by what it provides (a command, a pkg-config name, a Lua module
# loadable by the interpreter that uses it), not by package name, so tools from elsewhere
# count (a node from nodesource; Debian's npm package would conflict with it). LUA_HEADERS=given
# or CURL_HEADERS=given (the Makefile: LUA_INCDIR, CURL_INCDIR or CURL_CFLAGS set by the user)
# leaves those headers to the user. Missing things
# are installed with apt-get (as root, or through sudo); without apt-get, the script names
# them and exits 1.
set -e
LUA_VERSION=${LUA_VERSION:-5.4}
CC=${CC:-cc}

wanted="" # "kind:name:package" words, each checked once
need() { # need KIND NAME PACKAGE: KIND is cmd, pc (pkg-config) or a Lua interpreter (a module)
  case " $wanted " in *" $1:$2:$3 "*) ;; *) wanted="$wanted $1:$2:$3" ;; esac
}

# The interpreter and headers of one Lua, and the modules sora loads at run time in it.
lua_for() { # lua_for VERSION
  case $1 in
    luajit) need cmd luajit luajit; lua_headers lua5.1; interp=luajit ;;
    5.1) need cmd lua5.1 lua5.1; lua_headers lua5.1; interp=lua5.1 ;;
    *) need cmd "lua$1" "lua$1"; lua_headers "lua$1"; interp="lua$1" ;;
  esac
  need "$interp" cjson lua-cjson     # the module's JSON
  need "$interp" socket lua-socket   # the emulator (bin/sora-emulator, the specs)
  need "$interp" argparse lua-argparse # the sora command (bin/sora, examples/demo.lua)
}

lua_headers() { # lua_headers PKG-CONFIG-NAME
  [ "${LUA_HEADERS:-}" = given ] && return 0
  case $1 in
    luajit) need pc luajit libluajit-5.1-dev ;;
    lua5.1) need pc lua5.1 liblua5.1-0-dev ;;
    *) need pc "$1" "lib$1-dev" ;;
  esac
}

compiler() {
  cc_command=${CC%% *} # CC may carry flags
  case $cc_command in
    cc|gcc) need cmd "$cc_command" gcc ;;
    clang) need cmd clang clang ;;
    *) need cmd "$cc_command" - ;; # a compiler of your own: named if missing, not installed
  esac
  need cmd make make
  need cmd pkg-config pkg-config
  [ "${CURL_HEADERS:-}" = given ] || need pc libcurl libcurl4-openssl-dev # csrc/: curl/curl.h, -lcurl
  need pc libcrypto libssl-dev         # csrc/webhooks.c: HMAC-SHA256 from libcrypto
}

build() { compiler; lua_for "$LUA_VERSION"; }

node_npm() { # this machine's node and npm when it has them, else Debian's
  need cmd node nodejs
  need cmd npm npm
}

# Every tool a spec starts, with the spec that starts it.
test_tools() {
  compiler; lua_for 5.4; lua_for luajit
  need cmd busted lua-busted           # the runner (make test)
  need lua5.4 luv lua-luv              # loop_luv, review3_luv_exit
  need luajit luv lua-luv              # the same under LuaJIT
  need cmd luarocks luarocks           # install_spec, cli_commands_spec: rocks offline
  need cmd zip zip                     # luarocks pack (install_spec)
  need cmd unzip unzip                 # luarocks install of a .src.rock (install_spec)
  need cmd tinyproxy tinyproxy         # options_proxy_spec: a real proxy on loopback
  need cmd openssl openssl             # options_proxy_spec, security_spec: a TLS server
  need cmd nvim neovim                 # nvim_plugin_spec, loop_nvim_spec, embed_spec
  need cmd love love                   # love_game_spec: examples/love
  need cmd xvfb-run xvfb               # love_game_spec: a virtual display
  need cmd xauth xauth                 # xvfb-run's authority file
  need cmd strace strace               # integrity_download_spec: durable and no-truncate checks
  need cmd curl curl                   # perf_spec: the curl CLI's copy of a download
  node_npm                             # webhooks_npm_spec: standardwebhooks and the OpenAI SDK
}

[ $# -gt 0 ] || set -- build
for purpose in "$@"; do
  case $purpose in
    build) build ;;
    nvim) compiler; lua_headers "${LUA_PKG:-lua5.1}" ;;
    test) test_tools ;;
    all) test_tools; lua_for 5.1; lua_for 5.2; lua_for 5.3
         need lua5.1 luv lua-luv; need lua5.2 luv lua-luv; need lua5.3 luv lua-luv ;;
    bench) compiler; lua_for 5.4; lua_for luajit
           need cmd nginx nginx; need cmd curl curl; need cmd openssl openssl; node_npm ;;
    memory) compiler; lua_for 5.4; need cmd busted lua-busted
            need cmd clang clang; need cmd valgrind valgrind ;;
    lint) compiler; lua_for 5.4 # the analyzers read the headers
          need cmd luacheck lua-check; need cmd cppcheck cppcheck; need cmd clang-tidy clang-tidy ;;
    *) echo "tools/deps.sh: unknown purpose '$purpose' (build, nvim, test, all, bench, memory, lint)" >&2
       exit 2 ;;
  esac
done

present() { # present KIND NAME
  case $1 in
    cmd) command -v "$2" >/dev/null 2>&1 ;;
    pc) pkg-config --exists "$2" 2>/dev/null ;;
    *) "$1" -e "require '$2'" >/dev/null 2>&1 ;;
  esac
}

missing="" packages=""
for item in $wanted; do
  kind=${item%%:*} rest=${item#*:}
  name=${rest%%:*} package=${rest#*:}
  present "$kind" "$name" && continue
  case $kind in
    cmd) what="command $name" ;;
    pc) what="pkg-config $name" ;;
    *) what="Lua module $name for $kind" ;;
  esac
  missing="${missing:+$missing, }$what"
  case " $packages - " in *" $package "*) ;; *) packages="$packages $package" ;; esac
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "tools/deps.sh: missing: $missing" >&2
  echo "  (Debian 12's packages:$packages); install them, or run make with DEPS=0" >&2
  exit 1
fi
[ -n "$packages" ] || { echo "tools/deps.sh: missing: $missing" >&2; exit 1; }
echo "tools/deps.sh: installing$packages (missing: $missing)"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages
