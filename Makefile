# chatd: one plain Makefile (see README "Layout").
CC       ?= cc
VERSION  := 0.1.0
PKGS     := libpq hiredis json-c libjwt libargon2 libwebsockets libuv libcrypto
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wvla -Wformat=2
CFLAGS   := -std=gnu11 -O2 -g $(WARN) -MMD -MP -D_GNU_SOURCE -DCHATD_VERSION='"$(VERSION)"' \
            -Ishared $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libmagic and libcrypto (SHA-256) for fcgi's uploads; wsd links them too (one LDLIBS).
LDLIBS   := $(shell pkg-config --libs $(PKGS) libcrypto 2>/dev/null) -lfcgi -lcurl -lmagic -lm
ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
BUILD    := build/san
else
BUILD    := build/plain
endif
# FUZZ=1 (set by t/fuzz/run, i.e. `make fuzz`): clang objects for libFuzzer in build/fuzz/obj.
ifeq ($(FUZZ),1)
CC       := $(or $(FUZZ_CC),clang)
CFLAGS   += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
BUILD    := build/fuzz/obj
endif

SHARED_SRC := $(wildcard shared/*.c)
FCGI_SRC   := $(wildcard fcgi/*.c)
WSD_SRC    := $(wildcard wsd/*.c)
UNIT_SRC   := $(wildcard t/unit/*.c)
SHARED_OBJ := $(SHARED_SRC:%.c=$(BUILD)/%.o)
FCGI_OBJ   := $(FCGI_SRC:%.c=$(BUILD)/%.o)
WSD_OBJ    := $(WSD_SRC:%.c=$(BUILD)/%.o)
# fcgi without its main(): unit tests link it to reach the router and request code.
FCGI_LIB_OBJ := $(filter-out %/main.o,$(FCGI_OBJ))
UNIT_BIN   := $(UNIT_SRC:t/unit/%.c=build/t/unit-%.t)

# Fuzz harnesses (t/fuzz/<name>.c, see t/fuzz/fuzz.h). Each links the product objects it
# does not #include itself (it includes a .c to reach its static functions).
FUZZ_NAMES := json_body route_match jwt ws_frame ws_handshake multipart
FUZZ_BIN   := $(FUZZ_NAMES:%=build/t/fuzz-%.t)
WSD_LIB_OBJ := $(filter-out %/main.o,$(WSD_OBJ))
FUZZ_OBJ_json_body    := $(filter-out %/route.o %/h_groups.o,$(FCGI_LIB_OBJ)) $(SHARED_OBJ)
FUZZ_OBJ_route_match  := $(filter-out %/route.o,$(FCGI_LIB_OBJ)) $(SHARED_OBJ)
FUZZ_OBJ_jwt          := $(SHARED_OBJ)
FUZZ_OBJ_multipart    := $(BUILD)/fcgi/mpart.o
FUZZ_OBJ_ws_frame     := $(filter-out $(addprefix %/,ws_proto.o ws_conn.o ws_cmd.o ws_send.o \
                           ws_sync.o),$(WSD_LIB_OBJ)) $(SHARED_OBJ)
FUZZ_OBJ_ws_handshake := $(filter-out %/ws_auth.o,$(WSD_LIB_OBJ)) $(SHARED_OBJ)
FUZZ_CFLAGS := -It/lib -It/fuzz -Ifcgi -Iwsd
FUZZ_EXE   := $(FUZZ_NAMES:%=build/fuzz/%)

export VAR_DIR HTTP_PORT

all: bin/chat-fcgi bin/chat-wsd $(UNIT_BIN) $(FUZZ_BIN)

# bin/ always holds the flavour built last; a stamp forces a relink when it changes.
$(BUILD)/.stamp:
	@mkdir -p $(BUILD) && rm -f build/*/.stamp && touch $@

bin/chat-fcgi: $(FCGI_OBJ) $(SHARED_OBJ) $(BUILD)/.stamp
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $(FCGI_OBJ) $(SHARED_OBJ) $(LDLIBS)

bin/chat-wsd: $(WSD_OBJ) $(SHARED_OBJ) $(BUILD)/.stamp
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $(WSD_OBJ) $(SHARED_OBJ) $(LDLIBS)

build/t/unit-%.t: t/unit/%.c $(FCGI_LIB_OBJ) $(SHARED_OBJ) $(BUILD)/.stamp
	@mkdir -p build/t
	$(CC) $(CFLAGS) -It/lib -Ifcgi $(LDFLAGS) -o $@ $< $(FCGI_LIB_OBJ) $(SHARED_OBJ) $(LDLIBS)

# A harness with t/fuzz/replay.c's main(): replays its corpus as TAP (make test).
.SECONDARY: $(BUILD)/t/fuzz/replay.o
.SECONDEXPANSION:
build/t/fuzz-%.t: t/fuzz/%.c $(BUILD)/t/fuzz/replay.o $$(FUZZ_OBJ_$$*) $(BUILD)/.stamp
	@mkdir -p build/t
	$(CC) $(CFLAGS) $(FUZZ_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/t/fuzz/replay.o $(FUZZ_OBJ_$*) $(LDLIBS)

# The same harness linked with libFuzzer (make FUZZ=1 build/fuzz/<name>; t/fuzz/run does it).
$(FUZZ_EXE): build/fuzz/%: t/fuzz/%.c $$(FUZZ_OBJ_$$*)
	@mkdir -p build/fuzz
	$(CC) $(CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJ_$*) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

bootstrap:
	scripts/bootstrap

# run, test and bench build in a second make, started after bootstrap: this make has
# evaluated `pkg-config` while reading this file, before bootstrap installed the -dev
# packages it asks about (t/0020-make-bootstrap.t).
run: bootstrap
	$(MAKE) all
	scripts/stack run

up: all
	scripts/stack up

down:
	scripts/stack down

migrate:
	scripts/migrate

seed-users:
	scripts/seed_users

reset-db:
	scripts/reset_database

test: bootstrap
	$(MAKE) all
	scripts/test-run

bench: bootstrap
	$(MAKE) all
	bench/run

# make install PREFIX=/usr/local DESTDIR=: programs, migrations, commands, nginx include
# templates, systemd units, logrotate and the example env file (scripts/install,
# README "Install behind your nginx"). Always the plain build: a SANITIZE=1 bin/ is rebuilt first.
PREFIX        ?= /usr/local
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
RUNSTATEDIR   ?= /run
install: all
	PREFIX=$(PREFIX) SYSCONFDIR=$(SYSCONFDIR) LOCALSTATEDIR=$(LOCALSTATEDIR) \
	  RUNSTATEDIR=$(RUNSTATEDIR) DESTDIR=$(DESTDIR) scripts/install

# Each harness under libFuzzer for FUZZ_SECONDS (30) when clang has it; else says so, exits 0.
fuzz:
	t/fuzz/run $(FUZZ_NAMES)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem -Ishared fcgi wsd shared bench
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem -Ishared -Ifcgi -Iwsd -It/fuzz t/fuzz

# Every shell script (by its #! line; scripts/ also holds Perl).
shellcheck:
	shellcheck $$(grep -l '^#!.*\<\(bash\|sh\)\>' scripts/* .ci/run t/fuzz/run bench/run)

format-check:
	clang-format --dry-run --Werror shared/*.[ch] fcgi/*.[ch] wsd/*.[ch] bench/*.[ch] \
	  t/fuzz/*.[ch]

clean:
	rm -rf build bin

.PHONY: all bootstrap run up down migrate seed-users reset-db test bench fuzz lint shellcheck \
        format-check clean install
-include $(shell find build -name '*.d' 2>/dev/null)

# The OpenAPI document and the assets of /docs and /redoc, served by nginx from build/www
# (README "API documentation (OpenAPI)"). docs-vendor needs the npm registry only the first time.
WWW := build/www/openapi.json build/www/vendor/.stamp
all: $(WWW)
build/www/openapi.json: scripts/openapi-build nginx/openapi/openapi.yaml \
                        $(wildcard nginx/openapi/paths/*.yaml)
	scripts/openapi-build $@
build/www/vendor/.stamp: scripts/docs-vendor nginx/docs/vendor.lock
	scripts/docs-vendor build/www/vendor
	@touch $@
