// Package postgres holds Molar's PostgreSQL adapter: the embedded cluster that
// `molar serve` runs under its data directory when no database URL is given,
// the connection pools, the migrations runner and transaction helpers that
// carry the tenant (municipality) for row-level security.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role names created in every Molar database.
const (
	// AdminUser is the bootstrap superuser of an embedded cluster.
	AdminUser = "molar_admin"
	// OwnerRole owns every schema and table; migrations run as it.
	OwnerRole = "molar_owner"
	// AppRole is the runtime role: DML only, owns nothing, subject to row-level security.
	AppRole = "molar_app"
)

// ErrBinariesMissing is returned when no PostgreSQL server binaries are found.
var ErrBinariesMissing = errors.New("PostgreSQL server binaries (initdb, postgres) not found; install the Debian package 'postgresql' (apt-get install postgresql)")

// Cluster is a private PostgreSQL cluster in a directory, listening on a Unix
// socket only (no TCP port). Start initialises it on first use and recovers
// after a crash; Stop shuts it down. When the process runs as root the
// cluster's processes run as the unprivileged system user "postgres"
// (created if missing), because PostgreSQL refuses to run as root.
type Cluster struct {
	// Dir is the cluster's data directory (PGDATA).
	Dir string
	// BinDir overrides the search for server binaries.
	BinDir string
	Logger *slog.Logger

	mu       sync.Mutex
	bin      string
	cmd      *exec.Cmd
	done     chan struct{}
	sockDir  string
	logFile  *os.File
	runAsUID int
	runAsGID int
	asOther  bool
	attached bool
	// owner is the open, exclusively flock'ed owner file while this
	// process owns the cluster (started it, or may start it).
	owner *os.File

	// NoInit makes Start fail with ErrNoCluster instead of initialising a
	// new cluster when Dir holds none (admin commands: a wrong data
	// directory must not quietly become an empty database).
	NoInit bool
	// Exclusive makes Start own the cluster or fail: when another process
	// owns it (a running `molar serve`, an admin command) Start waits up to
	// OwnerWait for it to finish, then fails with ErrClusterBusy. `molar
	// serve` starts so: it must notice when its database stops.
	Exclusive bool
	// Role names this process in the owner file ("serve", "admin
	// command"): an Exclusive Start finding the cluster owned by a "serve"
	// fails at once (two servers on one data directory), one owned by
	// anything else waits for it to finish.
	Role string
	// OwnerWait bounds Exclusive's wait for an owner other than a serve (0:
	// no bound, logged every minute: an admin command such as `archive
	// verify --hash` may run for hours); AttachWait bounds how long a
	// non-exclusive Start waits for the owner's server to accept
	// connections (starting up, recovering after a crash; default 2 min).
	OwnerWait, AttachWait time.Duration
}

// Errors of Start.
var (
	// ErrNoCluster: NoInit and the data directory holds no cluster.
	ErrNoCluster = errors.New("no Molar database here: check the data directory (MOLAR_DATA_DIR), or run `molar serve` or `molar migrate` once to create it")
	// ErrClusterBusy: Exclusive and another process owns the cluster.
	ErrClusterBusy = errors.New("the embedded PostgreSQL is run by another molar process")
)

// Bin is the directory of the PostgreSQL binaries in use (set by Start);
// pg_dump and pg_restore of the same version are there.
func (c *Cluster) Bin() string { return c.bin }

// SocketDir is the directory holding the server's Unix socket.
func (c *Cluster) SocketDir() string { return c.sockDir }

// URL returns a connection URL for the database and user over the socket.
func (c *Cluster) URL(database, user string) string {
	return fmt.Sprintf("postgres:///%s?host=%s&user=%s&sslmode=disable", database, c.sockDir, user)
}

// FindBinaries returns the directory holding initdb and postgres. When
// version is non-empty (from an existing cluster's PG_VERSION) binaries of
// that major version are required.
func FindBinaries(version string) (string, error) {
	var candidates []string
	if version != "" {
		candidates = append(candidates, filepath.Join("/usr/lib/postgresql", version, "bin"))
	} else {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		// Newest major version first.
		sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
		candidates = append(candidates, dirs...)
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, dir := range candidates {
		if isExec(filepath.Join(dir, "postgres")) && isExec(filepath.Join(dir, "initdb")) {
			if version != "" {
				if v, err := binaryMajor(dir); err != nil || v != version {
					continue
				}
			}
			return dir, nil
		}
	}
	if version != "" {
		return "", fmt.Errorf("%w (the cluster needs major version %s: apt-get install postgresql-%s)", ErrBinariesMissing, version, version)
	}
	return "", ErrBinariesMissing
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func binaryMajor(dir string) (string, error) {
	out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return "", err
	}
	// "postgres (PostgreSQL) 15.18 (Debian ...)"
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "", fmt.Errorf("unexpected version output %q", out)
	}
	return strings.SplitN(f[2], ".", 2)[0], nil
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start initialises the cluster if needed (unless NoInit) and starts it,
// waiting until it accepts connections; when another live process owns it
// (holds the owner lock), Start attaches to its server instead (or, when
// Exclusive, waits for it to finish). A stale postmaster.pid from a crash
// is handled by PostgreSQL itself; a server left running by a killed
// earlier owner is stopped first so that this process owns it.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil || c.attached {
		return nil
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return fmt.Errorf("postgres: data dir: %w", err)
	}
	c.Dir = dir
	if err := c.resolveUser(); err != nil {
		return err
	}
	version := c.version()
	if version == "" && c.NoInit {
		return fmt.Errorf("postgres: %w (%s)", ErrNoCluster, c.Dir)
	}
	bin := c.BinDir
	if bin != "" && (!isExec(filepath.Join(bin, "postgres")) || !isExec(filepath.Join(bin, "initdb"))) {
		return fmt.Errorf("%w (looked in %s)", ErrBinariesMissing, bin)
	}
	if bin == "" {
		if bin, err = FindBinaries(version); err != nil {
			return err
		}
	}
	c.bin = bin
	c.sockDir = c.Dir
	if len(filepath.Join(c.sockDir, ".s.PGSQL.5432")) > 100 {
		// Unix socket paths are limited to 107 bytes: use a short private folder.
		c.sockDir = filepath.Join(os.TempDir(), fmt.Sprintf("molar-pg-%d", hashString(c.Dir)))
		if err := c.mkdirOwned(c.sockDir, 0o700); err != nil {
			return err
		}
	}
	// Who runs the cluster is decided by a lock on the owner file beside
	// it, held for as long as the owner lives (the kernel drops it when the
	// process dies, kill -9 included). Its owner starts and stops the
	// server; anyone else attaches to the running server and never stops
	// it — not even when it does not answer yet (starting, recovering
	// after a crash, out of connections).
	attachBy := time.Now().Add(orDefault(c.AttachWait, 2*time.Minute))
	ownerBy := time.Now().Add(c.OwnerWait)
	var attachErr error
	for {
		owned, err := c.own(ctx)
		if err != nil {
			return err
		}
		if owned {
			err := c.startOwned(ctx, bin)
			if err == nil {
				return nil
			}
			c.releaseOwner()
			var lo errLegacyOwner
			if !errors.As(err, &lo) {
				return err
			}
			// A molar from before the owner file runs the server (an
			// upgrade): an admin command uses it; serve waits for it to
			// stop, as for an admin command.
			if c.Exclusive {
				if c.OwnerWait > 0 && time.Now().After(ownerBy) {
					return fmt.Errorf("postgres: %w (pid %d, a molar from before %s; %s): stop it first", ErrClusterBusy, lo.parent, filepath.Base(c.ownerPath()), c.Dir)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			}
		}
		if attachErr = c.attach(ctx); attachErr == nil {
			return nil
		}
		if time.Now().After(attachBy) {
			return fmt.Errorf("postgres: the embedded PostgreSQL of molar process %s (%s) does not accept connections; it is left running: %w",
				c.ownerPID(), c.Dir, attachErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: waiting for the embedded PostgreSQL of molar process %s: %w (last: %w)", c.ownerPID(), ctx.Err(), attachErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// version is the cluster's PG_VERSION ("" when there is no cluster).
func (c *Cluster) version() string {
	b, err := os.ReadFile(filepath.Join(c.Dir, "PG_VERSION"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ownerPath is the owner file: beside the cluster, so that it exists
// before initdb and outside PGDATA.
func (c *Cluster) ownerPath() string { return c.Dir + ".owner" }

// own takes the owner lock. Taken: true. Held by another process: false at
// once, or (Exclusive) after waiting up to OwnerWait for it, then
// ErrClusterBusy.
func (c *Cluster) own(ctx context.Context) (bool, error) {
	if c.owner != nil {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(c.Dir), 0o755); err != nil {
		return false, fmt.Errorf("postgres: create %s: %w", filepath.Dir(c.Dir), err)
	}
	f, err := os.OpenFile(c.ownerPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("postgres: owner file: %w", err)
	}
	waitUntil := time.Now().Add(c.OwnerWait)
	var logged time.Time
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			role := c.Role
			if role == "" {
				role = "molar"
			}
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+" "+role+"\n"), 0)
			c.owner = f
			return true, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return false, fmt.Errorf("postgres: lock %s: %w", c.ownerPath(), err)
		}
		if !c.Exclusive {
			f.Close()
			return false, nil
		}
		if c.ownerRole() == "serve" || (c.OwnerWait > 0 && time.Now().After(waitUntil)) {
			f.Close()
			return false, fmt.Errorf("postgres: %w (pid %s, %s, %s): stop it first, or give this one another data directory (MOLAR_DATA_DIR)",
				ErrClusterBusy, c.ownerPID(), c.ownerRole(), c.Dir)
		}
		if time.Since(logged) >= time.Minute {
			c.Logger.Warn("waiting for another molar process to finish with the embedded PostgreSQL", "pid", c.ownerPID(), "process", c.ownerRole(), "dir", c.Dir)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// releaseOwner gives up ownership (the server must be stopped already, or
// be left as an orphan the next owner stops).
func (c *Cluster) releaseOwner() {
	if c.owner != nil {
		_ = c.owner.Truncate(0) // no stale pid and role for the next reader
		c.owner.Close()         // closing drops the lock
		c.owner = nil
	}
}

// ownerPID is the pid the owner wrote into the owner file ("?" unknown).
func (c *Cluster) ownerPID() string {
	if f := c.ownerFields(); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// ownerRole is what the owner said it is ("serve", "admin command"; "?").
func (c *Cluster) ownerRole() string {
	if f := c.ownerFields(); len(f) > 1 {
		return strings.Join(f[1:], " ")
	}
	return "?"
}

func (c *Cluster) ownerFields() []string {
	b, _ := os.ReadFile(c.ownerPath())
	return strings.Fields(string(b))
}

// errLegacyOwner: a live postmaster on the data directory whose parent is
// a live process other than this one and init, while nobody holds the
// owner lock: a molar from before the owner file (an upgrade with the old
// server still running). Its server is used, never stopped.
type errLegacyOwner struct{ parent int }

func (e errLegacyOwner) Error() string {
	return fmt.Sprintf("postgres: the server is run by process %d without the owner lock", e.parent)
}

// legacyOwner reports the parent of a live postmaster of this cluster when
// that parent lives and is neither init nor this process.
func (c *Cluster) legacyOwner() (int, bool) {
	pid, ok := c.livePostmaster()
	if !ok {
		return 0, false
	}
	ppid := parentOf(pid)
	if ppid > 1 && ppid != os.Getpid() && processAlive(ppid) && isMolar(ppid) {
		return ppid, true
	}
	return 0, false
}

// livePostmaster returns the pid in the cluster's postmaster.pid when that
// process lives and is this cluster's postmaster (not a stale file).
func (c *Cluster) livePostmaster() (int, bool) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 || !processAlive(pid) || !isPostmasterOf(pid, c.Dir) {
		return 0, false
	}
	return pid, true
}

// isMolar reports whether pid runs a molar binary (by its executable's
// name, else its command name, which another user may read; unknown
// counts as molar, to be safe).
func isMolar(pid int) bool {
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		return strings.Contains(filepath.Base(strings.TrimSuffix(exe, " (deleted)")), "molar")
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		return strings.Contains(string(comm), "molar")
	}
	return true
}

// attach connects once to the server the owner runs, through the socket
// its postmaster.pid names.
func (c *Cluster) attach(ctx context.Context) error {
	if b, err := os.ReadFile(filepath.Join(c.Dir, "postmaster.pid")); err == nil {
		if lines := strings.Split(string(b), "\n"); len(lines) > 4 && strings.TrimSpace(lines[4]) != "" {
			c.sockDir = strings.TrimSpace(lines[4])
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.Connect(cctx, c.URL("postgres", AdminUser))
	cancel()
	if err != nil {
		return err
	}
	conn.Close(ctx)
	c.attached = true
	c.Logger.Info("using the PostgreSQL cluster of a running molar", "pid", c.ownerPID())
	return nil
}

// startOwned initialises the cluster if needed and starts its server,
// holding the owner lock.
func (c *Cluster) startOwned(ctx context.Context, bin string) error {
	if c.version() == "" { // another owner may have made it meanwhile
		if c.NoInit {
			return fmt.Errorf("postgres: %w (%s)", ErrNoCluster, c.Dir)
		}
		if err := c.initdb(ctx, bin); err != nil {
			return err
		}
	}
	if parent, ok := c.legacyOwner(); ok {
		return errLegacyOwner{parent}
	}
	if err := c.stopOrphan(ctx); err != nil {
		return err
	}
	// After a crash (kill -9 of molar and its postmaster) the old server's
	// backends leave within moments of noticing; until they have, the new
	// server refuses to start on the shared memory they still hold.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.start(ctx, bin)
		if err == nil || !strings.Contains(err.Error(), "shared memory block") || !strings.Contains(err.Error(), "still in use") || time.Now().After(deadline) {
			return err
		}
		c.Logger.Info("embedded PostgreSQL: the crashed server's processes are still leaving; starting again")
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Attached reports whether Start found the cluster run by another live
// process (a `molar serve` while an admin command runs) and uses it without
// owning it: Stop then leaves it running.
func (c *Cluster) Attached() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attached
}

func hashString(s string) uint32 {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (c *Cluster) resolveUser() error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		// Create the system user.
		out, err2 := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput()
		if err2 != nil {
			return fmt.Errorf("postgres: running as root needs the unprivileged user 'postgres' and creating it failed: %v: %s", err2, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return fmt.Errorf("postgres: look up user postgres: %w", err)
		}
	}
	c.runAsUID, _ = strconv.Atoi(u.Uid)
	c.runAsGID, _ = strconv.Atoi(u.Gid)
	c.asOther = true
	return nil
}

// mkdirOwned creates dir (and parents) and hands it to the cluster's user.
func (c *Cluster) mkdirOwned(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("postgres: create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		return fmt.Errorf("postgres: chmod %s: %w", dir, err)
	}
	if c.asOther {
		if err := os.Chown(dir, c.runAsUID, c.runAsGID); err != nil {
			return fmt.Errorf("postgres: chown %s: %w", dir, err)
		}
		// The postgres user must be able to traverse every parent folder
		// (mkdirOwned makes only the cluster's own folders).
		for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
			st, err := os.Stat(p)
			if err != nil {
				break
			}
			if st.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("postgres: the 'postgres' user cannot enter %s (mode %v); choose a data directory outside it (MOLAR_DATA_DIR)", p, st.Mode().Perm())
			}
		}
	}
	return nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.asOther {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(c.runAsUID), Gid: uint32(c.runAsGID)}
		cmd.Dir = "/"
	}
	return cmd
}

func (c *Cluster) initdb(ctx context.Context, bin string) error {
	// Initialise into a fresh folder and rename, so a crash during initdb
	// never leaves a half-made cluster that looks valid.
	if entries, err := os.ReadDir(c.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("postgres: %s is not empty and holds no cluster (no PG_VERSION); move it away or choose another data directory", c.Dir)
	}
	tmp := c.Dir + ".initdb"
	_ = os.RemoveAll(tmp)
	// The folder holding the cluster is the operator's (the data
	// directory): created if missing, never chmod'ed or handed to the
	// cluster's user.
	if err := os.MkdirAll(filepath.Dir(c.Dir), 0o755); err != nil {
		return fmt.Errorf("postgres: create %s: %w", filepath.Dir(c.Dir), err)
	}
	if err := c.mkdirOwned(tmp, 0o700); err != nil {
		return err
	}
	cmd := c.command(ctx, filepath.Join(bin, "initdb"),
		"-D", tmp, "--username", AdminUser, "--auth-local=trust", "--auth-host=reject",
		"--encoding=UTF8", "--locale=C", "--no-instructions")
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("postgres: initdb failed: %v: %s", err, lastLines(string(out), 5))
	}
	_ = os.Remove(c.Dir) // empty folder, if any
	if err := os.Rename(tmp, c.Dir); err != nil {
		return fmt.Errorf("postgres: install cluster: %w", err)
	}
	c.Logger.Info("initialised embedded PostgreSQL cluster", "dir", c.Dir)
	return nil
}

// stopOrphan stops a server still running on the data directory although
// its owner is gone (this process holds the owner lock): one left behind by
// a killed molar whose postmaster has not yet noticed its parent's death.
func (c *Cluster) stopOrphan(ctx context.Context) error {
	pid, ok := c.livePostmaster()
	if !ok {
		return nil // none, or a stale pid file: PostgreSQL recovers on start
	}
	c.Logger.Warn("stopping PostgreSQL left running by an earlier molar process", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGINT) // fast shutdown
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !processAlive(pid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	time.Sleep(time.Second)
	if processAlive(pid) {
		return fmt.Errorf("postgres: an earlier server (pid %d) on %s does not stop", pid, c.Dir)
	}
	return nil
}

// parentOf returns the parent pid of pid (0 when unknown).
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie counts as dead.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func isPostmasterOf(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true // cannot tell: assume it is
	}
	args := strings.Split(string(b), "\x00")
	if len(args) == 0 || !strings.HasSuffix(args[0], "postgres") {
		return false
	}
	return strings.Contains(string(b), dir)
}

// sharedBuffers sizes PostgreSQL's buffer cache from the machine's memory:
// 1/16 of it, between 128 MB (PostgreSQL's default) and 2 GB (1.5 GB on a
// 24 GiB machine: the index of a few million instances stays in memory, and
// the rest is left to the page cache, the object store and molar).
func sharedBuffers() string {
	mb := int64(128)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					mb = min(max(kb/1024/16, 128), 2048)
				}
			}
		}
	}
	return strconv.FormatInt(mb, 10) + "MB"
}

func (c *Cluster) start(ctx context.Context, bin string) error {
	logPath := c.LogPath()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("postgres: open server log: %w", err)
	}
	// Errors quote what this start wrote to the log, not earlier starts.
	var logFrom int64
	if st, err := lf.Stat(); err == nil {
		logFrom = st.Size()
	}
	newLog := func() string {
		b := readFile(logPath)
		if int64(len(b)) >= logFrom {
			b = b[logFrom:]
		}
		return lastLines(b, 5)
	}
	c.logFile = lf
	cmd := c.command(context.Background(), filepath.Join(bin, "postgres"),
		"-D", c.Dir,
		"-k", c.sockDir,
		"-c", "listen_addresses=",
		"-c", "unix_socket_permissions=0700",
		"-c", "max_connections=200",
		"-c", "shared_buffers="+sharedBuffers(),
		"-c", "log_min_messages=warning",
		"-c", "log_line_prefix=%m [%p] ",
		// Durability stays PostgreSQL's default (fsync, synchronous_commit,
		// full_page_writes all on). Fewer checkpoints mean fewer full-page
		// images in the WAL of each insert (at the cost of a longer replay
		// after a crash, bounded by max_wal_size); compressing the images
		// that remain halves their WAL bytes.
		"-c", "checkpoint_timeout=15min",
		"-c", "max_wal_size=2GB",
		"-c", "wal_compression=on",
	)
	cmd.Stdout = lf
	cmd.Stderr = lf
	// If molar dies, the postmaster gets a fast-shutdown signal. Linux
	// sends it when the thread that started the server ends, not the
	// process: the server is started from a thread locked to a goroutine
	// that lives until the server has exited, so no other goroutine's
	// thread coming to an end can stop it.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends after the server
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		lf.Close()
		return fmt.Errorf("postgres: start server: %w", err)
	}
	c.cmd = cmd
	c.done = done

	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(cctx, c.URL("postgres", AdminUser))
		cancel()
		if err == nil {
			conn.Close(ctx)
			c.Logger.Info("embedded PostgreSQL ready", "dir", c.Dir)
			return nil
		}
		select {
		case <-c.done:
			c.cmd = nil
			c.logFile.Close()
			c.logFile = nil
			return fmt.Errorf("postgres: server exited during start-up: %s", newLog())
		case <-ctx.Done():
			c.stopLocked(context.Background())
			return fmt.Errorf("postgres: waiting for server: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stopLocked(context.Background())
			return fmt.Errorf("postgres: server not ready after 60s: %s", newLog())
		}
	}
}

// Stop shuts the server down (fast shutdown: open transactions roll back,
// committed data is safe), waiting until ctx expires, then forcing it.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(ctx)
}

func (c *Cluster) stopLocked(ctx context.Context) error {
	if c.attached {
		c.attached = false
		return nil
	}
	if c.cmd == nil {
		c.releaseOwner()
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case <-c.done:
	case <-ctx.Done():
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		err = fmt.Errorf("postgres: shutdown deadline passed, server forced down")
	}
	c.cmd = nil
	if c.logFile != nil {
		c.logFile.Close()
	}
	c.releaseOwner()
	c.Logger.Info("embedded PostgreSQL stopped")
	return err
}

// Running reports whether the server process is up.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Exited is closed when the server this Cluster started exits, whether
// stopped or not; nil (never ready) when it runs none (attached to another
// molar's server, or not started).
func (c *Cluster) Exited() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	return c.done
}

// LogPath is the file the server writes its log to.
func (c *Cluster) LogPath() string {
	return filepath.Join(filepath.Dir(c.Dir), filepath.Base(c.Dir)+".log")
}

// Kill kills the server hard (SIGKILL), as in a crash. For tests.
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
	c.cmd = nil
	c.releaseOwner() // a crashed owner's lock goes with it
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
