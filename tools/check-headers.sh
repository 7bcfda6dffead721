#!/bin/sh
# Checks, before the Makefile compiles anything, that the headers sora.core needs are found;
# if one is missing it says which and how to get it, instead of a compiler error mid-build.
#   sh tools/check-headers.sh CC LUA_INCDIR LUA_PKG CURL_CFLAGS
cc=${1:-cc} lua_incdir=$2 lua_pkg=$3 curl_cflags=$4

# Whether `#include <$1>` preprocesses with the flags that follow.
found() {
  header=$1
  shift
  printf '#include <%s>\n' "$header" | $cc -E "$@" -x c - >/dev/null 2>&1
}

status=0
if ! found lua.h -I"$lua_incdir"; then
  echo "sora: lua.h not found in $lua_incdir: install the headers of $lua_pkg" \
    "(Debian: lib${lua_pkg}-dev; for 5.1: liblua5.1-0-dev), or set LUA_INCDIR=<dir with lua.h>" >&2
  status=1
fi
# shellcheck disable=SC2086 # CURL_CFLAGS is a list of flags
if ! found curl/curl.h $curl_cflags; then
  if ldconfig -p 2>/dev/null | grep -q 'libcurl\.so'; then
    echo "sora: libcurl is installed but its headers (curl/curl.h) are not:" \
      "install libcurl4-openssl-dev (Debian/Ubuntu; libcurl-devel on Fedora)," \
      "or set CURL_INCDIR=<dir with curl/curl.h> for a libcurl of your own" >&2
  else
    echo "sora: libcurl and its headers (curl/curl.h) are missing: install libcurl4-openssl-dev" \
      "(Debian/Ubuntu; libcurl-devel on Fedora), or set CURL_INCDIR and CURL_LIBDIR" >&2
  fi
  status=1
fi
exit $status
