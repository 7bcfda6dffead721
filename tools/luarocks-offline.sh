#!/bin/sh
# Prints a LuaRocks configuration for installing sora's rocks with no network (make
# rock-install): Debian's lua-cjson, lua-socket (and lua-argparse) are system packages, not
# rocks, so LuaRocks would look for them on a server; rocks_provided tells it the system already
# provides them, at the versions dpkg reports (a version constraint of the rockspec is still
# checked). Without those packages nothing is declared, and LuaRocks looks for the rocks where
# --server says.
version() {
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
    sed -n 's/^install ok installed \([0-9]*:\)\{0,1\}\([0-9.]*\).*/\2-1/p'
}
echo "-- written by tools/luarocks-offline.sh"
echo "rocks_servers = {}"
echo "rocks_provided = {"
for pair in lua-cjson:lua-cjson luasocket:lua-socket argparse:lua-argparse busted:lua-busted; do
  rock=${pair%%:*} package=${pair#*:}
  v=$(version "$package")
  [ -n "$v" ] && echo "  [\"$rock\"] = \"$v\","
done
echo "}"
