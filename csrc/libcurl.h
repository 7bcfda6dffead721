/* libcurl's header, included through here so that a machine with the library but not its
   headers gets told what to install: a LuaRocks build checks for the library only (Debian keeps
   curl.h where LuaRocks does not look), and the compiler's own "No such file" says nothing of
   the package. The Makefile checks the same before compiling (tools/check-headers.sh). */
#ifndef SORA_LIBCURL_H
#define SORA_LIBCURL_H

#if defined(__has_include)
#if !__has_include(<curl/curl.h>)
#error "curl/curl.h not found: install libcurl4-openssl-dev (Debian/Ubuntu) or set CURL_INCDIR"
#endif
#endif
#include <curl/curl.h>

#endif
