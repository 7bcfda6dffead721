#!/bin/sh
# Installs the Debian 12 packages that sora's build, demo and tests need, when missing.
# Runs apt-get as root, or through sudo.
set -e
packages="make gcc pkg-config libcurl4-openssl-dev lua5.4 liblua5.4-dev lua5.1 liblua5.1-0-dev
luajit libluajit-5.1-dev lua-cjson lua-socket lua-busted luarocks neovim
lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev zip unzip"
packages="$packages lua-argparse" # the sora command's parser (bin/sora, examples/demo.lua)
packages="$packages love xvfb xauth" # examples/love under a virtual display (spec/love_game_spec.lua)
packages="$packages libssl-dev" # sora.webhooks: HMAC-SHA256 from libcrypto
packages="$packages tinyproxy" # spec/options_proxy_spec.lua: a real proxy on loopback
packages="$packages lua-luv" # the event loop specs (luv for 5.1-5.4 and LuaJIT)
packages="$packages nginx openssl curl valgrind" # make bench (docs/performance.md)
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
