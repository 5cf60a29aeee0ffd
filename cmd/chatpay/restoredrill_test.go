package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatpay/chatpay/internal/pgcluster"
)

// The restore drill (make restore-drill; docs/operations.md, section 4): a
// database with WAL archiving takes a base backup with pg_basebackup in the
// middle of a flash sale; after the sale the database is lost; a new one is
// restored from the base backup and the WAL archive alone, and must hold
// exactly the orders the old one had, with `chatpay verify` clean.
func TestRestoreDrill(t *testing.T) {
	if os.Getenv("CHATPAY_RESTORE_DRILL") != "1" {
		t.Skip("the restore drill runs with make restore-drill")
	}
	began := time.Now()
	e := &crashEnv{t: t, dir: dataDir(t)}
	archive := filepath.Join(e.dir, "wal-archive")
	backup := filepath.Join(e.dir, "restored", "data")
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = postgresCredential(t) // the archive and the backup belong to the server's user
	}
	for _, dir := range []string{archive, filepath.Dir(backup)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if cred != nil {
			if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	source, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(e.dir, "pg"), Settings: map[string]string{
		"archive_mode":    "on",
		"archive_command": fmt.Sprintf("test ! -f %s/%%f && cp %%p %s/%%f", archive, archive),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = source.Stop(context.Background()) })
	e.cluster, e.dsn = source, source.URL()
	e.client = newCrashClient(t)
	e.addr = freeAddr(t)
	e.base = "http://" + e.addr
	e.serve = e.startServe()
	e.seed()

	binDir, err := pgcluster.FindBinaries("")
	if err != nil {
		t.Fatal(err)
	}
	var backupTook time.Duration
	l := runCrashLoad(e, func(l *crashLoad) {
		l.crashAt = time.Now()
		host := strings.Fields(strings.TrimPrefix(source.URL(), "host="))[0]
		cmd := exec.Command(filepath.Join(binDir, "pg_basebackup"), "-h", host, "-p", "5432", "-U", "chatpay",
			"-D", backup, "--checkpoint=fast", "--wal-method=none", "--no-sync")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("pg_basebackup: %v\n%s", err, out)
		}
		backupTook = time.Since(l.crashAt)
		t.Logf("base backup taken mid-sale (%d paid) in %s", l.paid.Load(), backupTook.Round(time.Millisecond))
	})
	l.checkOutcomes()
	db := e.openDB()
	var before []string
	if err := db.Select(&before, `SELECT id FROM orders ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	// The last segment is archived before the database is "lost".
	var segment string
	if err := db.Get(&segment, `SELECT pg_walfile_name(pg_switch_wal())`); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool {
		var last string
		return db.Get(&last, `SELECT COALESCE(last_archived_wal, '') FROM pg_stat_archiver`) == nil && last >= segment
	}, 30*time.Second) {
		t.Fatalf("WAL segment %s was not archived within 30 s", segment)
	}
	_ = db.Close()
	e.serve.stop(t)
	if err := source.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.dir, "pg")); err != nil {
		t.Fatal(err)
	}

	// Restore: the base backup, recovery.signal, and the archive as the only WAL.
	restoreStart := time.Now()
	conf := fmt.Sprintf("\nrestore_command = 'cp %s/%%f %%p'\nrecovery_target_action = 'promote'\n", archive)
	appendFile(t, filepath.Join(backup, "postgresql.auto.conf"), conf)
	appendFile(t, filepath.Join(backup, "recovery.signal"), "")
	if cred != nil {
		if err := os.Chown(filepath.Join(backup, "recovery.signal"), int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	restored, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Dir(backup)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restored.Stop(context.Background()) })
	e.cluster, e.dsn = restored, restored.URL()
	db = e.openDB()
	defer db.Close()
	if !waitFor(func() bool {
		var recovering bool
		return db.Get(&recovering, `SELECT pg_is_in_recovery()`) == nil && !recovering
	}, time.Minute) {
		t.Fatal("the restored database did not finish recovery within a minute")
	}
	restoreTook := time.Since(restoreStart)
	var after []string
	if err := db.Select(&after, `SELECT id FROM orders ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Errorf("the restored database has %d orders, the lost one had %d", len(after), len(before))
	}
	e.assertVerifyExitsZero()
	t.Logf("RESTORE DRILL: %d of %d orders back (%d answered paid after the base backup began, replayed from the WAL archive); base backup %s, restore to a promoted database %s; total %s",
		len(after), len(before), int(l.paid.Load())-countBefore(l), backupTook.Round(time.Millisecond),
		restoreTook.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// countBefore is how many purchases were answered paid before the mark.
func countBefore(l *crashLoad) int {
	n := 0
	for _, p := range l.purchases {
		if p.OrderID != "" && p.Confirm.outcome().Got.Before(l.crashAt) {
			n++
		}
	}
	return n
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
