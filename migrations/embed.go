// Package migrations holds chatpay's schema as plain SQL files, embedded in the
// binary so that `chatpay migrate` and `chatpay serve` need nothing on disk.
//
// Version ranges keep parallel work from colliding: 1–9 foundation, 10–19
// ledger, 20–29 catalog, 30–39 webhooks, 40–49 qr, 50–69 payments, 100–104
// sandbox mode and test clocks.
package migrations

import "embed"

// FS holds every migration, named <version>_<what>.sql in goose's format.
//
//go:embed *.sql
var FS embed.FS
