package s3_test

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/s3"
	"github.com/molar-health/molar/storage/storagetest"
)

type server struct{ endpoint, access, secret string }

func startServer(t testing.TB) server {
	t.Helper()
	e, a, s := storagetest.StartVersityGW(t)
	return server{e, a, s}
}

func (srv server) config(bucket string) s3.Config {
	return s3.Config{Endpoint: srv.endpoint, Bucket: bucket, AccessKey: srv.access, SecretKey: srv.secret}
}

// newStore opens a store on a fresh bucket.
func (srv server) newStore(t testing.TB) *s3.Store {
	t.Helper()
	s, err := s3.New(context.Background(), srv.config(storagetest.RandomBucket()))
	require.NoError(t, err)
	return s
}

// rawClient talks to the server directly, to check what the store did.
func (srv server) rawClient(t testing.TB) *minio.Client {
	c, err := minio.New(srv.endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.access, srv.secret, "")})
	require.NoError(t, err)
	return c
}

func TestConformance(t *testing.T) {
	srv := startServer(t)
	storagetest.Run(t, func(t *testing.T) storage.ObjectStore { return srv.newStore(t) })
}

func TestNewCreatesBucket(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	bucket := storagetest.RandomBucket()
	raw := srv.rawClient(t)
	ok, err := raw.BucketExists(ctx, bucket)
	require.NoError(t, err)
	require.False(t, ok)

	s, err := s3.New(ctx, srv.config(bucket))
	require.NoError(t, err)
	ok, err = raw.BucketExists(ctx, bucket)
	require.NoError(t, err)
	require.True(t, ok, "New must create the bucket")
	_, err = s.Put(ctx, "k", strings.NewReader("v"), storage.PutOptions{Size: 1})
	require.NoError(t, err)

	// Opening an existing bucket keeps its objects.
	s2, err := s3.New(ctx, srv.config(bucket))
	require.NoError(t, err)
	st, err := s2.Stat(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Size)
}

func requireOneLine(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, "storage/s3: "), "prefix: %s", msg)
	assert.NotContains(t, msg, "\n")
	assert.NotContains(t, msg, "goroutine")
}

func TestUnreachableEndpoint(t *testing.T) {
	// A loopback port that nobody listens on (any more).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()

	start := time.Now()
	_, err = s3.New(context.Background(), s3.Config{Endpoint: addr, Bucket: "molar", AccessKey: "a", SecretKey: "b"})
	elapsed := time.Since(start)
	require.Error(t, err)
	requireOneLine(t, err)
	assert.Contains(t, err.Error(), "cannot reach "+addr)
	assert.Contains(t, err.Error(), "connection refused")
	assert.Less(t, elapsed, 5*time.Second, "an unreachable server must be reported quickly")
	t.Logf("error after %v: %v", elapsed.Round(time.Millisecond), err)
}

func TestWrongCredentials(t *testing.T) {
	srv := startServer(t)
	for name, cfg := range map[string]s3.Config{
		"secret": {Endpoint: srv.endpoint, Bucket: storagetest.RandomBucket(), AccessKey: srv.access, SecretKey: "wrong-secret"},
		"access": {Endpoint: srv.endpoint, Bucket: storagetest.RandomBucket(), AccessKey: "nobody", SecretKey: srv.secret},
	} {
		start := time.Now()
		_, err := s3.New(context.Background(), cfg)
		require.Error(t, err, name)
		requireOneLine(t, err)
		assert.Contains(t, err.Error(), "refused the credentials", name)
		assert.Less(t, time.Since(start), 5*time.Second, name)
		t.Logf("%s: %v", name, err)
	}
}

func TestConfigValidation(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]s3.Config{
		"no endpoint":       {Bucket: "molar"},
		"bad bucket":        {Endpoint: "127.0.0.1:1", Bucket: "Bad_Bucket"},
		"small part":        {Endpoint: "127.0.0.1:1", Bucket: "molar", PartSize: 1 << 20},
		"scheme vs UseTLS":  {Endpoint: "https://127.0.0.1:1", Bucket: "molar"},
		"path in endpoint":  {Endpoint: "127.0.0.1:1/x", Bucket: "molar"},
		"http with UseTLS":  {Endpoint: "http://127.0.0.1:1", Bucket: "molar", UseTLS: true},
		"empty bucket name": {Endpoint: "127.0.0.1:1"},
	} {
		_, err := s3.New(ctx, cfg)
		require.Error(t, err, name)
		requireOneLine(t, err)
		assert.NotContains(t, err.Error(), "cannot reach", "%s: must fail before any request", name)
	}
}

func TestContentTypeKept(t *testing.T) {
	srv := startServer(t)
	s := srv.newStore(t)
	ctx := context.Background()
	for _, size := range []int64{3, -1} {
		info, err := s.Put(ctx, "img.png", strings.NewReader("png"), storage.PutOptions{Size: size, ContentType: "image/png"})
		require.NoError(t, err)
		assert.Equal(t, "image/png", info.ContentType)
		st, err := s.Stat(ctx, "img.png")
		require.NoError(t, err)
		assert.Equal(t, "image/png", st.ContentType)
		rc, gi, err := s.Get(ctx, "img.png", &storage.Range{Offset: 1, Length: 1})
		require.NoError(t, err)
		rc.Close()
		assert.Equal(t, "image/png", gi.ContentType)
	}
}

// TestFailedPutAbortsUpload checks that a multipart upload cut by a failing
// reader or a cancelled context is aborted, not left to hold space.
func TestFailedPutAbortsUpload(t *testing.T) {
	srv := startServer(t)
	bucket := storagetest.RandomBucket()
	s, err := s3.New(context.Background(), srv.config(bucket))
	require.NoError(t, err)

	_, err = s.Put(context.Background(), "big", &failAfter{r: storagetest.NewPatternReader(1, 40<<20), n: 20 << 20}, storage.PutOptions{Size: -1})
	require.Error(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfter{r: storagetest.NewPatternReader(2, 40<<20), n: 20 << 20, cancel: cancel}
	_, err = s.Put(ctx, "big2", r, storage.PutOptions{Size: 40 << 20})
	require.ErrorIs(t, err, context.Canceled)

	var uploads []string
	for u := range srv.rawClient(t).ListIncompleteUploads(context.Background(), bucket, "", true) {
		require.NoError(t, u.Err)
		uploads = append(uploads, u.Key+" "+u.UploadID)
	}
	assert.Empty(t, uploads, "failed Puts left multipart uploads behind")
}

type failAfter struct {
	r    *storagetest.PatternReader
	n    int64
	read int64
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.read >= f.n {
		return 0, assert.AnError
	}
	n, err := f.r.Read(p)
	f.read += int64(n)
	return n, err
}

type cancelAfter struct {
	r      *storagetest.PatternReader
	n      int64
	read   int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.read >= c.n {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

// TestUnknownSizeMemoryBounded streams 64 MiB of unknown length; with
// minio-go's default (size -1) it would allocate a ~537 MiB part buffer.
func TestUnknownSizeMemoryBounded(t *testing.T) {
	srv := startServer(t)
	s := srv.newStore(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := s.Put(context.Background(), "stream", storagetest.NewPatternReader(3, 64<<20), storage.PutOptions{Size: -1})
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d MiB for a 64 MiB stream", alloc>>20)
	assert.Less(t, alloc, uint64(64<<20), "allocations must not grow with the object (one 16 MiB part buffer)")
	st, err := s.Stat(context.Background(), "stream")
	require.NoError(t, err)
	assert.Equal(t, int64(64<<20), st.Size)
}

func TestPingMissingBucket(t *testing.T) {
	srv := startServer(t)
	bucket := storagetest.RandomBucket()
	s, err := s3.New(context.Background(), srv.config(bucket))
	require.NoError(t, err)
	require.NoError(t, s.Ping(context.Background()))
	require.NoError(t, srv.rawClient(t).RemoveBucket(context.Background(), bucket))
	err = s.Ping(context.Background())
	require.ErrorContains(t, err, "does not exist")
	requireOneLine(t, err)
	// (Stat cannot tell: a HEAD answer has no body to name the error.)
	_, _, err = s.Get(context.Background(), "k", nil)
	require.ErrorContains(t, err, "does not exist")
	assert.NotErrorIs(t, err, storage.ErrNotFound, "a missing bucket is not a missing object")
}

func BenchmarkPut(b *testing.B) {
	srv := startServer(b)
	storagetest.BenchPutSizes(b, srv.newStore(b))
}
