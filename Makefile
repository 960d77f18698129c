# provisioning-agent — `make run` builds everything and serves conf/agent.yaml;
# `make test` installs what is missing, starts the throwaway servers and runs every test.
SWIFT ?= swift
CC ?= cc
CONFIG ?= conf/agent.yaml
BUILD := .build/debug
VENV := .venv
PLUGINS := plugins

.PHONY: all build plugins plugins-alt plugins-test plugins-release examples run test test-swift test-e2e deps python-deps clean bench bench-build bench-base bench-compare fuzz deb

all: build plugins

build:
	$(SWIFT) build --product provisioning-agent

# The C reference connector is built with the system C compiler: no Swift runtime inside,
# so the agent may unload it.
$(PLUGINS)/memory.so: Plugins/MemoryConnector/memory.c include/scim_connector.h
	@mkdir -p $(PLUGINS)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden -Iinclude $< -o $@.tmp -lpthread
	mv $@.tmp $@

plugins: $(PLUGINS)/memory.so
	$(SWIFT) build --product FlatFileConnector
	@mkdir -p $(PLUGINS)
	cp $(BUILD)/libFlatFileConnector.so $(PLUGINS)/flatfile.so.tmp && mv $(PLUGINS)/flatfile.so.tmp $(PLUGINS)/flatfile.so
	@# The database and directory connectors need their client libraries (make deps installs them).
	@if pkg-config --exists libmariadb; then \
		$(SWIFT) build --product MySQLConnector && \
		cp $(BUILD)/libMySQLConnector.so $(PLUGINS)/mysql.so.tmp && mv $(PLUGINS)/mysql.so.tmp $(PLUGINS)/mysql.so; \
	else echo "libmariadb-dev not installed: skipping the mysql connector (make deps installs it)"; fi
	@if pkg-config --exists ldap; then \
		$(SWIFT) build --product LDAPConnector && \
		cp $(BUILD)/libLDAPConnector.so $(PLUGINS)/ldap.so.tmp && mv $(PLUGINS)/ldap.so.tmp $(PLUGINS)/ldap.so; \
	else echo "libldap-dev not installed: skipping the ldap connector (make deps installs it)"; fi
	@if pkg-config --exists libffi; then \
		$(SWIFT) build --product NativeConnector && \
		cp $(BUILD)/libNativeConnector.so $(PLUGINS)/native.so.tmp && mv $(PLUGINS)/native.so.tmp $(PLUGINS)/native.so; \
	else echo "libffi-dev not installed: skipping the native connector (make deps installs it)"; fi
	@# The agent refuses plugins others may write (README, "Plugin trust"), whatever the umask.
	chmod -R go-w $(PLUGINS)

# A second build of each plugin, reporting another version, for the hot-reload tests.
plugins-alt: Plugins/MemoryConnector/memory.c include/scim_connector.h
	@mkdir -p plugins-alt
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden -Iinclude \
		-DMEMORY_CONNECTOR_VERSION='"1.0.0+alternate"' Plugins/MemoryConnector/memory.c -o plugins-alt/memory.so -lpthread
	$(SWIFT) build --product FlatFileConnector --scratch-path .build-alt -Xswiftc -DALTERNATE_BUILD
	cp .build-alt/debug/libFlatFileConnector.so plugins-alt/flatfile.so
	chmod -R go-w plugins-alt

# The faulty connector of the isolation tests, one build per fault (Tests/Plugins/faulty.c).
FAULTS := none segv abort hang oom
plugins-test: $(foreach f,$(FAULTS),plugins-test/faulty-$(f).so)
plugins-test/faulty-%.so: Tests/Plugins/faulty.c include/scim_connector.h
	@mkdir -p plugins-test
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden -Iinclude \
		-DFAULT=FAULT_$$(echo $* | tr a-z A-Z) $< -o $@
	chmod go-w $@ plugins-test

# The worked example of the native connector: a legacy-style C library (Examples/legacy-hr).
examples: Examples/legacy-hr/libhrapi.so
Examples/legacy-hr/libhrapi.so: Examples/legacy-hr/hrapi.c Examples/legacy-hr/hrapi.h
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -fPIC -shared $< -o $@.tmp
	mv $@.tmp $@
	chmod go-w $@

run: build plugins
	$(BUILD)/provisioning-agent serve --config $(CONFIG)

deps:
	@bash scripts/install-deps.sh

python-deps: deps $(VENV)/.installed

$(VENV)/.installed: Tests/e2e/requirements.txt
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r Tests/e2e/requirements.txt
	@touch $@

test: python-deps build plugins plugins-alt plugins-test examples
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	bash scripts/fuzz.sh $(TEST_FUZZ_SECONDS)
	$(VENV)/bin/python -m pytest -q --durations=15 Tests/e2e

# libFuzzer over the parsers (JSON, filters, PATCH, SCIM 1.1, flatfile CSV, configuration),
# FUZZ_SECONDS each; `make test` runs each for TEST_FUZZ_SECONDS. See scripts/fuzz.sh.
FUZZ_SECONDS ?= 60
TEST_FUZZ_SECONDS ?= 10
fuzz: build
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# Release builds of the agent and the plugins, the peers, then Benchmarks/bench.py and
# Benchmarks/compare_bench.py (see BENCHMARKS.md). `make bench-compare` runs only the
# comparison of every target and scenario against BENCH_BASE, whose agent and plugins are
# built under .build-base.
BENCH_BASE ?= 08b2eb9
bench: bench-build bench-base
	$(VENV)/bin/python Benchmarks/bench.py
	BENCH_BASE=$(BENCH_BASE) $(VENV)/bin/python Benchmarks/compare_bench.py

bench-compare: bench-build bench-base
	BENCH_BASE=$(BENCH_BASE) $(VENV)/bin/python Benchmarks/compare_bench.py

bench-base:
	@if [ "$$(cat .build-base/rev 2>/dev/null)" != "$(BENCH_BASE)" ] || [ ! -x .build-base/release/provisioning-agent ]; then \
		rm -rf .build-base/src .build-base/release .build-base/plugins .build-base/rev && mkdir -p .build-base/src && \
		git archive $(BENCH_BASE) | tar -x -C .build-base/src; fi
	cd .build-base/src && for p in provisioning-agent FlatFileConnector MySQLConnector LDAPConnector; do $(SWIFT) build -c release --product $$p || exit 1; done
	@mkdir -p .build-base/release .build-base/plugins
	cp .build-base/src/.build/release/provisioning-agent .build-base/release/
	cp .build-base/src/.build/release/libFlatFileConnector.so .build-base/plugins/flatfile.so
	cp .build-base/src/.build/release/libMySQLConnector.so .build-base/plugins/mysql.so
	cp .build-base/src/.build/release/libLDAPConnector.so .build-base/plugins/ldap.so
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -fPIC -shared -fvisibility=hidden -I.build-base/src/include .build-base/src/Plugins/MemoryConnector/memory.c -o .build-base/plugins/memory.so -lpthread
	@echo $(BENCH_BASE) > .build-base/rev

bench-build: python-deps plugins-alt plugins-release examples
	$(SWIFT) build -c release --product provisioning-agent
	$(SWIFT) build -c release --product bare-hummingbird
	$(SWIFT) build -c release --product agent-micro
	@mkdir -p plugins-alt-release
	$(SWIFT) build -c release --product FlatFileConnector --scratch-path .build-alt -Xswiftc -DALTERNATE_BUILD
	cp .build-alt/release/libFlatFileConnector.so plugins-alt-release/flatfile.so
	$(VENV)/bin/pip install -q scim2-server uvicorn httptools

# Release builds of the shipped plugins (for the benchmarks and the package).
plugins-release: deps
	$(SWIFT) build -c release --product FlatFileConnector
	$(SWIFT) build -c release --product MySQLConnector
	$(SWIFT) build -c release --product LDAPConnector
	$(SWIFT) build -c release --product NativeConnector
	@mkdir -p plugins-release
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -fPIC -shared -fvisibility=hidden -Iinclude Plugins/MemoryConnector/memory.c -o plugins-release/memory.so -lpthread
	cp .build/release/libFlatFileConnector.so plugins-release/flatfile.so
	cp .build/release/libMySQLConnector.so plugins-release/mysql.so
	cp .build/release/libLDAPConnector.so plugins-release/ldap.so
	cp .build/release/libNativeConnector.so plugins-release/native.so
	chmod -R go-w plugins-release

# The Debian package, dist/provisioning-agent_<version>_amd64.deb (README, "Install as a
# service"), from release builds. The e2e test packages the debug build the same way.
deb: plugins-release
	$(SWIFT) build -c release --product provisioning-agent
	bash scripts/make-deb.sh .build/release plugins-release

clean:
	rm -rf .build .build-alt .build-fuzz .build-base $(PLUGINS) plugins-alt plugins-release plugins-alt-release .venv dist
