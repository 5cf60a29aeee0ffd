# The two commands of the README: `make run` and `make test`. Both install what
# they need (PostgreSQL from Debian's packages) when it is missing.

GO        ?= go
BIN       := bin/chatpay
GOTESTFLAGS ?= -race -count=1 -timeout 30m

.PHONY: run test build vet ensure-postgres ensure-chromium ensure-auto-failover ha-drill restore-drill clean

build:
	$(GO) build -o $(BIN) ./cmd/chatpay

run: ensure-postgres build
	./$(BIN) serve --demo

test: ensure-postgres ensure-chromium
	$(GO) vet ./...
	$(GO) test $(GOTESTFLAGS) ./...

vet:
	$(GO) vet ./...

# PostgreSQL server binaries (initdb, postgres, pgbench). chatpay runs its own
# private clusters, so Debian's default "main" cluster is not created.
ensure-postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		exit 0; \
	fi; \
	echo "PostgreSQL server binaries are missing; installing Debian's postgresql package..."; \
	SUDO=""; if [ "$$(id -u)" != 0 ]; then SUDO="sudo"; fi; \
	if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$$SUDO" ] && ! command -v sudo >/dev/null 2>&1; }; then \
		echo "Cannot install PostgreSQL here. Install the server binaries yourself (Debian/Ubuntu: sudo apt-get install postgresql), or set DATABASE_URL for make run." >&2; \
		exit 1; \
	fi; \
	$$SUDO mkdir -p /etc/postgresql-common && \
	echo "create_main_cluster = false" | $$SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null && \
	$$SUDO apt-get update && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends \
		-o Dpkg::Options::=--force-confold postgresql postgresql-contrib || { \
		echo "Installing PostgreSQL failed. Install it yourself: sudo apt-get install postgresql" >&2; exit 1; }

# pg_auto_failover (monitor + keepers) for the failover drill, built for the
# PostgreSQL major version installed: Debian's postgresql-<major>-auto-failover.
ensure-auto-failover: ensure-postgres
	@if command -v pg_autoctl >/dev/null 2>&1; then exit 0; fi; \
	MAJOR=$$(ls /usr/lib/postgresql | sort -n | tail -1); \
	echo "pg_auto_failover is missing; installing Debian's postgresql-$$MAJOR-auto-failover package for the HA drill..."; \
	SUDO=""; if [ "$$(id -u)" != 0 ]; then SUDO="sudo"; fi; \
	if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$$SUDO" ] && ! command -v sudo >/dev/null 2>&1; }; then \
		echo "Cannot install pg_auto_failover here. Install it yourself: sudo apt-get install postgresql-$$MAJOR-auto-failover" >&2; \
		exit 1; \
	fi; \
	$$SUDO apt-get update && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends \
		-o Dpkg::Options::=--force-confold postgresql-$$MAJOR-auto-failover || { \
		echo "Installing pg_auto_failover failed. Install it yourself: sudo apt-get install postgresql-$$MAJOR-auto-failover" >&2; exit 1; }

# The failover drill (docs/operations.md): a pg_auto_failover monitor, a
# primary and a synchronous standby on loopback ports, chatpay serve on a
# multi-host URL, a flash sale, kill -9 of the primary's postmaster. Bounded
# in time; removes every process and folder it started. Not part of make test.
HA_DRILL_RUNS ?= 1
ha-drill: ensure-auto-failover
	CHATPAY_HA_DRILL=1 $(GO) test -count=$(HA_DRILL_RUNS) -timeout 15m -run '^TestHADrill$$' -v ./cmd/chatpay/

# The restore drill (docs/operations.md): WAL archiving, pg_basebackup in the
# middle of a flash sale, the database lost, a restore from the backup and the
# archive alone with the same orders and a clean verify. Not part of make test.
restore-drill: ensure-postgres
	CHATPAY_RESTORE_DRILL=1 $(GO) test -count=1 -timeout 10m -run '^TestRestoreDrill$$' -v ./cmd/chatpay/

# Debian's Chromium for the browser tests (skipped when no browser test exists yet).
ensure-chromium:
	@if ! grep -rqs --include='*_test.go' 'chromedp' . ; then exit 0; fi; \
	if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi; \
	echo "Chromium is missing; installing Debian's chromium package for the browser tests..."; \
	SUDO=""; if [ "$$(id -u)" != 0 ]; then SUDO="sudo"; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "Cannot install Chromium here; install it (sudo apt-get install chromium) to run the browser tests." >&2; exit 1; \
	fi; \
	$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends chromium || { \
		echo "Installing Chromium failed. Install it yourself: sudo apt-get install chromium" >&2; exit 1; }

clean:
	rm -rf bin
