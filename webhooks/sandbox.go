package webhooks

import (
	"time"

	"github.com/jmoiron/sqlx"
)

// NewSandboxService is NewService for a sandbox (test mode) instance: every
// event it writes, test pings included, carries livemode false.
func NewSandboxService(db *sqlx.DB, policy URLPolicy, now func() time.Time) *Service {
	s := NewService(db, policy, now)
	s.test = true
	return s
}
