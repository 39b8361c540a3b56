package fs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/fs"
	"github.com/molar-health/molar/storage/storagetest"
)

func newStore(t testing.TB) *fs.Store {
	t.Helper()
	s, err := fs.New(filepath.Join(t.TempDir(), "objects"))
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.ObjectStore { return newStore(t) })
}

// tempFiles lists the temporary files of Puts (started, failed or killed),
// not the empty spares a store keeps ready.
func tempFiles(t *testing.T, s *fs.Store) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Root(), fs.TempDir))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Size() == 0 && strings.HasPrefix(e.Name(), fs.SparePrefix) {
			continue
		}
		names = append(names, e.Name())
	}
	return names
}

func TestNoTempFileLeftAfterFailure(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	_, err := s.Put(ctx, "a/b", io.MultiReader(strings.NewReader("part"), errReader{}), storage.PutOptions{Size: -1})
	require.Error(t, err)
	_, err = s.Put(ctx, "a/b", strings.NewReader("short"), storage.PutOptions{Size: 10})
	require.Error(t, err)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Put(cctx, "a/b", strings.NewReader("x"), storage.PutOptions{Size: 1})
	require.Error(t, err)
	// A key that collides with a folder fails after writing the temp file.
	_, err = s.Put(ctx, "dir/obj", strings.NewReader("x"), storage.PutOptions{Size: 1})
	require.NoError(t, err)
	_, err = s.Put(ctx, "dir", strings.NewReader("x"), storage.PutOptions{Size: 1})
	require.Error(t, err)
	_, err = s.Put(ctx, "dir/obj/below", strings.NewReader("x"), storage.PutOptions{Size: 1})
	require.Error(t, err)

	assert.Empty(t, tempFiles(t, s))
	assert.NoDirExists(t, filepath.Join(s.Root(), "a"), "a failed Put creates no folders")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestKeyCollidesWithFolder(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	_, err := s.Put(ctx, "a/b", strings.NewReader("b"), storage.PutOptions{Size: 1})
	require.NoError(t, err)
	_, err = s.Put(ctx, "a", strings.NewReader("a"), storage.PutOptions{Size: 1})
	require.ErrorContains(t, err, "collides")
	require.ErrorContains(t, err, "storage/fs:")
	_, err = s.Put(ctx, "a/b/c", strings.NewReader("c"), storage.PutOptions{Size: 1})
	require.ErrorContains(t, err, "collides")

	got, _, err := s.Get(ctx, "a/b", nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(got)
	got.Close()
	assert.Equal(t, "b", string(b))
}

func TestReservedTempFolder(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, k := range []string{fs.TempDir, fs.TempDir + "/x", fs.TempDir + "/a/b"} {
		_, err := s.Put(ctx, k, strings.NewReader("x"), storage.PutOptions{Size: 1})
		assert.ErrorIs(t, err, storage.ErrInvalidKey, k)
		_, err = s.Stat(ctx, k)
		assert.ErrorIs(t, err, storage.ErrInvalidKey, k)
	}
	// Similar names are fine, and List never shows temp files.
	_, err := s.Put(ctx, ".tmpx", strings.NewReader("x"), storage.PutOptions{Size: 1})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.Root(), fs.TempDir, "put-stale"), []byte("junk"), 0o600))
	for _, prefix := range []string{"", ".", ".tmp", ".tmp/", ".tmp/put"} {
		var keys []string
		require.NoError(t, s.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			keys = append(keys, oi.Key)
			return nil
		}))
		for _, k := range keys {
			assert.Equal(t, ".tmpx", k, "prefix %q", prefix)
		}
	}
}

func TestSweepTemp(t *testing.T) {
	s := newStore(t)
	tmp := filepath.Join(s.Root(), fs.TempDir)
	old := time.Now().Add(-2 * time.Hour)
	for _, name := range []string{"put-old1", "put-old2"} {
		p := filepath.Join(tmp, name)
		require.NoError(t, os.WriteFile(p, []byte("stale"), 0o600))
		require.NoError(t, os.Chtimes(p, old, old))
	}
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "put-fresh"), []byte("in progress"), 0o600))

	n, err := s.SweepTemp(time.Hour)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, []string{"put-fresh"}, tempFiles(t, s))

	n, err = s.SweepTemp(0)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Empty(t, tempFiles(t, s))
}

// blockingReader hands out `first` bytes, signals, then waits for release.
type blockingReader struct {
	data    []byte
	first   int
	reached chan struct{}
	release chan struct{}
	pos     int
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.pos == b.first {
		close(b.reached)
		<-b.release
		b.first = -1
	}
	if b.pos >= len(b.data) {
		return 0, io.EOF
	}
	end := len(b.data)
	if b.first > b.pos && b.first < end {
		end = b.first
	}
	n := copy(p, b.data[b.pos:end])
	b.pos += n
	return n, nil
}

// TestObjectVisibleOnlyAfterRename holds a Put half-way: the object must
// not be visible (neither the new nor a partial one), the old one must be
// served, and the bytes must sit in a temp file.
func TestObjectVisibleOnlyAfterRename(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	_, err := s.Put(ctx, "x/y", strings.NewReader("old"), storage.PutOptions{Size: 3})
	require.NoError(t, err)

	data := storagetest.Pattern(1, 1<<20)
	for _, key := range []string{"x/y", "new/key"} {
		r := &blockingReader{data: data, first: 512 << 10, reached: make(chan struct{}), release: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			_, err := s.Put(ctx, key, r, storage.PutOptions{Size: -1})
			done <- err
		}()
		<-r.reached
		st, err := s.Stat(ctx, key)
		if key == "x/y" {
			require.NoError(t, err)
			assert.Equal(t, int64(3), st.Size, "old object must be served during the Put")
		} else {
			require.ErrorIs(t, err, storage.ErrNotFound)
			assert.NoDirExists(t, filepath.Join(s.Root(), "new"), "folders are created at rename time")
		}
		tmp := tempFiles(t, s)
		require.Len(t, tmp, 1)
		fi, err := os.Stat(filepath.Join(s.Root(), fs.TempDir, tmp[0]))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, fi.Size(), int64(256<<10), "bytes are streamed to the temp file")
		close(r.release)
		require.NoError(t, <-done)
		got, _, err := s.Get(ctx, key, nil)
		require.NoError(t, err)
		b, _ := io.ReadAll(got)
		got.Close()
		assert.True(t, bytes.Equal(data, b))
		assert.Empty(t, tempFiles(t, s))
	}
}

// TestCrashDuringPut kills a process in the middle of a Put (SIGKILL, no
// clean-up runs) and checks what a restart finds: the old object intact, no
// partial new one, a stale temp file that SweepTemp removes.
func TestCrashDuringPut(t *testing.T) {
	if os.Getenv("MOLAR_FS_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	root := filepath.Join(t.TempDir(), "objects")
	s, err := fs.New(root)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = s.Put(ctx, "p/obj", strings.NewReader("old"), storage.PutOptions{Size: 3})
	require.NoError(t, err)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringPut$")
	cmd.Env = append(os.Environ(), "MOLAR_FS_CRASH_CHILD="+root)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	// Wait until the child has written part of the object.
	buf := make([]byte, 64)
	n, err := stdout.Read(buf)
	require.NoError(t, err)
	require.Contains(t, string(buf[:n]), "streaming")
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()

	s, err = fs.New(root) // "restart"
	require.NoError(t, err)
	for _, key := range []string{"p/obj", "p/new"} {
		st, err := s.Stat(ctx, key)
		if key == "p/obj" {
			require.NoError(t, err)
			assert.Equal(t, int64(3), st.Size)
		} else {
			assert.ErrorIs(t, err, storage.ErrNotFound)
		}
	}
	require.Len(t, tempFiles(t, s), 2, "the killed Puts leave their temp files")
	n2, err := s.SweepTemp(0)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n2, 2, "the killed Puts' files and the spares")
	left, err := os.ReadDir(filepath.Join(root, fs.TempDir))
	require.NoError(t, err)
	assert.Empty(t, left)
	var keys []string
	require.NoError(t, s.List(ctx, "", func(oi storage.ObjectInfo) error { keys = append(keys, oi.Key); return nil }))
	assert.Equal(t, []string{"p/obj"}, keys)
}

// crashChild starts two Puts (an overwrite and a new key) that stall
// half-way, reports, and waits to be killed.
func crashChild() {
	s, err := fs.New(os.Getenv("MOLAR_FS_CRASH_CHILD"))
	if err != nil {
		panic(err)
	}
	ready := make(chan struct{}, 2)
	for _, key := range []string{"p/obj", "p/new"} {
		r := &blockingReader{data: storagetest.Pattern(2, 1<<20), first: 300 << 10, reached: make(chan struct{}), release: make(chan struct{})}
		go s.Put(context.Background(), key, r, storage.PutOptions{Size: -1})
		go func() { <-r.reached; ready <- struct{}{} }()
	}
	<-ready
	<-ready
	os.Stdout.WriteString("streaming\n")
	select {} // wait for SIGKILL
}

func TestDeleteRemovesEmptyFolders(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, k := range []string{"a/b/c/d", "a/x"} {
		_, err := s.Put(ctx, k, strings.NewReader("v"), storage.PutOptions{Size: 1})
		require.NoError(t, err)
	}
	require.NoError(t, s.Delete(ctx, "a/b/c/d"))
	assert.NoDirExists(t, filepath.Join(s.Root(), "a", "b"))
	assert.DirExists(t, filepath.Join(s.Root(), "a"), "a still holds a/x")
	require.NoError(t, s.Delete(ctx, "a/x"))
	assert.NoDirExists(t, filepath.Join(s.Root(), "a"))
	assert.DirExists(t, s.Root())
	assert.DirExists(t, filepath.Join(s.Root(), fs.TempDir))
}

func TestContentTypeNotKept(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	info, err := s.Put(ctx, "img.png", strings.NewReader("png"), storage.PutOptions{Size: 3, ContentType: "image/png"})
	require.NoError(t, err)
	assert.Equal(t, storage.DefaultContentType, info.ContentType)
	st, err := s.Stat(ctx, "img.png")
	require.NoError(t, err)
	assert.Equal(t, storage.DefaultContentType, st.ContentType)
}

func TestPingFailsWithoutRoot(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, os.RemoveAll(s.Root()))
	err := s.Ping(ctx)
	require.ErrorContains(t, err, "storage/fs: ping")
	// A Put must not silently recreate a vanished root (an unmounted volume).
	_, err = s.Put(ctx, "k", strings.NewReader("x"), storage.PutOptions{Size: 1})
	require.Error(t, err)
	assert.NoDirExists(t, s.Root())
	require.Error(t, s.List(ctx, "", func(storage.ObjectInfo) error { return nil }))
}

func TestNewRejectsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	_, err := fs.New(p)
	require.ErrorContains(t, err, "storage/fs:")
	_, err = fs.New("")
	require.Error(t, err)
}

func BenchmarkPut(b *testing.B) {
	storagetest.BenchPutSizes(b, newStore(b))
}
