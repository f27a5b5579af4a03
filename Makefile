# chatd: one plain Makefile (see README "Layout").
CC       ?= cc
VERSION  := 0.1.0
PKGS     := libpq hiredis json-c libjwt libargon2 libwebsockets libuv
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wvla -Wformat=2
CFLAGS   := -std=gnu11 -O2 -g $(WARN) -MMD -MP -D_GNU_SOURCE -DCHATD_VERSION='"$(VERSION)"' \
            -Ishared $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lfcgi -lcurl -lm
ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
BUILD    := build/san
else
BUILD    := build/plain
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

export VAR_DIR HTTP_PORT

all: bin/chat-fcgi bin/chat-wsd $(UNIT_BIN)

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

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

bootstrap:
	scripts/bootstrap

run: bootstrap all
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

test: bootstrap all
	scripts/test-run

bench: bootstrap all
	bench/run

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem -Ishared fcgi wsd shared bench

format-check:
	clang-format --dry-run --Werror shared/*.[ch] fcgi/*.[ch] wsd/*.[ch] bench/*.[ch]

clean:
	rm -rf build bin

.PHONY: all bootstrap run up down migrate seed-users reset-db test bench lint format-check clean
-include $(shell find build -name '*.d' 2>/dev/null)
