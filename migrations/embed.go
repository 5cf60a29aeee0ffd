// Package migrations holds chatpay's schema as plain SQL files, embedded in the
// binary so that `chatpay migrate` and `chatpay serve` need nothing on disk.
//
// Versions only grow: goose refuses to apply a version below one a database
// already has, so new work takes numbers above the highest (parallel
// branches each take their own block above it). Past ranges: 1–9
// foundation, 10–19 ledger, 20–29 catalog, 30–39 webhooks, 40–49 qr, 50–70
// payments and dashboard; then 80 webhook secrets, 85 providers, 90
// messengers, 95 idempotency refusal kinds, 100–104 sandbox and test clocks.
package migrations

import "embed"

// FS holds every migration, named <version>_<what>.sql in goose's format.
//
//go:embed *.sql
var FS embed.FS
