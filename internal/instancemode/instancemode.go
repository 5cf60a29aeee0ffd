// Package instancemode records once whether a database belongs to a live or a
// sandbox (test mode) instance, and refuses the other kind afterwards: a
// sandbox must never hand out test keys, move test clocks or send
// livemode=false events on a database that holds real money, and a live
// instance must never treat test data as real.
package instancemode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Mode is live or sandbox.
type Mode string

// The two modes.
const (
	Live    Mode = "live"
	Sandbox Mode = "sandbox"
)

// Of returns Sandbox when sandbox is true, else Live.
func Of(sandbox bool) Mode {
	if sandbox {
		return Sandbox
	}
	return Live
}

// ErrMismatch is returned when the database was recorded for the other mode.
var ErrMismatch = errors.New("instance mode mismatch")

// Claim records want as the database's mode if none is recorded yet, and
// fails with ErrMismatch if the other mode is. Two instances starting at once
// on an empty database race on one row; the loser sees the winner's mode.
func Claim(ctx context.Context, db sqlx.ExtContext, want Mode, now time.Time) error {
	if _, err := db.ExecContext(ctx, claimSQL, string(want), now.UTC()); err != nil {
		return fmt.Errorf("record instance mode: %w", err)
	}
	got, err := Read(ctx, db)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: this database belongs to a %s instance and a %s instance refuses it; use a separate database for the sandbox",
			ErrMismatch, got, want)
	}
	return nil
}

// Read returns the recorded mode; a database with none recorded (fresh, or
// not yet served) reads as Live, the safe default for run-once commands.
func Read(ctx context.Context, db sqlx.QueryerContext) (Mode, error) {
	var modes []string
	if err := sqlx.SelectContext(ctx, db, &modes, readSQL); err != nil {
		return "", fmt.Errorf("read instance mode: %w", err)
	}
	if len(modes) == 0 {
		return Live, nil
	}
	return Mode(modes[0]), nil
}

const (
	// claimSQL records $1 unless merchants exist already: a database with
	// data and no recorded mode was written by a live command (merchant
	// create before any serve), so it is live.
	claimSQL = `INSERT INTO instance_mode (mode, recorded_at)
		SELECT CASE WHEN EXISTS (SELECT 1 FROM merchants) THEN 'live' ELSE $1 END, $2
		ON CONFLICT (singleton) DO NOTHING`
	readSQL = `SELECT mode FROM instance_mode`
)
