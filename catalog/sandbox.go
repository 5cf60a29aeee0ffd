package catalog

import (
	"time"

	"github.com/jmoiron/sqlx"
)

// testKeyPrefix starts the API keys of a sandbox instance (sk_test_…), so
// that a key tells by itself which kind of instance it belongs to.
const testKeyPrefix = apiKeyPrefix + "_test"

// NewSandboxService is NewService for a sandbox (test mode) instance: the
// keys it creates are sk_test_….
func NewSandboxService(db *sqlx.DB, now func() time.Time) *Service {
	s := NewService(db, now)
	s.keyPrefix = testKeyPrefix
	return s
}
