# The two commands of the quick start:
#   make run   installs what is needed, builds, and runs the main job
#   make test  builds (normal and ASan+UBSan) and runs every test
# Other targets: build, asan, unit, integration, bench, clean.

BUILD      ?= build
ASAN_BUILD ?= build-asan
RUNTIME     = $(BUILD)/src/runtime/gureum-runtime
PYTEST      = /usr/bin/python3 -m pytest

.PHONY: all deps build asan run test unit integration bench clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dstatic_runtime=false

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# The main job: gureumd in the foreground with its built-in defaults (SQLite state in
# /var/lib/gureum, sockets in /run/gureum, the built-in busybox image); Ctrl-C stops it
# (instances keep running). Once ready it prints the command that launches an instance from
# another terminal (the CLI of this build tree, by its full path).
GUREUMD = $(BUILD)/src/daemon/gureumd
run: deps build
	@echo "make run: starting gureumd in the foreground (Ctrl-C stops it; instances keep running)"
	$(GUREUMD)

unit: build asan
	meson test -C $(BUILD) --print-errorlogs
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C $(ASAN_BUILD) --print-errorlogs

integration: build asan
	GUREUM_RUNTIME=$(CURDIR)/$(RUNTIME) $(PYTEST) -q tests/integration
	GUREUM_RUNTIME=$(CURDIR)/$(ASAN_BUILD)/src/runtime/gureum-runtime GUREUM_BUILD=$(CURDIR)/$(ASAN_BUILD) GUREUM_ASAN=1 \
		ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(PYTEST) -q -m "not slow" tests/integration

test: deps unit integration

bench: build
	bash bench/run.sh $(CURDIR)/$(RUNTIME)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
