// Package pgcluster runs a private PostgreSQL cluster as a child process of
// chatpay: the embedded default database of `chatpay serve` and the one
// cluster each test binary starts for itself.
//
// The cluster lives in a folder of its own, listens only on a Unix socket
// (never on a network port), and is started with a parent-death signal so
// that it cannot outlive the process that started it, even after a crash.
// PostgreSQL refuses to run as root, so when chatpay runs as root the cluster
// runs as the unprivileged system user "postgres".
package pgcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/lib/pq" // database/sql driver "postgres"
)

const (
	// superuser is the role initdb creates; the socket is the only way in.
	superuser = "chatpay"
	// socketPort names the socket file (.s.PGSQL.<port>); no TCP port is opened.
	socketPort = 5432
	// socketPathMax is the kernel's limit for a Unix socket path (sun_path).
	socketPathMax = 107
	// unprivilegedUser runs the cluster when chatpay runs as root.
	unprivilegedUser = "postgres"
	// relocationRoot holds clusters whose data folder the unprivileged user cannot enter.
	relocationRoot = "/var/lib/chatpay"

	startTimeout = 60 * time.Second
	stopTimeout  = 20 * time.Second
)

// ErrNoBinaries says PostgreSQL is not installed; its text tells how to fix it.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin; " +
	"install them with: sudo apt-get update && sudo apt-get install -y postgresql " +
	"(or set DATABASE_URL to use an existing server)")

// Options configure a private cluster.
type Options struct {
	// Dir holds the cluster: Dir/data is PGDATA, Dir/run the socket, Dir/postgres.log its log.
	Dir string
	// Settings are passed as -c name=value at every start (tests turn fsync off).
	Settings map[string]string
	// Database is created at start if missing; empty means "chatpay".
	Database string
	Logger   *slog.Logger
	// AllowRelocation keeps the cluster under /var/lib/chatpay (linked from
	// Dir) when chatpay runs as root and the postgres user cannot enter Dir.
	// Without it Start refuses and names the permission to fix: backups and
	// disk alarms watch the folder the operator chose.
	AllowRelocation bool
}

// Cluster is a running private PostgreSQL.
type Cluster struct {
	dir       string
	socketDir string
	database  string
	binDir    string
	settings  map[string]string
	cred      *syscall.Credential
	logger    *slog.Logger

	allowRelocation bool

	// mu guards the current postmaster: the supervisor replaces it while
	// PID, Health and Stop read it from other goroutines.
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	err       error // set when the process exits, before exited is closed
	startedAt time.Time
	stopping  bool // Stop was called: an exit is expected, not a crash

	supervisor *supervisor // nil unless Supervise was called
}

// Start initialises the cluster in opts.Dir if it is new, or reuses it, and
// starts PostgreSQL. The caller must call Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Database == "" {
		opts.Database = "chatpay"
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	c := &Cluster{dir: dir, database: opts.Database, settings: opts.Settings, logger: opts.Logger, allowRelocation: opts.AllowRelocation}

	if _, err := FindBinaries(""); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if c.cred, err = unprivilegedCredential(); err != nil {
			return nil, err
		}
	}
	if err := c.prepareFolders(); err != nil {
		return nil, err
	}
	existingVersion, _ := os.ReadFile(filepath.Join(c.dataDir(), "PG_VERSION"))
	if c.binDir, err = FindBinaries(strings.TrimSpace(string(existingVersion))); err != nil {
		return nil, err
	}
	if len(existingVersion) == 0 {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	} else {
		c.logger.Info("reusing private PostgreSQL cluster", "dir", c.dataDir())
	}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	if err := c.ensureDatabase(ctx, c.database); err != nil {
		_ = c.Stop(context.Background())
		return nil, err
	}
	return c, nil
}

// DSN returns a lib/pq connection string for database name on this cluster.
func (c *Cluster) DSN(name string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.socketDir, socketPort, superuser, name)
}

// URL is the DSN of the database named in Options.
func (c *Cluster) URL() string { return c.DSN(c.database) }

// Dir is the folder the cluster lives in.
func (c *Cluster) Dir() string { return c.dir }

// PID is the postmaster's process id.
func (c *Cluster) PID() int {
	cmd, _ := c.current()
	return cmd.Process.Pid
}

// current is the postmaster started last and the channel closed when it exits.
func (c *Cluster) current() (*exec.Cmd, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd, c.exited
}

// Stop ends supervision, then shuts PostgreSQL down ("fast" mode: roll back
// open transactions, then a clean checkpoint) and waits for it to exit. It is
// safe to call twice.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	if c.supervisor != nil {
		c.supervisor.stop()
	}
	return c.stopProcess(ctx)
}

// stopProcess shuts the current postmaster down and waits for it to exit.
func (c *Cluster) stopProcess(ctx context.Context) error {
	cmd, exited := c.current()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}
	// Immediate shutdown: PostgreSQL recovers from WAL at the next start.
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	return fmt.Errorf("postgres did not stop in %s; forced", stopTimeout)
}

// Restart starts a stopped cluster again (tests use it to simulate an outage).
func (c *Cluster) Restart(ctx context.Context) error {
	_, exited := c.current()
	select {
	case <-exited:
	default:
		return errors.New("cluster is still running")
	}
	c.mu.Lock()
	c.stopping = false
	c.mu.Unlock()
	return c.start(ctx)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// prepareFolders creates the cluster folder and the socket folder and hands
// them to the unprivileged user when running as root.
func (c *Cluster) prepareFolders() error {
	// Folders chatpay creates on the way are open to traversal (not listing
	// by others is up to their 0700 leaves), so the postgres user can pass.
	if err := os.MkdirAll(filepath.Dir(c.dir), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(c.dir), err)
	}
	if c.cred != nil {
		if err := c.resolveRelocated(); err != nil {
			return err
		}
	}
	if c.cred != nil && requireTraversable(c.dir) != nil {
		if !c.allowRelocation {
			return fmt.Errorf("%w; or, to keep the cluster under %s instead (linked from the data folder), pass --pg-allow-relocation",
				requireTraversable(c.dir), relocationRoot)
		}
		// The unprivileged user cannot reach the data folder (say, a checkout
		// under /root) and the operator allowed relocation. Keep the cluster
		// in a place it can reach, named after the data folder so the next
		// start finds it, and leave a link behind.
		sum := sha256.Sum256([]byte(c.dir))
		relocated := filepath.Join(relocationRoot, "pg-"+hex.EncodeToString(sum[:8]))
		c.logger.Warn("the postgres user cannot enter the data folder; keeping the cluster elsewhere",
			"data_folder", c.dir, "cluster", relocated, "why", requireTraversable(c.dir).Error())
		if err := os.MkdirAll(relocationRoot, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", relocationRoot, err)
		}
		if _, err := os.Lstat(c.dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(relocated, c.dir); err != nil {
				return fmt.Errorf("link %s: %w", c.dir, err)
			}
		}
		c.dir = relocated
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", c.dir, err)
	}
	c.socketDir = socketDirOf(c.dir)
	if err := os.MkdirAll(c.socketDir, 0o700); err != nil {
		return fmt.Errorf("create socket folder: %w", err)
	}
	if c.cred == nil {
		return nil
	}
	if err := requireTraversable(c.dir); err != nil {
		return err
	}
	for _, path := range []string{c.dir, c.socketDir} {
		if err := chownTree(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// socketDirOf is where the cluster in dir listens. The kernel limits socket
// paths; a long dir falls back to a short private folder named after the
// cluster, so that restarts (and other commands) find the same socket.
func socketDirOf(dir string) string {
	socketDir := filepath.Join(dir, "run")
	if len(socketDir)+len("/.s.PGSQL.5432") > socketPathMax {
		sum := sha256.Sum256([]byte(dir))
		socketDir = filepath.Join(os.TempDir(), "chatpay-pg-"+hex.EncodeToString(sum[:6]))
	}
	return socketDir
}

// resolveRelocated follows the link a relocation left behind at an earlier
// start: that cluster stays where it is, and the log says where.
func (c *Cluster) resolveRelocated() error {
	info, err := os.Lstat(c.dir)
	if err != nil || info.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	target, err := filepath.EvalSymlinks(c.dir)
	if err != nil {
		return fmt.Errorf("follow %s: %w", c.dir, err)
	}
	if !strings.HasPrefix(target, relocationRoot+string(filepath.Separator)) {
		return nil
	}
	c.logger.Warn("the private cluster lives outside the data folder (relocated at an earlier start); back up and watch that folder",
		"data_folder", c.dir, "cluster", target)
	c.dir = target
	return nil
}

func (c *Cluster) initdb(ctx context.Context) error {
	c.logger.Info("creating private PostgreSQL cluster", "dir", c.dataDir())
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"),
		"--pgdata", c.dataDir(),
		"--username", superuser,
		"--auth", "trust", // only the owner can reach the 0700 socket folder
		"--encoding", "UTF8",
		"--locale", "C",
		"--data-checksums",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb in %s failed: %w: %s", c.dataDir(), err, lastLines(out.String(), 5))
	}
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	args := []string{
		"-D", c.dataDir(),
		"-k", c.socketDir,
		"-p", strconv.Itoa(socketPort),
		"-c", "listen_addresses=",
		"-c", "unix_socket_permissions=0700",
	}
	names := make([]string, 0, len(c.settings))
	for name := range c.settings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		args = append(args, "-c", name+"="+c.settings[name])
	}
	logFile, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	// A postmaster left over from before (an orphan of a chatpay that was
	// killed, or the crashed one's backends) must be gone first, and one that
	// chatpay did not start is never taken over.
	if err := c.awaitPredecessor(ctx); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		// Its own process group keeps a terminal's Ctrl-C away from postgres:
		// chatpay drains requests first, then stops the database.
		Setpgid: true,
		// If chatpay dies without stopping it, postgres shuts down by itself.
		Pdeathsig: syscall.SIGINT,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.exited, c.startedAt = cmd, exited, time.Now()
	c.mu.Unlock()
	go c.wait(cmd, exited)
	if err := c.writeOwner(cmd.Process.Pid); err != nil {
		_ = c.stopProcess(context.Background())
		return err
	}
	if err := c.waitReady(ctx, cmd.Process.Pid, exited); err != nil {
		_ = c.stopProcess(context.Background())
		return err
	}
	c.logger.Info("private PostgreSQL is up", "pid", cmd.Process.Pid, "socket", c.socketDir)
	return nil
}

// wait reaps the postmaster and says how it ended unless Stop asked it to.
func (c *Cluster) wait(cmd *exec.Cmd, exited chan struct{}) {
	err := cmd.Wait()
	c.mu.Lock()
	c.err = err
	expected := c.stopping
	c.mu.Unlock()
	if !expected {
		log, _ := os.ReadFile(c.logPath())
		c.logger.Error("private PostgreSQL exited", "pid", cmd.Process.Pid, "status", cmd.ProcessState.String(),
			"postgres_log", lastLines(string(log), 3))
	}
	close(exited)
}

// waitReady waits until PostgreSQL answers on the socket and the lock file
// (postmaster.pid) names pid: an answer from a postmaster chatpay did not
// start is not taken for its own.
func (c *Cluster) waitReady(ctx context.Context, pid int, exited chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	db, err := sql.Open("postgres", c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		pingCtx, pingCancel := context.WithTimeout(ctx, time.Second)
		err := db.PingContext(pingCtx)
		pingCancel()
		if err == nil {
			if lock, ok := readLockFile(c.dataDir()); ok && lock.pid == pid {
				return nil
			}
			err = fmt.Errorf("the lock file %s does not name postmaster %d yet", filepath.Join(c.dataDir(), "postmaster.pid"), pid)
		}
		select {
		case <-exited:
			c.mu.Lock()
			exitErr := c.err
			c.mu.Unlock()
			log, _ := os.ReadFile(c.logPath())
			return fmt.Errorf("postgres exited during start (%v): %s", exitErr, lastLines(string(log), 5))
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready after %s: %w", startTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) ensureDatabase(ctx context.Context, name string) error {
	db, err := sql.Open("postgres", c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := db.ExecContext(ctx, `CREATE DATABASE `+quoteIdent(name)); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// FindBinaries returns the folder holding initdb and postgres. A non-empty
// version ("15") prefers /usr/lib/postgresql/<version>/bin, because a cluster
// must be started by the major version that created it.
func FindBinaries(version string) (string, error) {
	if version != "" {
		dir := filepath.Join("/usr/lib/postgresql", version, "bin")
		if isExecutable(filepath.Join(dir, "postgres")) && isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(initdb); err == nil {
			dir := filepath.Dir(resolved)
			if isExecutable(filepath.Join(dir, "postgres")) {
				return dir, nil
			}
		}
	}
	candidates, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(candidates, func(i, j int) bool { return versionOf(candidates[i]) > versionOf(candidates[j]) })
	for _, dir := range candidates {
		if isExecutable(filepath.Join(dir, "postgres")) && isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

func unprivilegedCredential() (*syscall.Credential, error) {
	u, err := user.Lookup(unprivilegedUser)
	if err != nil {
		return nil, fmt.Errorf("chatpay runs as root, and PostgreSQL refuses to; it runs the private cluster as user %q, which does not exist "+
			"(installing Debian's postgresql package creates it, or: useradd --system %s): %w", unprivilegedUser, unprivilegedUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// requireTraversable checks that the unprivileged user can reach dir: every
// parent folder must be searchable by others.
func requireTraversable(dir string) error {
	for parent := filepath.Dir(dir); ; parent = filepath.Dir(parent) {
		info, err := os.Stat(parent)
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("the private cluster runs as user %q, which cannot enter %s (mode %s); choose a data folder outside it with --data-dir, or chmod o+x %s",
				unprivilegedUser, parent, info.Mode().Perm(), parent)
		}
		if parent == "/" || parent == filepath.Dir(parent) {
			return nil
		}
	}
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("hand %s to user %q: %w", path, unprivilegedUser, err)
		}
		return nil
	})
}

func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
