# The two commands of the README: `make run` and `make test`. Both install what
# they need (PostgreSQL from Debian's packages) when it is missing.

GO        ?= go
BIN       := bin/chatpay
GOTESTFLAGS ?= -race -count=1 -timeout 30m

# Static checks at pinned versions, run through `go run` (the go command fetches
# and caches them like any module; nothing to install by hand). Both fail the
# build on any finding. deadcode runs with -test: a function reached only from
# tests counts as used (test fixtures such as payments.SignLaunch's helpers are
# real callers), while one reached from neither a main nor a test is dead and
# must go. deadcode itself exits 0 on findings, so its output decides.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE    := golang.org/x/tools/cmd/deadcode@v0.52.0

# Stripe's own mock server, a Go module, for the Stripe provider's tests
# (payments/stripe/stripemock runs it on loopback). Pinned: its OpenAPI
# document and fixtures are what the tests are checked against.
STRIPE_MOCK_VERSION ?= v0.203.0

.PHONY: run test build vet lint ensure-go ensure-postgres ensure-chromium ensure-stripe-mock ensure-a11y ensure-auto-failover ha-drill restore-drill clean

build: ensure-go
	$(GO) build -o $(BIN) ./cmd/chatpay

run: ensure-postgres build
	./$(BIN) serve --demo

test: ensure-go ensure-postgres ensure-chromium ensure-stripe-mock ensure-a11y
	$(GO) vet ./...
	$(MAKE) --no-print-directory lint
	$(GO) test $(GOTESTFLAGS) ./...

vet:
	$(GO) vet ./...

lint:
	$(GO) run $(STATICCHECK) ./...
	@dead="$$($(GO) run $(DEADCODE) -test ./...)" || exit 1; \
	if [ -n "$$dead" ]; then echo "$$dead"; echo "deadcode: the functions above are unreachable; delete them" >&2; exit 1; fi

# PostgreSQL server binaries (initdb, postgres, pgbench). chatpay runs its own
# private clusters, so Debian's default "main" cluster is not created.
ensure-postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		exit 0; \
	fi; \
	echo "PostgreSQL server binaries are missing; installing Debian's postgresql package..."; \
	SUDO=""; if [ "$$(id -u)" != 0 ]; then SUDO="sudo"; fi; \
	{ $$SUDO mkdir -p /etc/postgresql-common && \
	  echo "create_main_cluster = false" | $$SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null; } 2>/dev/null; \
	.ci/apt-install PostgreSQL postgresql postgresql-contrib

# pg_auto_failover (monitor + keepers) for the failover drill, built for the
# PostgreSQL major version installed: Debian's postgresql-<major>-auto-failover.
ensure-auto-failover: ensure-postgres
	@if command -v pg_autoctl >/dev/null 2>&1; then exit 0; fi; \
	MAJOR=$$(ls /usr/lib/postgresql | sort -n | tail -1); \
	echo "pg_auto_failover is missing; installing Debian's postgresql-$$MAJOR-auto-failover package for the HA drill..."; \
	.ci/apt-install pg_auto_failover postgresql-$$MAJOR-auto-failover

# The failover drill (docs/operations.md): a pg_auto_failover monitor, a
# primary and a synchronous standby on loopback ports, chatpay serve on a
# multi-host URL, a flash sale, kill -9 of the primary's postmaster. Bounded
# in time; removes every process and folder it started. Not part of make test.
HA_DRILL_RUNS ?= 1
ha-drill: ensure-go ensure-auto-failover
	CHATPAY_HA_DRILL=1 $(GO) test -count=$(HA_DRILL_RUNS) -timeout 15m -run '^TestHADrill$$' -v ./cmd/chatpay/

# The restore drill (docs/operations.md): WAL archiving, pg_basebackup in the
# middle of a flash sale, the database lost, a restore from the backup and the
# archive alone with the same orders and a clean verify. Not part of make test.
restore-drill: ensure-go ensure-postgres
	CHATPAY_RESTORE_DRILL=1 $(GO) test -count=1 -timeout 10m -run '^TestRestoreDrill$$' -v ./cmd/chatpay/

# Debian's Chromium for the browser tests (skipped when no browser test exists yet).
ensure-chromium:
	@if ! grep -rqs --include='*_test.go' 'chromedp' . ; then exit 0; fi; \
	if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi; \
	echo "Chromium is missing; installing Debian's chromium package for the browser tests..."; \
	.ci/apt-install Chromium chromium

# Go: go.mod asks for a newer Go than Debian ships (1.19); any Go from 1.21 on
# fetches the toolchain go.mod names by itself, an older one cannot.
ensure-go:
	@v="$$($(GO) env GOVERSION 2>/dev/null | sed 's/^go//')"; \
	major="$${v%%.*}"; rest="$${v#*.}"; minor="$${rest%%.*}"; \
	if [ -z "$$v" ] || [ "$$major" -lt 1 ] || { [ "$$major" = 1 ] && [ "$$minor" -lt 21 ]; }; then \
		echo "chatpay needs Go 1.21 or newer to start (it then fetches the Go release go.mod names, $$(sed -n 's/^go //p' go.mod)); found: $${v:-no go command}." >&2; \
		echo "Install Go from https://go.dev/dl/ (Debian 12's golang package is 1.19, too old)." >&2; \
		exit 1; \
	fi

# Installs stripe-mock into bin/ with the Go toolchain (GOBIN), unless it is
# there already.
ensure-stripe-mock: ensure-go
	@if [ -x bin/stripe-mock ]; then exit 0; fi; \
	echo "stripe-mock is missing; installing github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION) into bin/..."; \
	GOBIN="$(CURDIR)/bin" $(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION) || { \
		echo "Installing stripe-mock failed. Install it yourself: GOBIN=$(CURDIR)/bin go install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)" >&2; exit 1; }

# The browser tests' accessibility checkers (axe-core, Lighthouse), pinned by
# .ci/a11y/package-lock.json; Node.js and npm from Debian's packages if missing.
# Reinstalled when the lock file is newer than the installed tree.
ensure-a11y:
	@if [ -f .ci/a11y/node_modules/.package-lock.json ] && [ .ci/a11y/node_modules/.package-lock.json -nt .ci/a11y/package-lock.json ]; then exit 0; fi; \
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		echo "Node.js or npm is missing; installing Debian's nodejs and npm packages for the accessibility checks..."; \
		.ci/apt-install "Node.js (for the accessibility checks)" nodejs npm || exit 1; \
	fi; \
	echo "Installing the accessibility checkers (axe-core, Lighthouse) into .ci/a11y/node_modules..."; \
	npm ci --prefix .ci/a11y --no-audit --no-fund --loglevel=error || { \
		echo "Installing the accessibility checkers failed. Install them yourself: npm ci --prefix .ci/a11y" >&2; exit 1; }

clean:
	rm -rf bin .ci/a11y/node_modules
