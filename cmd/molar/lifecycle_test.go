package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// molarBinary builds the real binary once per test run.
func molarBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "molar-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "molar")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{string(out)}
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

type buildError struct{ out string }

func (e *buildError) Error() string { return "go build: " + e.out }

// dataDir is a data directory the postgres user can enter (t.TempDir is 0700).
func dataDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "molar-data-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(d, 0o755))
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "data")
}

// proc is a running `molar serve`.
type proc struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	web    string
	dicom  string // host:port
	done   chan error
}

var dicomLine = regexp.MustCompile(`DICOM:\s+AE title \S+ at (\S+)`)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

var webLine = regexp.MustCompile(`Web:\s+(http://\S+)/`)

func startMolar(t *testing.T, data string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(molarBinary(t), "serve", "--demo", "--http-addr", "127.0.0.1:0", "--dicom-addr", "127.0.0.1:0", "--data-dir", data, "--log-format", "json")
	cmd.Env = append(os.Environ(), append([]string{"MOLAR_DICOM_ACCEPT_UNKNOWN=false", "MOLAR_DATABASE_URL=", "MOLAR_S3_ENDPOINT="}, env...)...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &proc{cmd: cmd, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		web := ""
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.stdout.Write([]byte(line + "\n"))
			if m := webLine.FindStringSubmatch(line); m != nil {
				web = m[1]
			}
			if m := dicomLine.FindStringSubmatch(line); m != nil {
				p.dicom = m[1]
			}
			if strings.HasPrefix(line, "Press Ctrl-C") { // the banner's last line
				ready <- web
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case p.web = <-ready:
	case err := <-p.done:
		t.Fatalf("molar exited before ready: %v\nstderr: %s", err, p.stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("molar not ready after 2 minutes\nstderr: %s", p.stderr.String())
	}
	return p
}

func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(d):
		t.Fatalf("molar did not exit within %s\nstderr: %s", d, p.stderr.String())
		return nil
	}
}

// canLogIn logs in over HTTP and reports the status of the home page.
func canLogIn(t *testing.T, base, username, password string) int {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/login")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindStringSubmatch(string(b))
	require.NotNil(t, m)
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{
		"username": {username}, "password": {password}, "csrf_token": {m[1]}, "next": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.Header.Set("Accept", "text/html")
	resp, err = c.Do(req)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && strings.Contains(string(b), `id="welcome"`) {
		return http.StatusOK
	}
	if resp.StatusCode == http.StatusOK {
		return http.StatusUnauthorized
	}
	return resp.StatusCode
}

// postgresProcessesFor lists live postgres processes serving dir.
func postgresProcessesFor(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b), dir) && strings.Contains(string(b), "postgres") {
			st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestServeLifecycle is the set-up contract end to end with the real binary
// and the embedded PostgreSQL: ready with URLs and logins, login works, an
// admin command works beside the running server, Ctrl-C leaves no process,
// a second start reuses the data, and after kill -9 everything comes back.
func TestServeLifecycle(t *testing.T) {
	pgtest.AdminURL(t) // PostgreSQL binaries present (fails under CI=true otherwise)
	data := dataDir(t)
	p := startMolar(t, data)
	require.Contains(t, p.stdout.String(), "Demo logins")
	require.Contains(t, p.stdout.String(), "tandlaege")
	require.Equal(t, http.StatusOK, canLogIn(t, p.web, "tandlaege", demo.Password))
	require.Equal(t, http.StatusUnauthorized, canLogIn(t, p.web, "tandlaege", "wrong-password-1"))

	// An admin command beside the running server uses its cluster.
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("a-long-password-42\n"), 0o600))
	out, err := exec.Command(molarBinary(t), "user", "add", "--data-dir", data, "--username", "nyansat", "--role", "dentist", "--password-file", pwFile).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, http.StatusOK, canLogIn(t, p.web, "nyansat", "a-long-password-42"))

	// DCMTK's echoscu: a registered AE is verified, an unknown one rejected.
	out, err = exec.Command(molarBinary(t), "ae", "add", "--data-dir", data, "--title", "ECHOSCU", "--host", "127.0.0.1", "--port", "104").CombinedOutput()
	require.NoError(t, err, string(out))
	host, port, _ := net.SplitHostPort(p.dicom)
	if _, err := exec.LookPath("echoscu"); err == nil || os.Getenv("CI") == "true" {
		echoCmd := func(aet string) error {
			c := exec.Command("echoscu", "-aet", aet, "-aec", "MOLAR", host, port)
			c.Env = append(os.Environ(), "TCP_NODELAY=1")
			return c.Run()
		}
		require.NoError(t, echoCmd("ECHOSCU"), "registered AE")
		require.Error(t, echoCmd("NOBODY"), "unknown AE")
	}

	// Logs hold no names or CPR numbers.
	logs := p.stderr.String()
	require.NotContains(t, logs, "Tove Tandlæge")
	require.NotRegexp(t, `\b[0-3]\d[01]\d\d\d-\d{4}\b`, logs, "no CPR numbers in logs")

	// Ctrl-C: clean exit, no process left behind.
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	require.NoError(t, p.wait(t, time.Minute))
	require.Empty(t, postgresProcessesFor(data), "no PostgreSQL process left after Ctrl-C")

	// Second start reuses the data.
	p = startMolar(t, data)
	require.Equal(t, http.StatusOK, canLogIn(t, p.web, "nyansat", "a-long-password-42"))

	// kill -9 of molar, then start again: everything is back.
	require.NoError(t, p.cmd.Process.Kill())
	_ = p.wait(t, time.Minute)
	p = startMolar(t, data)
	require.Equal(t, http.StatusOK, canLogIn(t, p.web, "nyansat", "a-long-password-42"))
	require.Equal(t, http.StatusOK, canLogIn(t, p.web, "tandlaege", demo.Password))

	// The embedded PostgreSQL dies under a running molar (OOM killer, an
	// administrator's kill): molar stops with a clear error instead of
	// answering everything with errors; started again, all is back.
	b, err := os.ReadFile(filepath.Join(data, "pg", "postmaster.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Error(t, p.wait(t, time.Minute), "a non-zero exit")
	require.Contains(t, lastLine(p.stderr.String()), "embedded PostgreSQL stopped unexpectedly")
	p = startMolar(t, data)
	require.Equal(t, http.StatusOK, canLogIn(t, p.web, "nyansat", "a-long-password-42"))

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t, time.Minute))
	require.Empty(t, postgresProcessesFor(data))
}

// TestStartupErrorsAreOneClearLine: each bad start gives one clear message
// naming the problem and a non-zero exit, never a stack trace.
func TestStartupErrorsAreOneClearLine(t *testing.T) {
	pgtest.AdminURL(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"bad setting", nil, []string{"MOLAR_AE_TITLE=WAY_TOO_LONG_AE_TITLE"}, "MOLAR_AE_TITLE"},
		{"occupied port", []string{"--http-addr", busy.Addr().String()}, nil, "already in use"},
		{"missing postgres binaries", []string{"--postgres-bin-dir", "/nonexistent"}, nil, "apt-get install postgresql"},
		{"unreachable database", nil, []string{"MOLAR_DATABASE_URL=postgres://molar@127.0.0.1:1/molar?connect_timeout=2"}, "127.0.0.1"},
		{"unreachable S3", nil, []string{"MOLAR_S3_ENDPOINT=127.0.0.1:1", "MOLAR_S3_ACCESS_KEY=a", "MOLAR_S3_SECRET_KEY=b"}, "object store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", dataDir(t), "--dicom-addr", "127.0.0.1:0"}, tc.args...)
			if !contains(tc.args, "--http-addr") {
				args = append(args, "--http-addr", "127.0.0.1:0")
			}
			cmd := exec.Command(molarBinary(t), args...)
			cmd.Env = append(os.Environ(), tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			done := make(chan error, 1)
			require.NoError(t, cmd.Start())
			go func() { done <- cmd.Wait() }()
			var werr error
			select {
			case werr = <-done:
			case <-ctx.Done():
				_ = cmd.Process.Kill()
				t.Fatalf("did not exit")
			}
			require.Error(t, werr, "non-zero exit")
			msg := lastLine(stderr.String())
			require.Contains(t, msg, tc.want)
			require.True(t, strings.HasPrefix(msg, "molar serve: "), "last line %q of\n%s", msg, stderr.String())
			require.NotContains(t, stderr.String(), "goroutine ")
			require.NotContains(t, stderr.String(), "panic")
		})
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

var _ = postgres.AppRole

// TestAdminCommandOnAWrongDataDir: an admin command pointed at a
// directory without a Molar database fails, naming the directory, and
// creates nothing (a mistyped path must not become an empty database that
// `archive verify` then calls fine).
func TestAdminCommandOnAWrongDataDir(t *testing.T) {
	for _, args := range [][]string{{"ae", "list"}, {"archive", "verify"}, {"audit", "verify"}} {
		data := filepath.Join(t.TempDir(), "nothing-here")
		out, err := exec.Command(molarBinary(t), append(args, "--data-dir", data)...).CombinedOutput()
		require.Error(t, err, "%v: %s", args, out)
		require.Contains(t, string(out), "no Molar database here", "%v", args)
		require.Contains(t, string(out), data)
		require.NoDirExists(t, data, "%v created nothing", args)
	}
}

// TestDataDirOfAnotherUserIsRefused: molar run by another user than the
// data directory's owner (root running an admin command beside a server
// run as its service user) refuses, naming the owner, instead of writing
// objects the server cannot read; for root, a directory of the "postgres"
// user (older molar handed it over when run as root) is accepted.
func TestDataDirOfAnotherUserIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		require.ErrorContains(t, checkDataDirOwner("/usr/share"), "belongs to user root")
		return
	}
	data := t.TempDir()
	require.NoError(t, os.Chown(data, 65534, 65534))
	out, err := exec.Command(molarBinary(t), "ae", "list", "--data-dir", data).CombinedOutput()
	require.Error(t, err, string(out))
	require.Contains(t, string(out), "belongs to user")
	require.Contains(t, string(out), "run molar as that user")
	if pg, err := user.Lookup("postgres"); err == nil {
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		require.NoError(t, os.Chown(data, uid, gid))
		require.NoError(t, checkDataDirOwner(data))
	}
}
