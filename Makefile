# sora: build, test, demo, install.
#   make                 the module for Lua 5.4 (build/5.4/sora/core.so)
#   make LUA_VERSION=5.1 the module for Lua 5.1 and LuaJIT (build/5.1/sora/core.so)
#   make test            the specs on Lua 5.4 and on LuaJIT (both builds first: specs run the
#                        command under the other interpreter)
#   make demo            generate a video against the local emulator
# Override LUA_INCDIR, CURL_CFLAGS, CURL_LIBS, CC, CFLAGS, PREFIX as needed.

LUA_VERSION ?= 5.4
LUA_PKG ?= $(if $(filter 5.1,$(LUA_VERSION)),lua5.1,lua$(LUA_VERSION))
LUA_INCDIR ?= $(patsubst -I%,%,$(firstword $(shell pkg-config --cflags-only-I $(LUA_PKG) 2>/dev/null)))
LUA_INCDIR := $(or $(LUA_INCDIR),/usr/include/lua$(LUA_VERSION))
# CURL_INCDIR (and CURL_LIBDIR) target a libcurl of your own, as in the rockspec.
CURL_CFLAGS ?= $(if $(CURL_INCDIR),-I$(CURL_INCDIR),$(shell pkg-config --cflags libcurl 2>/dev/null))
CURL_LIBS ?= $(if $(CURL_LIBDIR),-L$(CURL_LIBDIR) -lcurl,$(or $(shell pkg-config --libs libcurl 2>/dev/null),-lcurl))
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

.PHONY: all both deps deps-build deps-test deps-all deps-bench deps-memory deps-lint test test-5.4 test-luajit demo emulator install clean lint

all: $(MODULE)

both:
	$(MAKE) LUA_VERSION=5.4
	$(MAKE) LUA_VERSION=5.1

$(BUILD)/obj/%.o: csrc/%.c csrc/*.h | $(BUILD)/obj $(BUILD)/headers-ok
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(MODULE): $(OBJS) | $(BUILD)/sora
	$(CC) $(LDFLAGS_SHARED) $(LDFLAGS) -o $@ $(OBJS) $(CURL_LIBS) $(CRYPTO_LIBS) -lm

$(BUILD)/obj $(BUILD)/sora:
	mkdir -p $@

# Before compiling: the headers are there, or the build stops naming what provides them (a
# machine with the runtime libraries alone would otherwise fail deep in the compiler).
$(BUILD)/headers-ok: | deps-build
	@sh tools/check-headers.sh "$(CC)" "$(LUA_INCDIR)" "$(LUA_PKG)" "$(CURL_CFLAGS)"
	@mkdir -p $(BUILD) && touch $@

test: deps-test both test-5.4 test-luajit

test-5.4:
	$(MAKE) LUA_VERSION=5.4
	$(BUSTED) --run=default

test-luajit:
	$(MAKE) LUA_VERSION=5.1
	$(BUSTED) --run=luajit

# Run from the checkout: the module tree and the freshly built core come first.
RUN = LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;"

demo: deps-build all
	$(RUN) lua$(LUA_VERSION) examples/demo.lua $(DEMO_ARGS)

emulator:
	lua5.4 bin/sora-emulator

# Installs the Debian packages a target needs, when missing (tools/deps.sh names each
# purpose's); `make deps` all of them. DEPS=0 skips the step (a system without apt-get, or
# one where you install them yourself).
deps: deps-build deps-test deps-all deps-bench deps-memory deps-lint
# What compiling checks (deps-build): `build` (also what runs sora: the interpreter, lua-cjson,
# LuaSocket, argparse), or `nvim` (the compiler and the 5.1/LuaJIT headers: Neovim brings its
# own LuaJIT). Headers named on the command line or in the environment are not checked.
BUILD_DEPS ?= build
given = $(if $(filter command environment,$(foreach v,$(1),$(firstword $(origin $(v))))),given)
DEPS_ENV = LUA_VERSION=$(LUA_VERSION) LUA_PKG=$(LUA_PKG) CC="$(CC)" \
  LUA_HEADERS=$(call given,LUA_INCDIR) CURL_HEADERS=$(call given,CURL_INCDIR CURL_CFLAGS)
deps-build deps-test deps-all deps-bench deps-memory deps-lint:
	@$(if $(filter 0,$(DEPS)),:,$(DEPS_ENV) sh tools/deps.sh $(if $(filter deps-build,$@),$(BUILD_DEPS),$(@:deps-%=%)))

# The command line tools (every bin/* script) are installed with their shebang naming the
# interpreter of LUA_VERSION (LUA_INTERPRETER: luajit for LUA_VERSION=5.1 builds for Neovim).
BINDIR ?= $(PREFIX)/bin
LUA_INTERPRETER ?= $(if $(filter 5.1,$(LUA_VERSION)),lua5.1,lua$(LUA_VERSION))
BIN_SCRIPTS = $(wildcard bin/*)

install: all
	install -d $(DESTDIR)$(LUA_LIBDIR)/sora $(DESTDIR)$(LUA_SHAREDIR)/sora $(DESTDIR)$(BINDIR)
	install -m 755 $(MODULE) $(DESTDIR)$(LUA_LIBDIR)/sora/core.so
	cp -R lua/sora/. $(DESTDIR)$(LUA_SHAREDIR)/sora/
	for script in $(BIN_SCRIPTS); do \
	  sed '1s|^#!.*|#!/usr/bin/env $(LUA_INTERPRETER)|' $$script > $(DESTDIR)$(BINDIR)/$${script#bin/} && \
	  chmod 755 $(DESTDIR)$(BINDIR)/$${script#bin/} || exit 1; \
	done

clean:
	rm -rf build lua/sora/core.so lua/sora/core.so.new

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
# The specs' child interpreters (support.client's interpreter(): the sora command, child
# scripts, the documentation's blocks) run sanlua with the sanitized module too
# (SORA_TEST_LUA/SORA_TEST_CPATH); the emulator children are pure Lua in Debian's lua5.4.
# ASAN_PASS_ARGS leaves out the specs whose children no pass instruments (see below).
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

test-asan: deps-test deps-memory $(ASAN_BUILD)/sanlua
	$(MAKE) LUA_VERSION=5.4 BUILD=$(ASAN_BUILD) CC=$(ASAN_CC) CFLAGS="$(ASAN_FLAGS)" \
	  LDFLAGS="-fsanitize=address,undefined"
	$(ASAN_ENV) $(ASAN_BUILD)/sanlua $(BUSTED_SCRIPT) --ignore-lua --run=default \
	  --cpath="$(ASAN_BUILD)/?.so" $(ASAN_PASS_ARGS) $(BUSTED_ARGS)

# valgrind: the plain -O2 -g module in Debian's lua5.4, which closes its state at exit, so
# whatever the module did not free is "definitely lost". --keep-debuginfo keeps the module's
# symbols after lua_close has dlclosed it. The children are not traced (pure Lua, or covered
# by the ASan run). VALGRIND_SPECS narrows the run (default: the suite as MEMORY_PASS_ARGS says).
VALGRIND_SPECS ?= spec

# What the memory passes run. They look for what the C core does wrong (uses unanchored, reads
# uninitialised, frees twice, leaks), and they see it only in the processes they instrument: the
# busted process always; its children only where the pass gives them the instrumented core.
# These specs never load sora.core in the busted process (measured: an output handler noting
# after every test whether package.loaded["sora.core"] is set; docs/development.md), all their
# work is in children, so they are left out where those children are not instrumented:
# MEMORY_UNCHECKED_SPECS: children that no pass instruments: the pure-Lua emulator (Debian's
#   lua5.4), the installed and copied trees under each plain interpreter (install, launchers),
#   the C host and the LÖVE and Neovim hosts on the plain builds (embed, loop_host, love_game,
#   loop_nvim), file checks (packaging). No memory pass runs them (about 70 s each).
# MEMORY_CHILD_SPECS: children that run the sora command or a script in support.client's
#   interpreter(): under test-asan that is tools/sanlua with the sanitized module
#   (SORA_TEST_LUA), so ASan runs and checks them; valgrind does not trace children and the
#   gcstress helper is loaded in the busted process alone, so test-valgrind and test-gcstress
#   leave them out (about 110 s each).
# A spec that loads the core in the busted process runs in every pass (gcstress: see
# GCSTRESS_UNTIMELY_SPECS and GCSTRESS_GENERATIONAL_SPECS): a new spec file does unless named.
# Besides, test-valgrind and test-gcstress leave out the tests tagged #scale (10,000 tasks,
# 1,000 sockets: the same core paths as smaller specs, at a cost that a collection every 1,000
# instructions or valgrind multiplies a hundredfold); ASan runs them.
# make test and make test-all run everything.
MEMORY_UNCHECKED_SPECS = emulator emulator_connections emulator_idempotency emulator_sha256 \
  emulator_soak install launchers embed loop_host love_game loop_nvim packaging
MEMORY_CHILD_SPECS = batch_independent cli_batch cli_commands cli_conventions cli_exit cli_json \
  cli_output cli_progress docs review3_luv_exit review_finalizer review_reentry
exclude_specs = $(foreach spec,$(1),--exclude-pattern=^$(spec)_spec%.lua)
ASAN_PASS_ARGS = $(call exclude_specs,$(MEMORY_UNCHECKED_SPECS))
MEMORY_PASS_ARGS = $(call exclude_specs,$(MEMORY_UNCHECKED_SPECS) $(MEMORY_CHILD_SPECS)) \
  --exclude-tags=scale
VALGRIND = valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite --keep-debuginfo=yes \
  --num-callers=40 --suppressions=$(CURDIR)/tools/valgrind.supp --trace-children=no -q

test-valgrind: deps-test deps-memory
	$(MAKE) LUA_VERSION=5.4
	$(VALGRIND) lua5.4 $(BUSTED_SCRIPT) --ignore-lua --run=default $(MEMORY_PASS_ARGS) $(BUSTED_ARGS) \
	  $(VALGRIND_SPECS)

# GC stress: spec/support/gcstress.lua (a busted --helper) makes the collector run constantly,
# in every coroutine too, so that anything the C core uses without anchoring it is collected
# under its feet. Two passes: the incremental collector with a full collection every
# GCSTRESS_EVERY instructions on the suite (MEMORY_PASS_ARGS), then the generational one on
# GCSTRESS_GENERATIONAL_SPECS. Both passes force the same full collection every GCSTRESS_EVERY
# instructions, and a full collection frees whatever is unreachable in either mode, so a value
# the core leaves unanchored is found by the first pass. What the second adds is the
# generational collector's own work between those: minor collections at every 1 % of growth
# (inside the core's allocations too) and objects that age into the old generation. That
# matters where the core holds Lua objects across calls, and these specs are where it does:
# the core's arguments, callbacks, handles and descriptors, clients closed and collected,
# callbacks and cancels through the Lua layer, tasks (coroutines resumed from the core), the
# scheduler, luv's watchers. The feature specs (batch, reconcile, faults, retry, integrity,
# secrets, webhooks...) drive those same objects through the same core paths: the generational
# pass over them was ~70 % of its time, spent on what the incremental pass has just looked at.
# GCSTRESS_GENERATIONAL_SPECS=spec runs the generational pass on the whole suite too.
GCSTRESS_EVERY ?= 1000
# emulator_limits_spec tests the emulator's own state against its 0.2 s jobs from the busted
# process, which gcstress slows past them (a video still "queued" had moved on); its one test
# through the core (a 40 MB upload from a file) runs under ASan and valgrind.
GCSTRESS_UNTIMELY_SPECS = emulator_limits
GCSTRESS_GENERATIONAL_SPECS ?= $(patsubst %,spec/%_spec.lua,core_arguments core_callbacks \
  core_curl core_descriptors client_handle client_lifecycle lua_callback lua_cancel \
  review_callbacks review_options tasks sched_due sched_interrupt loop_luv public_names)
test-gcstress: deps-test
	$(MAKE) LUA_VERSION=5.4
	SORA_GCSTRESS=incremental:$(GCSTRESS_EVERY) $(BUSTED) --run=default \
	  --helper=spec/support/gcstress.lua $(MEMORY_PASS_ARGS) \
	  $(call exclude_specs,$(GCSTRESS_UNTIMELY_SPECS)) $(BUSTED_ARGS)
	SORA_GCSTRESS=generational:$(GCSTRESS_EVERY) $(BUSTED) --run=default \
	  --helper=spec/support/gcstress.lua $(MEMORY_PASS_ARGS) $(BUSTED_ARGS) \
	  $(GCSTRESS_GENERATIONAL_SPECS)

# The header path for libcurl older than 7.83 (no curl_easy_header: lines read as they come),
# built on purpose and run on the specs that read headers (a few seconds).
NOHEADER_BUILD = build/noheader-5.4
NOHEADER_SPECS ?= spec/response_raw_spec.lua spec/response_endpoints_spec.lua \
  spec/integrity_download_spec.lua spec/client_errors_spec.lua
.PHONY: test-noheader
test-noheader: deps-test
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
bench: deps-bench
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
#   make fuzz                     builds the three libFuzzer harnesses, runs each FUZZ_SECONDS
#   make fuzz FUZZ_SECONDS=180    a longer run
#   make fuzz-build               builds them only (build/fuzz/fuzz_headers, fuzz_marshal, fuzz_image)
# fuzz_headers: csrc/headers.c and csrc/retry.c. fuzz_marshal: a response body through the
# module's JSON decoder and sora_marshal for every result kind, then read as a program would.
# fuzz_image: csrc/image.c, the header reader of create's reference check (also alone:
# `make fuzz-image`).
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

fuzz-build: deps-memory $(FUZZ_BUILD)/fuzz_headers $(FUZZ_BUILD)/fuzz_marshal $(FUZZ_BUILD)/fuzz_image

fuzz: fuzz-build | $(FUZZ_BUILD)/corpus/headers $(FUZZ_BUILD)/corpus/marshal $(FUZZ_BUILD)/corpus/image
	cd $(FUZZ_BUILD) && $(FUZZ_ENV) ./fuzz_headers -max_total_time=$(FUZZ_SECONDS) -max_len=512 \
	  -timeout=10 -print_final_stats=1 corpus/headers $(CURDIR)/fuzz/corpus/headers
	cd $(FUZZ_BUILD) && $(FUZZ_ENV) ./fuzz_marshal -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
	  -timeout=10 -print_final_stats=1 corpus/marshal $(CURDIR)/fuzz/corpus/marshal
	$(MAKE) fuzz-image

fuzz-image: $(FUZZ_BUILD)/fuzz_image | $(FUZZ_BUILD)/corpus/image
	cd $(FUZZ_BUILD) && $(FUZZ_ENV) ./fuzz_image -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -timeout=10 -print_final_stats=1 corpus/image $(CURDIR)/fuzz/corpus/image

# ---- soak: thousands of jobs under random faults, 1,000 connections, kill -9 mid-download --
#   make soak                 2,000 jobs, 1,000 held connections, 50 kills of a download and 50 of
#                             a journaled batch of 500 jobs (docs/reliability.md)
#   make soak QUICK=1         200 jobs, 1,000 held connections, 20 + 20 kills (a batch of 200):
#                             CI's run (< 2 min)
#   make soak-asan QUICK=1    the same with the module under the sanitizers
#   SEED=n JOBS=n FAULT_RATE=0.2 CONCURRENCY=n KILLS=n override; a failing run prints the seed
#   that replays it. Exits non-zero when a job is lost or corrupt, when descriptors do not
#   return to the baseline, or when any other check fails; the last line is
#   "soak: N passed, N failed".
.PHONY: soak soak-asan
# `make bench` leaves these to `make soak`; SOAK_LUA=luajit (with LUA_VERSION=5.1) runs on LuaJIT.
SOAK_SCRIPTS = bench/soak.lua bench/kill_download.lua bench/batch_kill.lua
SOAK_LUA ?= lua$(LUA_VERSION)
SOAK_ARGS = $(if $(filter-out 0,$(QUICK)),--quick) $(if $(SEED),--seed $(SEED)) \
  $(if $(JOBS),--jobs $(JOBS)) $(if $(FAULT_RATE),--fault-rate $(FAULT_RATE)) \
  $(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) $(if $(KILLS),--kills $(KILLS))

soak: deps-build all
	$(RUN) $(SOAK_LUA) bench/soak.lua $(SOAK_ARGS)

# The same soak with the module under ASan + UBSan + LeakSanitizer (see test-asan): the harness
# and the killed children run in the sanitized interpreter.
soak-asan: deps-memory $(ASAN_BUILD)/sanlua
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

lint: deps-lint
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
	$(MAKE) LUA_VERSION=5.1 LUA_PKG=$(NVIM_LUA_PKG) BUILD_DEPS=nvim
	install -m 755 build/5.1/sora/core.so lua/sora/core.so.new
	mv -f lua/sora/core.so.new lua/sora/core.so
	if command -v nvim >/dev/null 2>&1; then nvim --headless --clean -c 'helptags $(CURDIR)/doc' -c 'qa!'; fi

# ---- every Lua; release tarballs and rocks ----------------------------------------------
#   make test-all     the suite on Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT. 5.4, 5.1 and LuaJIT run
#                     against the rocks of `make rock` installed offline into fresh trees
#                     (build/rocks/<version>), 5.2 and 5.3 against build/5.2, build/5.3.
#   make dist         dist/sora-V.tar.gz, dist/sora-emulator-V.tar.gz and the release
#                     rockspecs rockspecs/sora-V-1.rockspec, rockspecs/sora-emulator-V-1.rockspec
#   make rock         dist/*.src.rock and a manifest: dist/ is a local server of rocks
#   make rock-install LUA_VERSION=5.1   both rocks into a fresh tree, with no network
# DIST_URL is where the tarballs are published: file://<checkout>/dist by default, so that
# everything works offline; a release sets it to the release's download URL (docs/packaging.md).
.PHONY: test-all dist rock rock-install
VERSION := $(shell sed -n 's/^\#define SORA_VERSION "\(.*\)"$$/\1/p' csrc/sora.h)
ROCK_REVISION ?= 1
ROCK_VERSION = $(VERSION)-$(ROCK_REVISION)
DIST = dist
DIST_URL ?= file://$(CURDIR)/$(DIST)
LUAROCKS ?= luarocks
TAR_FLAGS = --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner
# The client leaves the emulator (and its luasocket) to the emulator's rock.
EMULATOR_FILES = lua/sora/emulator bin/sora-emulator docs/emulator.md
CLIENT_FILES = csrc lua bin docs README.md Makefile tools/deps.sh tools/check-headers.sh

dist:
	@rm -rf $(DIST) && mkdir -p $(DIST) rockspecs
	tar -czf $(DIST)/sora-$(VERSION).tar.gz $(TAR_FLAGS) --transform 's,^,sora-$(VERSION)/,' \
	  --exclude=lua/sora/emulator --exclude=bin/sora-emulator --exclude='*.so' \
	  $(wildcard $(CLIENT_FILES))
	tar -czf $(DIST)/sora-emulator-$(VERSION).tar.gz $(TAR_FLAGS) \
	  --transform 's,^,sora-emulator-$(VERSION)/,' $(EMULATOR_FILES)
	lua5.4 tools/release-rockspec.lua sora-scm-1.rockspec $(ROCK_VERSION) \
	  $(DIST_URL)/sora-$(VERSION).tar.gz $$(md5sum < $(DIST)/sora-$(VERSION).tar.gz | cut -c1-32) \
	  sora-$(VERSION) $(filter-out sora-emulator,$(notdir $(BIN_SCRIPTS))) \
	  > rockspecs/sora-$(ROCK_VERSION).rockspec
	lua5.4 tools/release-rockspec.lua rockspecs/sora-emulator-scm-1.rockspec $(ROCK_VERSION) \
	  $(DIST_URL)/sora-emulator-$(VERSION).tar.gz \
	  $$(md5sum < $(DIST)/sora-emulator-$(VERSION).tar.gz | cut -c1-32) \
	  sora-emulator-$(VERSION) sora-emulator > rockspecs/sora-emulator-$(ROCK_VERSION).rockspec
	@ls -l $(DIST) rockspecs/*-$(ROCK_VERSION).rockspec

# luarocks pack fetches each rockspec's source (file://, no network) and bundles it.
rock: dist
	cd $(DIST) && $(LUAROCKS) pack $(CURDIR)/rockspecs/sora-$(ROCK_VERSION).rockspec
	cd $(DIST) && $(LUAROCKS) pack $(CURDIR)/rockspecs/sora-emulator-$(ROCK_VERSION).rockspec
	luarocks-admin make-manifest $(DIST) >/dev/null
	@ls -l $(DIST)/*.src.rock

# Offline: LuaRocks gets no server but dist/, and tools/luarocks-offline.sh declares Debian's
# lua-cjson and lua-socket (which are not rocks) as provided by the system.
ROCK_TREE = build/rocks/$(LUA_VERSION)
ROCK_CONFIG = build/rocks/config.lua

rock-install:
	@mkdir -p build/rocks && sh tools/luarocks-offline.sh > $(ROCK_CONFIG)
	rm -rf $(ROCK_TREE)
	for rock in sora sora-emulator; do \
	  LUAROCKS_CONFIG=$(CURDIR)/$(ROCK_CONFIG) $(LUAROCKS) --lua-version $(LUA_VERSION) \
	    --tree $(CURDIR)/$(ROCK_TREE) install --only-server=$(CURDIR)/$(DIST) \
	    $(DIST)/$$rock-$(ROCK_VERSION).src.rock $(ROCK_ARGS) || exit 1; \
	done

# One busted run against an installed tree: $(1) profile, $(2) interpreter, $(3) Lua version.
# The specs' child interpreters and the emulator load from the tree too (SORA_TEST_*), and
# spec/rock_paths_spec.lua checks that every module resolves into it (SORA_ROCK_TREE).
rock_tree_lua = $(CURDIR)/build/rocks/$(3)/share/lua/$(3)
rock_tree_lib = $(CURDIR)/build/rocks/$(3)/lib/lua/$(3)
busted_on_tree = SORA_ROCK_TREE=$(CURDIR)/build/rocks/$(3) SORA_TEST_LUA=$(2) \
  SORA_TEST_CPATH="$(rock_tree_lib)/?.so" \
  SORA_TEST_LPATH="$(rock_tree_lua)/?.lua;$(rock_tree_lua)/?/init.lua" \
  $(2) $(BUSTED_SCRIPT) --ignore-lua --run=$(1) --cpath="$(rock_tree_lib)/?.so" \
  --lpath="$(rock_tree_lua)/?.lua;$(rock_tree_lua)/?/init.lua;spec/?.lua" $(BUSTED_ARGS)

# The five runs go TEST_ALL_JOBS at a time, each into build/test-all/<run>.log, printed whole
# and in order when all are done; one failing run does not stop the others. The suite mostly
# waits (emulator jobs, timeouts, delays: about 12% of one core per run here), so concurrent
# runs share the machine without slowing each other much; TEST_ALL_JOBS=1 runs one at a time.
TEST_ALL_JOBS ?= 5
TEST_ALL_RUNS = 5.4 luajit 5.1 5.3 5.2
.PHONY: test-all-prepare $(TEST_ALL_RUNS:%=test-all-run-%)

test-all: deps-all
	$(MAKE) test-all-prepare
	@echo "== test-all: $(TEST_ALL_RUNS), $(TEST_ALL_JOBS) at a time"
	@status=0; $(MAKE) -s -k -j$(TEST_ALL_JOBS) $(TEST_ALL_RUNS:%=test-all-run-%) || status=1; \
	for run in $(TEST_ALL_RUNS); do cat build/test-all/$$run.log; done; \
	for run in $(TEST_ALL_RUNS); do echo "== $$run: exit $$(cat build/test-all/$$run.status)"; done; \
	exit $$status

# Everything the runs share is built before they start: the rocks and their trees, the
# modules for 5.2 and 5.3, and what specs would otherwise build concurrently (build/host).
test-all-prepare:
	$(MAKE) rock
	$(MAKE) rock-install LUA_VERSION=5.4
	$(MAKE) rock-install LUA_VERSION=5.1
	$(MAKE) LUA_VERSION=5.1
	$(MAKE) LUA_VERSION=5.2
	$(MAKE) LUA_VERSION=5.3
	$(MAKE) LUA_VERSION=5.4 all host
	@rm -rf build/test-all && mkdir -p build/test-all

# One run: its log and its exit status; the target fails when the run does.
test_all_run = { echo "== $(1)"; $(2); } > build/test-all/$(3).log 2>&1; \
  status=$$?; echo $$status > build/test-all/$(3).status; echo "== $(3) done: exit $$status"; \
  exit $$status

test-all-run-5.4:
	@$(call test_all_run,Lua 5.4 (rock tree build/rocks/5.4),$(call busted_on_tree,default,lua5.4,5.4),5.4)
test-all-run-luajit:
	@$(call test_all_run,LuaJIT (rock tree build/rocks/5.1),$(call busted_on_tree,luajit,luajit,5.1),luajit)
test-all-run-5.1:
	@$(call test_all_run,Lua 5.1 (rock tree build/rocks/5.1),$(call busted_on_tree,5.1,lua5.1,5.1),5.1)
test-all-run-5.3:
	@$(call test_all_run,Lua 5.3 (build/5.3),$(BUSTED) --run=5.3 $(BUSTED_ARGS),5.3)
test-all-run-5.2:
	@$(call test_all_run,Lua 5.2 (build/5.2),$(BUSTED) --run=5.2 $(BUSTED_ARGS),5.2)
