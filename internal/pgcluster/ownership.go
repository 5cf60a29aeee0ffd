package pgcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Ownership. chatpay owns a cluster through the postmaster it started: its
// pid is what PostgreSQL's lock file (data/postmaster.pid) names, and chatpay
// records that pid, with its own, in Dir/chatpay-owner.json. A postmaster the
// record does not name was started by someone else and is never reused; one
// the record names whose chatpay has died is an orphan on its way out (the
// parent-death signal asked it to shut down), and a new start waits for it.

// predecessorWaitMax bounds the wait for a previous postmaster (or its last
// backends) to exit: a fast shutdown takes well under a second, but a
// checkpoint of a busy cluster may take longer.
const predecessorWaitMax = 60 * time.Second

// ErrForeignPostmaster says a PostgreSQL that chatpay did not start runs on
// the data folder.
var ErrForeignPostmaster = errors.New("a PostgreSQL that chatpay did not start is running on the data folder")

// ErrInUse says another chatpay process owns the cluster.
var ErrInUse = errors.New("the private cluster is in use by another chatpay process")

// lockFile is what PostgreSQL writes to postmaster.pid.
type lockFile struct {
	pid   int
	shmID int // the System V segment whose attach count tells whether backends remain; -1 if unknown
}

// readLockFile parses postmaster.pid: line 1 is the postmaster's pid, line
// 7 "<shm key> <shm id>".
func readLockFile(dataDir string) (lockFile, bool) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return lockFile{}, false
	}
	lines := strings.Split(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return lockFile{}, false
	}
	lf := lockFile{pid: pid, shmID: -1}
	if len(lines) >= 7 {
		if f := strings.Fields(lines[6]); len(f) == 2 {
			if id, err := strconv.Atoi(f[1]); err == nil {
				lf.shmID = id
			}
		}
	}
	return lf, true
}

// owner is the record of which chatpay started which postmaster.
type owner struct {
	PostmasterPID int `json:"postmaster_pid"`
	ChatpayPID    int `json:"chatpay_pid"`
}

func (c *Cluster) ownerPath() string { return filepath.Join(c.dir, "chatpay-owner.json") }

func (c *Cluster) writeOwner(postmasterPID int) error {
	raw, _ := json.Marshal(owner{PostmasterPID: postmasterPID, ChatpayPID: os.Getpid()})
	tmp := c.ownerPath() + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("record the cluster's owner: %w", err)
	}
	if err := os.Rename(tmp, c.ownerPath()); err != nil {
		return fmt.Errorf("record the cluster's owner: %w", err)
	}
	return nil
}

func (c *Cluster) readOwner() (owner, bool) {
	raw, err := os.ReadFile(c.ownerPath())
	if err != nil {
		return owner{}, false
	}
	var o owner
	if json.Unmarshal(raw, &o) != nil {
		return owner{}, false
	}
	return o, true
}

// awaitPredecessor returns once no earlier postmaster of this data folder
// and none of its backends is left, refusing one that chatpay did not start
// or that another live chatpay owns.
func (c *Cluster) awaitPredecessor(ctx context.Context) error {
	deadline := time.Now().Add(predecessorWaitMax)
	logged := false
	for {
		lock, ok := readLockFile(c.dataDir())
		if !ok {
			return nil
		}
		alive := processAlive(lock.pid)
		attached := lock.shmID >= 0 && shmAttached(lock.shmID)
		if !alive && !attached {
			return nil // a stale lock file; PostgreSQL replaces it
		}
		if alive {
			if err := c.checkOwnedOrphan(lock.pid); err != nil {
				return err
			}
		}
		if !logged {
			c.logger.Info("waiting for the previous PostgreSQL of this data folder to exit",
				"pid", lock.pid, "postmaster_running", alive, "backends_left", attached)
			logged = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the previous PostgreSQL of %s (pid %d) has not exited after %s", c.dataDir(), lock.pid, predecessorWaitMax)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// checkOwnedOrphan accepts a running postmaster only if chatpay started it
// and the chatpay that did is gone.
func (c *Cluster) checkOwnedOrphan(pid int) error {
	o, ok := c.readOwner()
	if !ok || o.PostmasterPID != pid {
		return fmt.Errorf("%w (postmaster pid %d, data %s); stop it (pg_ctl -D %s stop) or use it on purpose with --database-url",
			ErrForeignPostmaster, pid, c.dataDir(), c.dataDir())
	}
	if o.ChatpayPID != os.Getpid() && processAlive(o.ChatpayPID) {
		return fmt.Errorf("%w (chatpay pid %d, postmaster pid %d, data %s)", ErrInUse, o.ChatpayPID, pid, c.dataDir())
	}
	return nil
}

// processAlive reports a process that exists and is not a zombie.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// shmAttached reports whether processes still attach the System V shared
// memory segment id (PostgreSQL's interlock: backends of a killed postmaster
// keep it attached until they exit).
func shmAttached(id int) bool {
	raw, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return false
	}
	want := strconv.Itoa(id)
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		// key shmid perms size cpid lpid nattch ...
		f := strings.Fields(line)
		if len(f) >= 7 && f[1] == want {
			n, _ := strconv.Atoi(f[6])
			return n > 0
		}
	}
	return false
}

// Running returns the DSN of database on the cluster in dir when a live
// chatpay (a running serve) owns it, so that run-once commands on the same
// data folder use that cluster instead of starting a second postmaster,
// which would fail on PostgreSQL's lock file. ok is false when no live
// chatpay owns a running postmaster there.
func Running(dir, database string) (dsn string, chatpayPID int, ok bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", 0, false
	}
	if target, err := filepath.EvalSymlinks(abs); err == nil {
		abs = target // a cluster relocated at an earlier start
	}
	c := &Cluster{dir: abs, socketDir: socketDirOf(abs)}
	lock, found := readLockFile(c.dataDir())
	if !found || !processAlive(lock.pid) {
		return "", 0, false
	}
	o, found := c.readOwner()
	if !found || o.PostmasterPID != lock.pid || !processAlive(o.ChatpayPID) {
		return "", 0, false
	}
	if database == "" {
		database = "chatpay"
	}
	return c.DSN(database), o.ChatpayPID, true
}
