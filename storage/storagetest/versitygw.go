package storagetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// VersityGWVersion is the versitygw release the tests are written against.
const VersityGWVersion = "v1.8.0"

// VersityGWInstall is the command that installs versitygw where
// VersityGWBinary looks last.
const VersityGWInstall = "GOBIN=$HOME/.cache/molar/bin go install github.com/versity/versitygw/cmd/versitygw@" + VersityGWVersion

// VersityGWBinary finds the versitygw binary: $MOLAR_VERSITYGW, else
// versitygw on PATH, else $HOME/.cache/molar/bin/versitygw.
func VersityGWBinary() (string, error) {
	if p := os.Getenv("MOLAR_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MOLAR_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "molar", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("versitygw not found (looked at $MOLAR_VERSITYGW, PATH and $HOME/.cache/molar/bin/versitygw)")
}

// StartVersityGW starts a versitygw S3 server with a POSIX backend in a
// temporary folder on a free loopback port, waits until it answers, and
// stops it when the test ends. It returns the endpoint (host:port, plain
// HTTP) and the root credentials.
//
// Without the binary the test is skipped, or fails when CI=true: CI must
// run the S3 tests.
func StartVersityGW(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	bin, err := VersityGWBinary()
	if err != nil {
		pgtest.Unavailable(t, "versitygw (install it with: "+VersityGWInstall+")", err)
	}
	accessKey, secretKey = "molar"+randHex(6), randHex(20)
	dir := t.TempDir()
	var lastErr error
	for range 3 { // the free port may be taken before versitygw binds it
		addr, err := freeLoopbackAddr()
		if err != nil {
			t.Fatalf("versitygw: %v", err)
		}
		stop, err := startGW(bin, addr, accessKey, secretKey, dir)
		if err == nil {
			t.Cleanup(stop)
			return addr, accessKey, secretKey
		}
		lastErr = err
	}
	t.Fatalf("versitygw: %v", lastErr)
	return "", "", ""
}

func startGW(bin, addr, accessKey, secretKey, dir string) (stop func(), err error) {
	cmd := exec.Command(bin, "--access", accessKey, "--secret", secretKey, "--port", addr, "--quiet", "posix", dir)
	// Keep the caller's VGW_*/ROOT_* settings from changing the server.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VGW_") && !strings.HasPrefix(kv, "ROOT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() {
		cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("exited before answering on %s: %s", addr, strings.TrimSpace(out.String()))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("no answer on %s within 15 s: %s", addr, strings.TrimSpace(out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomBucket returns a fresh bucket name valid for every S3 server.
func RandomBucket() string { return "molar-test-" + randHex(8) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 64<<10 {
		return len(p), nil // enough to explain a failure
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
