# sora: build, test, demo, install.
#   make                 the module for Lua 5.4 (build/5.4/sora/core.so)
#   make LUA_VERSION=5.1 the module for Lua 5.1 and LuaJIT (build/5.1/sora/core.so)
#   make test            the specs on Lua 5.4 and on LuaJIT
#   make demo            generate a video against the local emulator
# Override LUA_INCDIR, CURL_CFLAGS, CURL_LIBS, CC, CFLAGS, PREFIX as needed.

LUA_VERSION ?= 5.4
LUA_PKG ?= $(if $(filter 5.1,$(LUA_VERSION)),lua5.1,lua$(LUA_VERSION))
LUA_INCDIR ?= $(patsubst -I%,%,$(firstword $(shell pkg-config --cflags-only-I $(LUA_PKG) 2>/dev/null)))
LUA_INCDIR := $(or $(LUA_INCDIR),/usr/include/lua$(LUA_VERSION))
CURL_CFLAGS ?= $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS ?= $(or $(shell pkg-config --libs libcurl 2>/dev/null),-lcurl)

CC ?= cc
OPT ?= -O2 -g
CFLAGS ?= $(OPT)
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
ALL_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN) \
             -I$(LUA_INCDIR) $(CURL_CFLAGS) $(CFLAGS)
LDFLAGS_SHARED = -shared

BUILD = build/$(LUA_VERSION)
SRCS = $(wildcard csrc/*.c)
OBJS = $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(SRCS))
MODULE = $(BUILD)/sora/core.so

PREFIX ?= /usr/local
LUA_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)

BUSTED ?= busted

.PHONY: all both deps test test-5.4 test-luajit demo emulator install clean

all: $(MODULE)

both:
	$(MAKE) LUA_VERSION=5.4
	$(MAKE) LUA_VERSION=5.1

$(BUILD)/obj/%.o: csrc/%.c csrc/*.h | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(MODULE): $(OBJS) | $(BUILD)/sora
	$(CC) $(LDFLAGS_SHARED) $(LDFLAGS) -o $@ $(OBJS) $(CURL_LIBS) -lm

$(BUILD)/obj $(BUILD)/sora:
	mkdir -p $@

test: deps test-5.4 test-luajit

test-5.4:
	$(MAKE) LUA_VERSION=5.4
	$(BUSTED) --run=default

test-luajit:
	$(MAKE) LUA_VERSION=5.1
	$(BUSTED) --run=luajit

# Run from the checkout: the module tree and the freshly built core come first.
RUN = LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;"

demo: deps all
	$(RUN) lua$(LUA_VERSION) examples/demo.lua $(DEMO_ARGS)

emulator:
	lua5.4 bin/sora-emulator

# Installs the Debian packages the build, the demo and the tests need, when missing.
deps:
	@sh tools/deps.sh

install: all
	install -d $(DESTDIR)$(LUA_LIBDIR)/sora $(DESTDIR)$(LUA_SHAREDIR)/sora
	install -m 755 $(MODULE) $(DESTDIR)$(LUA_LIBDIR)/sora/core.so
	cp -R lua/sora/. $(DESTDIR)$(LUA_SHAREDIR)/sora/

clean:
	rm -rf build

# ---- memory safety ----------------------------------------------------------------------
# The suite under AddressSanitizer + UBSan: the module is built with the sanitizers and the
# interpreter preloads their runtime (Lua itself is not instrumented).
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
ASAN_RT = $(shell $(CC) -print-file-name=libasan.so)
UBSAN_RT = $(shell $(CC) -print-file-name=libubsan.so)

test-asan:
	$(MAKE) LUA_VERSION=5.4 BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined"
	LD_PRELOAD="$(ASAN_RT) $(UBSAN_RT)" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 \
	  $(BUSTED) --run=default --cpath="build/asan/?.so"

test-valgrind:
	$(MAKE) LUA_VERSION=5.4
	valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  --suppressions=$(CURDIR)/tools/valgrind.supp --trace-children=no -q \
	  lua5.4 /usr/bin/busted --run=default
