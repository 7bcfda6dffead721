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
# webhooks.c: HMAC-SHA256 and base64 from OpenSSL's libcrypto
CRYPTO_LIBS ?= $(or $(shell pkg-config --libs libcrypto 2>/dev/null),-lcrypto)

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

.PHONY: all both deps test test-5.4 test-luajit demo emulator install clean lint

all: $(MODULE)

both:
	$(MAKE) LUA_VERSION=5.4
	$(MAKE) LUA_VERSION=5.1

$(BUILD)/obj/%.o: csrc/%.c csrc/*.h | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(MODULE): $(OBJS) | $(BUILD)/sora
	$(CC) $(LDFLAGS_SHARED) $(LDFLAGS) -o $@ $(OBJS) $(CURL_LIBS) $(CRYPTO_LIBS) -lm

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
#   make test-asan       the suite with the module under AddressSanitizer + UBSan + LeakSanitizer
#   make test-valgrind   the suite under valgrind memcheck (Debian's lua5.4, the plain module)
#   make test-gcstress   the suite with the collector forced to run constantly
.PHONY: test-asan test-valgrind test-gcstress

# ASan: clang builds the module and tools/sanlua.c, a minimal lua5.4 that links the sanitizer
# runtime itself. Debian's lua5.4 is not instrumented, and LD_PRELOADing the runtime into it
# would also preload it into every child the specs start (sh, mktemp, the emulator), each of
# which would then run LeakSanitizer at exit; with sanlua only the process under test is
# sanitized. sanlua closes the state at exit, so LeakSanitizer sees what the module did not
# free (fast_unwind_on_malloc=0: Debian's liblua has no frame pointers to unwind through).
# client_config's child interpreters run sanlua with the sanitized module too
# (SORA_TEST_LUA/SORA_TEST_CPATH); the emulator children are pure Lua in Debian's lua5.4.
ASAN_CC ?= clang
ASAN_BUILD = build/asan
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:fast_unwind_on_malloc=0 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  SORA_TEST_LUA=$(ASAN_BUILD)/sanlua SORA_TEST_CPATH="$(ASAN_BUILD)/?.so"
# busted re-runs itself under the profile's `lua` unless told --ignore-lua.
BUSTED_SCRIPT ?= /usr/bin/busted

$(ASAN_BUILD)/sanlua: tools/sanlua.c | $(ASAN_BUILD)
	$(ASAN_CC) $(ASAN_FLAGS) -I$(LUA_INCDIR) -o $@ $< -llua5.4 -lm

$(ASAN_BUILD):
	mkdir -p $@

test-asan: deps $(ASAN_BUILD)/sanlua
	$(MAKE) LUA_VERSION=5.4 BUILD=$(ASAN_BUILD) CC=$(ASAN_CC) CFLAGS="$(ASAN_FLAGS)" \
	  LDFLAGS="-fsanitize=address,undefined"
	$(ASAN_ENV) $(ASAN_BUILD)/sanlua $(BUSTED_SCRIPT) --ignore-lua --run=default \
	  --cpath="$(ASAN_BUILD)/?.so" $(BUSTED_ARGS)

# valgrind: the plain -O2 -g module in Debian's lua5.4, which closes its state at exit, so
# whatever the module did not free is "definitely lost". --keep-debuginfo keeps the module's
# symbols after lua_close has dlclosed it. The children are not traced (pure Lua, or covered
# by the ASan run). VALGRIND_SPECS narrows the run (default: the whole suite: ~25 s here).
VALGRIND_SPECS ?= spec
# The memory passes look for what the C core uses unanchored or frees twice: they leave out the
# specs of the pure-Lua emulator (it never loads the core) and those tagged #scale (10,000
# tasks, 1,000 sockets: the same core paths as smaller specs, at a cost that a collection
# every 1,000 instructions or valgrind multiplies a hundredfold). make test runs them all.
MEMORY_PASS_ARGS = --exclude-pattern=emulator_ --exclude-tags=scale
VALGRIND = valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite --keep-debuginfo=yes \
  --num-callers=40 --suppressions=$(CURDIR)/tools/valgrind.supp --trace-children=no -q

test-valgrind: deps
	$(MAKE) LUA_VERSION=5.4
	$(VALGRIND) lua5.4 $(BUSTED_SCRIPT) --ignore-lua --run=default $(MEMORY_PASS_ARGS) $(BUSTED_ARGS) \
	  $(VALGRIND_SPECS)

# GC stress: spec/support/gcstress.lua (a busted --helper) makes the collector run constantly,
# in every coroutine too, so that anything the C core uses without anchoring it is collected
# under its feet. Two passes: the incremental collector with a full collection every
# GCSTRESS_EVERY instructions, then the generational one.
GCSTRESS_EVERY ?= 1000
test-gcstress: deps
	$(MAKE) LUA_VERSION=5.4
	SORA_GCSTRESS=incremental:$(GCSTRESS_EVERY) $(BUSTED) --run=default \
	  --helper=spec/support/gcstress.lua $(MEMORY_PASS_ARGS) $(BUSTED_ARGS)
	SORA_GCSTRESS=generational:$(GCSTRESS_EVERY) $(BUSTED) --run=default \
	  --helper=spec/support/gcstress.lua $(MEMORY_PASS_ARGS) $(BUSTED_ARGS)

# The header path for libcurl older than 7.83 (no curl_easy_header: lines read as they come),
# built on purpose and run on the specs that read headers (a few seconds).
NOHEADER_BUILD = build/noheader-5.4
NOHEADER_SPECS ?= spec/response_raw_spec.lua spec/response_endpoints_spec.lua \
  spec/integrity_download_spec.lua spec/client_errors_spec.lua
.PHONY: test-noheader
test-noheader: deps
	$(MAKE) LUA_VERSION=5.4 BUILD=$(NOHEADER_BUILD) CFLAGS="$(OPT) -DSORA_NO_HEADER_API"
	$(BUSTED) --run=default --cpath="$(NOHEADER_BUILD)/?.so" $(NOHEADER_SPECS)

# ---- embedding: a C host with a frame loop, benchmarks ----------------------------------
# build/host embeds Lua 5.4 and runs examples/host.lua in a 60 Hz loop (see examples/host.c);
# `make host-run` builds the module too and runs it against a local emulator.
HOST_LUA_CFLAGS = $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
HOST_LUA_LIBS = $(or $(shell pkg-config --libs lua5.4 2>/dev/null),-llua5.4)

.PHONY: host host-run bench bench-scripts

host: build/host

build/host: examples/host.c
	@mkdir -p build
	$(CC) -std=c99 $(WARN) $(OPT) $(HOST_LUA_CFLAGS) -o $@ $< $(HOST_LUA_LIBS) -lm

host-run: build/host
	$(MAKE) LUA_VERSION=5.4
	build/host

# make bench: sora (5.4 and LuaJIT) against bench/limit.c, the curl CLI and the Node SDK, on
# its own nginx (docs/performance.md); writes bench/RESULTS.md (< 10 min). QUICK=1: fewer and
# smaller cases (< 2 min, CI), written to build/bench/RESULTS-quick.md. Prints, never asserts.
# make bench-scripts: the other bench/*.lua against the module built for LUA_VERSION.
BENCH_ARGS = $(if $(filter-out 0,$(QUICK)),--quick --out build/bench/RESULTS-quick.md)
bench: deps
	$(MAKE) LUA_VERSION=5.4
	$(MAKE) LUA_VERSION=5.1
	$(MAKE) build/bench/limit
	lua5.4 bench/run.lua $(BENCH_ARGS)

build/bench/limit: bench/limit.c
	@mkdir -p build/bench
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) $(OPT) $(HOST_LUA_CFLAGS) $(CURL_CFLAGS) -o $@ $< \
	  $(HOST_LUA_LIBS) $(CURL_LIBS) -lm

BENCH_SCRIPTS = $(filter-out $(SOAK_SCRIPTS) bench/run.lua bench/sora_case.lua,$(wildcard bench/*.lua))
bench-scripts: all
	@for b in $(BENCH_SCRIPTS); do echo "== $$b"; $(RUN) lua$(LUA_VERSION) $$b || exit 1; done

# ---- fuzzing ------------------------------------------------------------------------------
#   make fuzz                     builds both libFuzzer harnesses, runs each FUZZ_SECONDS
#   make fuzz FUZZ_SECONDS=180    a longer run
#   make fuzz-build               builds them only (build/fuzz/fuzz_headers, fuzz_marshal, fuzz_image)
# fuzz_headers: csrc/headers.c and csrc/retry.c. fuzz_marshal: a response body through the
# module's JSON decoder and sora_marshal for every result kind, then read as a program would.
# fuzz_image: csrc/image.c, the header reader of create's reference check; its own target,
# `make fuzz-image` (same FUZZ_SECONDS), so that `make fuzz` stays two harnesses for CI's count.
# The seeds in fuzz/corpus/<target>/ are only read; what libFuzzer finds goes to
# build/fuzz/corpus/<target>/. A crash leaves crash-* in build/fuzz/ and fails the target;
# fuzz/driver.c replays an input without libFuzzer (see its comment).
.PHONY: fuzz fuzz-build fuzz-image
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_BUILD = build/fuzz
FUZZ_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJS = $(patsubst csrc/%.c,$(FUZZ_BUILD)/obj/%.o,$(SRCS))
FUZZ_ENV = ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$(FUZZ_BUILD)/obj/%.o: csrc/%.c csrc/*.h | $(FUZZ_BUILD)/obj
	$(FUZZ_CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -I$(LUA_INCDIR) $(CURL_CFLAGS) \
	  $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_headers: fuzz/fuzz_headers.c $(FUZZ_BUILD)/obj/headers.o $(FUZZ_BUILD)/obj/retry.o
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -I$(LUA_INCDIR) $(CURL_CFLAGS) -o $@ $^ $(CURL_LIBS) -lm

$(FUZZ_BUILD)/fuzz_marshal: fuzz/fuzz_marshal.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -I$(LUA_INCDIR) $(CURL_CFLAGS) -o $@ $^ \
	  -llua5.4 $(CURL_LIBS) $(CRYPTO_LIBS) -lm

$(FUZZ_BUILD)/fuzz_image: fuzz/fuzz_image.c $(FUZZ_BUILD)/obj/image.o
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -I$(LUA_INCDIR) -o $@ $^

$(FUZZ_BUILD)/obj $(FUZZ_BUILD)/corpus/headers $(FUZZ_BUILD)/corpus/marshal $(FUZZ_BUILD)/corpus/image:
	mkdir -p $@

fuzz-build: $(FUZZ_BUILD)/fuzz_headers $(FUZZ_BUILD)/fuzz_marshal $(FUZZ_BUILD)/fuzz_image

fuzz: fuzz-build | $(FUZZ_BUILD)/corpus/headers $(FUZZ_BUILD)/corpus/marshal
	cd $(FUZZ_BUILD) && $(FUZZ_ENV) ./fuzz_headers -max_total_time=$(FUZZ_SECONDS) -max_len=512 \
	  -timeout=10 -print_final_stats=1 corpus/headers $(CURDIR)/fuzz/corpus/headers
	cd $(FUZZ_BUILD) && $(FUZZ_ENV) ./fuzz_marshal -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
	  -timeout=10 -print_final_stats=1 corpus/marshal $(CURDIR)/fuzz/corpus/marshal

fuzz-image: $(FUZZ_BUILD)/fuzz_image | $(FUZZ_BUILD)/corpus/image
	cd $(FUZZ_BUILD) && $(FUZZ_ENV) ./fuzz_image -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -timeout=10 -print_final_stats=1 corpus/image $(CURDIR)/fuzz/corpus/image

# ---- soak: thousands of jobs under random faults, 1,000 connections, kill -9 mid-download --
#   make soak                 2,000 jobs, 1,000 held connections, 50 kills (docs/reliability.md)
#   make soak QUICK=1         200 jobs, 1,000 held connections, 20 kills: CI's run (< 2 min)
#   make soak-asan QUICK=1    the same with the module under the sanitizers
#   SEED=n JOBS=n FAULT_RATE=0.2 CONCURRENCY=n KILLS=n override; a failing run prints the seed
#   that replays it. Exits non-zero when a job is lost or corrupt, when descriptors do not
#   return to the baseline, or when any other check fails; the last line is
#   "soak: N passed, N failed".
.PHONY: soak soak-asan
# `make bench` leaves these to `make soak`; SOAK_LUA=luajit (with LUA_VERSION=5.1) runs on LuaJIT.
SOAK_SCRIPTS = bench/soak.lua bench/kill_download.lua
SOAK_LUA ?= lua$(LUA_VERSION)
SOAK_ARGS = $(if $(filter-out 0,$(QUICK)),--quick) $(if $(SEED),--seed $(SEED)) \
  $(if $(JOBS),--jobs $(JOBS)) $(if $(FAULT_RATE),--fault-rate $(FAULT_RATE)) \
  $(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) $(if $(KILLS),--kills $(KILLS))

soak: deps all
	$(RUN) $(SOAK_LUA) bench/soak.lua $(SOAK_ARGS)

# The same soak with the module under ASan + UBSan + LeakSanitizer (see test-asan): the harness
# and the killed children run in the sanitized interpreter.
soak-asan: deps $(ASAN_BUILD)/sanlua
	$(MAKE) LUA_VERSION=5.4 BUILD=$(ASAN_BUILD) CC=$(ASAN_CC) CFLAGS="$(ASAN_FLAGS)" \
	  LDFLAGS="-fsanitize=address,undefined"
	$(ASAN_ENV) LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(ASAN_BUILD)/?.so;;" \
	  $(ASAN_BUILD)/sanlua bench/soak.lua $(SOAK_ARGS)

# ---- static analysis ----------------------------------------------------------------------
#   make lint   luacheck (.luacheckrc) on every Lua file; cppcheck and clang-tidy (.clang-tidy)
#               on csrc/, each failing on any finding. The tools: Debian's lua-check, cppcheck
#               and clang-tidy.
LUA_SOURCES = lua $(wildcard bin/*) bench examples spec $(wildcard plugin)
# cppcheck does not define __GNUC__, under which compat.h marks the raising helpers noreturn;
# without it every raise looks like a return and each one is a false "null dereference".
# LLONG_MAX: luaconf.h insists on it before it will configure lua_Integer.
CPPCHECK_FLAGS = --enable=warning,style,performance,portability --std=c99 --error-exitcode=1 \
  --inline-suppr --quiet --suppress=missingIncludeSystem \
  -D__GNUC__ -D_POSIX_C_SOURCE=200809L -DLLONG_MAX=9223372036854775807LL \
  -I$(LUA_INCDIR) $(patsubst -I%,-I%,$(filter -I%,$(CURL_CFLAGS))) -I/usr/include/$(shell gcc -dumpmachine) -Icsrc

lint:
	luacheck --no-color -q $(LUA_SOURCES)
	cppcheck $(CPPCHECK_FLAGS) csrc/*.c
	@echo "clang-tidy csrc/*.c"; \
	out=$$(clang-tidy --quiet csrc/*.c -- -std=c99 -D_POSIX_C_SOURCE=200809L -I$(LUA_INCDIR) \
	  $(CURL_CFLAGS) -I/usr/include/$(shell gcc -dumpmachine) 2>&1); status=$$?; \
	printf '%s\n' "$$out" | grep -v ' warnings generated\.$$'; exit $$status

# ---- the Neovim plugin --------------------------------------------------------------------
# `make nvim` (a plugin manager's build step) builds the LuaJIT-ABI core and puts it at
# lua/sora/core.so: with this directory on Neovim's runtimepath, `require "sora.core"` finds it
# there through Neovim's own loader (lua/?.so under every runtimepath entry), so no
# package.cpath needs touching. Installed through a rename, so that a Neovim that has the old
# module mapped keeps a valid file. :help sora's tags (doc/tags) are generated when nvim is
# on the PATH, as a plugin manager's build step expects. See docs/neovim.md.
# The headers: Lua 5.1's, else LuaJIT's (the same ABI; some systems have only one of them).
NVIM_LUA_PKG = $(shell pkg-config --exists lua5.1 2>/dev/null && echo lua5.1 || \
  { pkg-config --exists luajit 2>/dev/null && echo luajit; } || echo lua5.1)
.PHONY: nvim
nvim:
	$(MAKE) LUA_VERSION=5.1 LUA_PKG=$(NVIM_LUA_PKG)
	install -m 755 build/5.1/sora/core.so lua/sora/core.so.new
	mv -f lua/sora/core.so.new lua/sora/core.so
	if command -v nvim >/dev/null 2>&1; then nvim --headless --clean -c 'helptags $(CURDIR)/doc' -c 'qa!'; fi
