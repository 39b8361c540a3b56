// Package storagetest holds the conformance suite that every
// storage.ObjectStore passes, a helper that starts a real S3 server
// (versitygw) for tests, and a Put benchmark.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage"
)

// Run runs the conformance suite. newStore must return a fresh, empty store
// for each call; it is called once per subtest, and subtests run in
// parallel.
func Run(t *testing.T, newStore func(t *testing.T) storage.ObjectStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.ObjectStore)
	}{
		{"RoundTrip", testRoundTrip},
		{"RoundTripLargeStream", testRoundTripLargeStream},
		{"ContentType", testContentType},
		{"Range", testRange},
		{"RangeEmptyObject", testRangeEmptyObject},
		{"Stat", testStat},
		{"Overwrite", testOverwrite},
		{"Derived", testDerived},
		{"Delete", testDelete},
		{"List", testList},
		{"ListStops", testListStops},
		{"InvalidKeys", testInvalidKeys},
		{"FailedPut", testFailedPut},
		{"CancelledContext", testCancelledContext},
		{"CancelDuringPut", testCancelDuringPut},
		{"ConcurrentPutsDifferentKeys", testConcurrentDifferentKeys},
		{"ConcurrentPutsSameKey", testConcurrentSameKey},
		{"NotFound", testNotFound},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// ---- readers ----

// Pattern returns n deterministic pseudo-random bytes derived from seed.
func Pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	NewPatternReader(seed, int64(n)).Read(b)
	return b
}

// PatternReader streams deterministic pseudo-random bytes. It is neither a
// Seeker nor a WriterTo, like a network stream, and hashes what it hands out.
type PatternReader struct {
	state uint64
	left  int64
	h     hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

// NewPatternReader returns a reader of n bytes.
func NewPatternReader(seed uint64, n int64) *PatternReader {
	return &PatternReader{state: seed*0x9E3779B97F4A7C15 | 1, left: n, h: sha256.New()}
}

func (p *PatternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	x := p.state
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 24)
	}
	p.state = x
	p.left -= int64(len(b))
	p.h.Write(b)
	return len(b), nil
}

// Sum returns the SHA-256 of the bytes read so far.
func (p *PatternReader) Sum() []byte { return p.h.Sum(nil) }

var errBoom = errors.New("storagetest: reader failed on purpose")

// failingReader yields n bytes of data, then fails.
type failingReader struct{ r io.Reader }

func newFailingReader(n int64) io.Reader {
	return &failingReader{io.LimitReader(NewPatternReader(7, n), n)}
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBoom
	}
	return n, err
}

// onlyReader hides all methods but Read.
type onlyReader struct{ io.Reader }

// ---- assertions ----

func put(t *testing.T, s storage.ObjectStore, key string, data []byte) storage.ObjectInfo {
	t.Helper()
	info, err := s.Put(context.Background(), key, onlyReader{bytes.NewReader(data)}, storage.PutOptions{Size: int64(len(data))})
	require.NoError(t, err, "put %q", key)
	return info
}

func get(t *testing.T, s storage.ObjectStore, key string, rng *storage.Range) ([]byte, storage.ObjectInfo) {
	t.Helper()
	rc, info, err := s.Get(context.Background(), key, rng)
	require.NoError(t, err, "get %q %+v", key, rng)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err, "read %q", key)
	return b, info
}

// requireContent checks that key holds exactly want.
func requireContent(t *testing.T, s storage.ObjectStore, key string, want []byte) {
	t.Helper()
	got, info := get(t, s, key, nil)
	require.Equal(t, len(want), len(got), "length of %q", key)
	require.True(t, bytes.Equal(want, got), "content of %q differs", key)
	require.Equal(t, int64(len(want)), info.Size, "Get info size of %q", key)
	st, err := s.Stat(context.Background(), key)
	require.NoError(t, err)
	require.Equal(t, int64(len(want)), st.Size, "Stat size of %q", key)
}

func requireMissing(t *testing.T, s storage.ObjectStore, key string) {
	t.Helper()
	_, err := s.Stat(context.Background(), key)
	require.ErrorIs(t, err, storage.ErrNotFound, "stat %q", key)
	_, _, err = s.Get(context.Background(), key, nil)
	require.ErrorIs(t, err, storage.ErrNotFound, "get %q", key)
}

func listKeys(t *testing.T, s storage.ObjectStore, prefix string) []string {
	t.Helper()
	keys := []string{}
	err := s.List(context.Background(), prefix, func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	require.NoError(t, err, "list %q", prefix)
	return keys
}

func requireRecent(t *testing.T, m time.Time, what string) {
	t.Helper()
	require.False(t, m.IsZero(), "%s: zero Modified", what)
	require.WithinDuration(t, time.Now(), m, 5*time.Minute, "%s: Modified", what)
}

// ---- tests ----

func testRoundTrip(t *testing.T, s storage.ObjectStore) {
	ctx := context.Background()
	cases := []struct {
		name  string
		key   string
		data  []byte
		known bool
	}{
		{"small", "small.txt", []byte("hello, molar"), true},
		{"small unknown size", "a/small-unknown", []byte("hello, unknown size"), false},
		{"empty", "empty", []byte{}, true},
		{"empty unknown size", "dir/empty-unknown", []byte{}, false},
		{"one byte", "one", []byte{0}, true},
		{"all byte values", "bin/all", func() []byte {
			b := make([]byte, 256*4)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}(), true},
		{"1 MiB", "instances/1.2.3/4.5.6.dcm", Pattern(1, 1<<20), true},
		{"1 MiB unknown size", "instances/1.2.3/4.5.7.dcm", Pattern(2, 1<<20), false},
		{"deep non-ASCII", "børn/æble/ø/å/x.png", []byte("æøå"), true},
	}
	for _, c := range cases {
		size := int64(len(c.data))
		if !c.known {
			size = -1
		}
		info, err := s.Put(ctx, c.key, onlyReader{bytes.NewReader(c.data)}, storage.PutOptions{Size: size})
		require.NoError(t, err, c.name)
		assert.Equal(t, c.key, info.Key, c.name)
		assert.Equal(t, int64(len(c.data)), info.Size, c.name)
		requireRecent(t, info.Modified, c.name+": Put")

		got, ginfo := get(t, s, c.key, nil)
		assert.True(t, bytes.Equal(c.data, got), "%s: content differs (got %d bytes, want %d)", c.name, len(got), len(c.data))
		assert.Equal(t, c.key, ginfo.Key, c.name)
		assert.Equal(t, int64(len(c.data)), ginfo.Size, c.name)

		st, err := s.Stat(ctx, c.key)
		require.NoError(t, err, c.name)
		assert.Equal(t, c.key, st.Key, c.name)
		assert.Equal(t, int64(len(c.data)), st.Size, c.name)
		requireRecent(t, st.Modified, c.name+": Stat")
	}
}

func testRoundTripLargeStream(t *testing.T, s storage.ObjectStore) {
	const size = 20 << 20
	ctx := context.Background()
	src := NewPatternReader(42, size)
	info, err := s.Put(ctx, "big/stream.bin", src, storage.PutOptions{Size: -1})
	require.NoError(t, err)
	require.Equal(t, int64(size), info.Size)

	rc, ginfo, err := s.Get(ctx, "big/stream.bin", nil)
	require.NoError(t, err)
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	require.NoError(t, err)
	require.Equal(t, int64(size), n)
	require.Equal(t, int64(size), ginfo.Size)
	require.Equal(t, src.Sum(), h.Sum(nil), "content differs")

	// A range across a multipart boundary (16 MiB) of the streamed object.
	want := Pattern(42, size)[16<<20-10 : 16<<20+10]
	got, _ := get(t, s, "big/stream.bin", &storage.Range{Offset: 16<<20 - 10, Length: 20})
	require.Equal(t, want, got)
}

func testContentType(t *testing.T, s storage.ObjectStore) {
	ctx := context.Background()
	// Given: reported as given by stores that keep it, else the default.
	info, err := s.Put(ctx, "typed.png", strings.NewReader("png"), storage.PutOptions{Size: 3, ContentType: "image/png"})
	require.NoError(t, err)
	assert.Contains(t, []string{"image/png", storage.DefaultContentType}, info.ContentType)
	st, err := s.Stat(ctx, "typed.png")
	require.NoError(t, err)
	assert.Equal(t, info.ContentType, st.ContentType, "Put and Stat disagree")
	_, ginfo := get(t, s, "typed.png", nil)
	assert.Equal(t, info.ContentType, ginfo.ContentType, "Put and Get disagree")

	// Not given: the default everywhere.
	info, err = s.Put(ctx, "untyped", strings.NewReader("x"), storage.PutOptions{Size: -1})
	require.NoError(t, err)
	assert.Equal(t, storage.DefaultContentType, info.ContentType)
	st, err = s.Stat(ctx, "untyped")
	require.NoError(t, err)
	assert.Equal(t, storage.DefaultContentType, st.ContentType)

	// List leaves it empty.
	err = s.List(ctx, "", func(oi storage.ObjectInfo) error {
		assert.Empty(t, oi.ContentType, "List ContentType of %q", oi.Key)
		return nil
	})
	require.NoError(t, err)
}

func testRange(t *testing.T, s storage.ObjectStore) {
	const size = 1000
	data := Pattern(3, size)
	put(t, s, "r/obj", data)
	ok := []struct {
		name string
		rng  storage.Range
		want []byte
	}{
		{"start", storage.Range{Offset: 0, Length: 10}, data[:10]},
		{"first byte", storage.Range{Offset: 0, Length: 1}, data[:1]},
		{"middle", storage.Range{Offset: 400, Length: 100}, data[400:500]},
		{"to end", storage.Range{Offset: 990, Length: -1}, data[990:]},
		{"whole", storage.Range{Offset: 0, Length: -1}, data},
		{"last byte", storage.Range{Offset: size - 1, Length: 1}, data[size-1:]},
		{"length past end is cut", storage.Range{Offset: 990, Length: 100}, data[990:]},
		{"huge length", storage.Range{Offset: 10, Length: math.MaxInt64}, data[10:]},
	}
	for _, c := range ok {
		got, info := get(t, s, "r/obj", &c.rng)
		assert.Equal(t, c.want, got, c.name)
		assert.Equal(t, int64(size), info.Size, "%s: info.Size must be the whole object's", c.name)
	}
	bad := []struct {
		name string
		rng  storage.Range
	}{
		{"offset at end", storage.Range{Offset: size, Length: -1}},
		{"offset at end with length", storage.Range{Offset: size, Length: 1}},
		{"offset past end", storage.Range{Offset: 2 * size, Length: 10}},
		{"negative offset", storage.Range{Offset: -1, Length: 10}},
		{"zero length", storage.Range{Offset: 0, Length: 0}},
		{"length below -1", storage.Range{Offset: 5, Length: -2}},
	}
	for _, c := range bad {
		rc, _, err := s.Get(context.Background(), "r/obj", &c.rng)
		if rc != nil {
			rc.Close()
		}
		assert.ErrorIs(t, err, storage.ErrInvalidRange, c.name)
	}
	// A missing key is "not found", whatever the range.
	_, _, err := s.Get(context.Background(), "r/missing", &storage.Range{Offset: 0, Length: 10})
	assert.ErrorIs(t, err, storage.ErrNotFound)
	_, _, err = s.Get(context.Background(), "r/missing", &storage.Range{Offset: 5000, Length: 10})
	assert.ErrorIs(t, err, storage.ErrNotFound)
}

func testRangeEmptyObject(t *testing.T, s storage.ObjectStore) {
	put(t, s, "empty", nil)
	got, info := get(t, s, "empty", &storage.Range{Offset: 0, Length: -1})
	assert.Empty(t, got)
	assert.Equal(t, int64(0), info.Size)
	for _, rng := range []storage.Range{{Offset: 0, Length: 1}, {Offset: 1, Length: -1}} {
		rc, _, err := s.Get(context.Background(), "empty", &rng)
		if rc != nil {
			rc.Close()
		}
		assert.ErrorIs(t, err, storage.ErrInvalidRange, "%+v", rng)
	}
}

func testStat(t *testing.T, s storage.ObjectStore) {
	ctx := context.Background()
	_, err := s.Stat(ctx, "s/missing")
	require.ErrorIs(t, err, storage.ErrNotFound)
	before := time.Now().Add(-2 * time.Second) // S3 times have whole seconds
	put(t, s, "s/a/b/c.bin", Pattern(4, 12345))
	st, err := s.Stat(ctx, "s/a/b/c.bin")
	require.NoError(t, err)
	assert.Equal(t, "s/a/b/c.bin", st.Key)
	assert.Equal(t, int64(12345), st.Size)
	assert.False(t, st.Modified.Before(before), "Modified %v before the Put at %v", st.Modified, before)
	requireRecent(t, st.Modified, "Stat")
}

func testOverwrite(t *testing.T, s storage.ObjectStore) {
	long, short, longer := Pattern(5, 100<<10), []byte("short"), Pattern(6, 300<<10)
	put(t, s, "o/key", long)
	requireContent(t, s, "o/key", long)
	put(t, s, "o/key", short)
	requireContent(t, s, "o/key", short)
	info, err := s.Put(context.Background(), "o/key", onlyReader{bytes.NewReader(longer)}, storage.PutOptions{Size: -1})
	require.NoError(t, err)
	assert.Equal(t, int64(len(longer)), info.Size)
	requireContent(t, s, "o/key", longer)
	put(t, s, "o/key", nil)
	requireContent(t, s, "o/key", nil)
	assert.Equal(t, []string{"o/key"}, listKeys(t, s, ""))
}

// testDerived: a derived object (no durability asked for) is stored, read,
// replaced and listed like any other.
func testDerived(t *testing.T, s storage.ObjectStore) {
	ctx := context.Background()
	first, second := Pattern(7, 70<<10), Pattern(8, 3<<10)
	for _, body := range [][]byte{first, second} {
		info, err := s.Put(ctx, "thumbs/x/128.jpg", bytes.NewReader(body), storage.PutOptions{Size: int64(len(body)), ContentType: "image/jpeg", Derived: true})
		require.NoError(t, err)
		assert.Equal(t, int64(len(body)), info.Size)
		requireContent(t, s, "thumbs/x/128.jpg", body)
	}
	_, err := s.Put(ctx, "thumbs/x/512.jpg", bytes.NewReader(first[:10]), storage.PutOptions{Size: 11, Derived: true})
	require.Error(t, err, "a short stream fails a derived Put too")
	requireMissing(t, s, "thumbs/x/512.jpg")
	assert.Equal(t, []string{"thumbs/x/128.jpg"}, listKeys(t, s, ""))
}

func testDelete(t *testing.T, s storage.ObjectStore) {
	ctx := context.Background()
	put(t, s, "d/e/f", []byte("f"))
	put(t, s, "d/e/g", []byte("g"))
	put(t, s, "d/h", []byte("h"))

	require.NoError(t, s.Delete(ctx, "d/e/f"))
	requireMissing(t, s, "d/e/f")
	assert.Equal(t, []string{"d/e/g", "d/h"}, listKeys(t, s, ""))

	require.NoError(t, s.Delete(ctx, "d/e/f"), "second delete")
	require.NoError(t, s.Delete(ctx, "never/existed"), "delete of a missing key")
	// A "folder" of other keys is not an object: deleting it is a no-op.
	require.NoError(t, s.Delete(ctx, "d/e"))
	requireContent(t, s, "d/e/g", []byte("g"))

	// Emptying a folder and writing into it again works.
	require.NoError(t, s.Delete(ctx, "d/e/g"))
	require.NoError(t, s.Delete(ctx, "d/h"))
	assert.Empty(t, listKeys(t, s, ""))
	put(t, s, "d/e/f", []byte("again"))
	requireContent(t, s, "d/e/f", []byte("again"))
}

// listKeySet has no key that is a folder of another key ("a" and "a/b"),
// which the filesystem store cannot hold.
var listKeySet = []string{
	"x/a-b", "x/a.b", "x/a/b", "x/a/c/d", "x/a/c/e", "x/b", "x0", "xa",
	"y/z", "Z", "æ/ø", "instances/1.2.3/1.dcm", "instances/1.2.3/2.dcm",
	"instances/1.2.30/1.dcm", "instances/1.2/9.dcm",
}

func testList(t *testing.T, s storage.ObjectStore) {
	assert.Empty(t, listKeys(t, s, ""), "new store")
	for _, k := range listKeySet {
		put(t, s, k, []byte(k))
	}
	sorted := slices.Clone(listKeySet)
	slices.Sort(sorted) // byte-wise
	prefixes := []string{
		"", "x", "x/", "x/a", "x/a/", "x/a/c", "x/a/c/d", "x/a-", "xa", "y/z/",
		"æ", "æ/", "instances/1.2", "instances/1.2.3", "instances/1.2.3/", "instances/1.2/",
		"nope", "nope/", "/", "x//", "../x", "Z",
	}
	for _, p := range prefixes {
		want := []string{}
		for _, k := range sorted {
			if strings.HasPrefix(k, p) {
				want = append(want, k)
			}
		}
		var got []string
		err := s.List(context.Background(), p, func(oi storage.ObjectInfo) error {
			got = append(got, oi.Key)
			assert.Equal(t, int64(len(oi.Key)), oi.Size, "size of %q", oi.Key)
			requireRecent(t, oi.Modified, oi.Key)
			return nil
		})
		require.NoError(t, err, "prefix %q", p)
		if got == nil {
			got = []string{}
		}
		assert.Equal(t, want, got, "prefix %q", p)
	}
}

func testListStops(t *testing.T, s storage.ObjectStore) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("k/%d", i), []byte{byte(i)})
	}
	errStop := errors.New("stop")
	calls := 0
	err := s.List(context.Background(), "k/", func(storage.ObjectInfo) error {
		calls++
		if calls == 2 {
			return errStop
		}
		return nil
	})
	require.ErrorIs(t, err, errStop)
	assert.Equal(t, 2, calls)
}

// InvalidKeys are rejected by every store with storage.ErrInvalidKey.
var InvalidKeys = []string{
	"", "/abs", "/", "dir/", "a//b", ".", "..", "../x", "a/../b", "a/..", "./a", "a/./b",
	`a\b`, `\x`, "a\x00b", "a\nb", "tab\tkey", "del\x7f", "\xff\xfe", strings.Repeat("k", storage.MaxKeyLen+1),
	strings.Repeat("s", 256) + "/x",
}

func testInvalidKeys(t *testing.T, s storage.ObjectStore) {
	ctx := context.Background()
	for _, k := range InvalidKeys {
		name := fmt.Sprintf("%.40q", k)
		_, err := s.Put(ctx, k, strings.NewReader("x"), storage.PutOptions{Size: 1})
		assert.ErrorIs(t, err, storage.ErrInvalidKey, "put %s", name)
		_, _, err = s.Get(ctx, k, nil)
		assert.ErrorIs(t, err, storage.ErrInvalidKey, "get %s", name)
		_, err = s.Stat(ctx, k)
		assert.ErrorIs(t, err, storage.ErrInvalidKey, "stat %s", name)
		assert.ErrorIs(t, s.Delete(ctx, k), storage.ErrInvalidKey, "delete %s", name)
	}
	assert.Empty(t, listKeys(t, s, ""), "invalid keys created objects")
	// The longest valid key and segment are accepted.
	long := strings.Repeat("s", 255) + "/" + strings.Repeat("t", 255)
	put(t, s, long, []byte("ok"))
	requireContent(t, s, long, []byte("ok"))
}

func testFailedPut(t *testing.T, s storage.ObjectStore) {
	old := []byte("the old object")
	cases := []struct {
		name string
		r    func() io.Reader
		size int64
	}{
		{"reader fails, known size", func() io.Reader { return newFailingReader(1 << 10) }, 64 << 10},
		{"reader fails, unknown size", func() io.Reader { return newFailingReader(100 << 10) }, -1},
		{"reader fails at once", func() io.Reader { return newFailingReader(0) }, -1},
		{"reader fails after 18 MiB, unknown size", func() io.Reader { return newFailingReader(18 << 20) }, -1},
		{"reader fails after 18 MiB, known size", func() io.Reader { return newFailingReader(18 << 20) }, 20 << 20},
		{"stream shorter than size", func() io.Reader { return strings.NewReader("12345") }, 10},
		{"stream longer than size", func() io.Reader { return strings.NewReader("1234567890") }, 5},
		{"empty stream, size 1", func() io.Reader { return strings.NewReader("") }, 1},
		{"one byte too many, 1 MiB", func() io.Reader { return onlyReader{bytes.NewReader(Pattern(8, 1<<20+1))} }, 1 << 20},
		{"one byte too many, 20 MiB", func() io.Reader { return NewPatternReader(8, 20<<20+1) }, 20 << 20},
		{"one byte short, 20 MiB", func() io.Reader { return NewPatternReader(8, 20<<20-1) }, 20 << 20},
	}
	for i, c := range cases {
		fresh := fmt.Sprintf("fail/new-%d", i)
		_, err := s.Put(context.Background(), fresh, c.r(), storage.PutOptions{Size: c.size})
		require.Error(t, err, c.name)
		if strings.HasPrefix(c.name, "reader fails") {
			assert.ErrorIs(t, err, errBoom, c.name)
		}
		requireMissing(t, s, fresh)

		existing := fmt.Sprintf("fail/old-%d", i)
		put(t, s, existing, old)
		_, err = s.Put(context.Background(), existing, c.r(), storage.PutOptions{Size: c.size})
		require.Error(t, err, c.name)
		requireContent(t, s, existing, old)
	}
	want := []string{}
	for i := range cases {
		want = append(want, fmt.Sprintf("fail/old-%d", i))
	}
	slices.Sort(want)
	assert.Equal(t, want, listKeys(t, s, ""), "only the old objects exist")
}

func testCancelledContext(t *testing.T, s storage.ObjectStore) {
	put(t, s, "c/key", []byte("kept"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Put(ctx, "c/key", strings.NewReader("new"), storage.PutOptions{Size: 3})
	assert.ErrorIs(t, err, context.Canceled, "put")
	_, err = s.Put(ctx, "c/other", strings.NewReader("new"), storage.PutOptions{Size: -1})
	assert.ErrorIs(t, err, context.Canceled, "put new")
	_, _, err = s.Get(ctx, "c/key", nil)
	assert.ErrorIs(t, err, context.Canceled, "get")
	_, err = s.Stat(ctx, "c/key")
	assert.ErrorIs(t, err, context.Canceled, "stat")
	assert.ErrorIs(t, s.Delete(ctx, "c/key"), context.Canceled, "delete")
	assert.ErrorIs(t, s.List(ctx, "", func(storage.ObjectInfo) error { return nil }), context.Canceled, "list")
	requireContent(t, s, "c/key", []byte("kept"))
	requireMissing(t, s, "c/other")
}

// cancellingReader streams data and calls cancel after `after` bytes, then
// keeps streaming.
type cancellingReader struct {
	r      io.Reader
	after  int64
	read   int64
	cancel func()
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}

// stallingReader hands out `after` bytes, then blocks until ctx is done
// before handing out more: a client that went quiet.
type stallingReader struct {
	ctx   context.Context
	r     io.Reader
	after int64
	read  int64
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.read >= s.after {
		<-s.ctx.Done()
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	return n, err
}

func testCancelDuringPut(t *testing.T, s storage.ObjectStore) {
	const total = 24 << 20
	for _, size := range []int64{-1, total} {
		for _, after := range []int64{256 << 10, 17 << 20} {
			name := fmt.Sprintf("size %d, cancel after %d", size, after)
			key := fmt.Sprintf("cancel/%d-%d", size, after)
			put(t, s, key, []byte("old"))
			ctx, cancel := context.WithCancel(context.Background())
			r := &cancellingReader{r: NewPatternReader(9, total), after: after, cancel: cancel}
			_, err := s.Put(ctx, key, r, storage.PutOptions{Size: size})
			cancel()
			require.ErrorIs(t, err, context.Canceled, name)
			requireContent(t, s, key, []byte("old"))
		}
	}
	// Deadline passes while the client is quiet.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := &stallingReader{ctx: ctx, r: NewPatternReader(10, 1<<20), after: 64 << 10}
	_, err := s.Put(ctx, "cancel/deadline", r, storage.PutOptions{Size: -1})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	requireMissing(t, s, "cancel/deadline")
}

func testConcurrentDifferentKeys(t *testing.T, s storage.ObjectStore) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := Pattern(uint64(100+i), 64<<10+i)
			size := int64(len(data))
			if i%2 == 1 {
				size = -1
			}
			_, errs[i] = s.Put(context.Background(), fmt.Sprintf("par/%d/obj", i), onlyReader{bytes.NewReader(data)}, storage.PutOptions{Size: size})
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "put %d", i)
		requireContent(t, s, fmt.Sprintf("par/%d/obj", i), Pattern(uint64(100+i), 64<<10+i))
	}
	assert.Len(t, listKeys(t, s, "par/"), n)
}

func testConcurrentSameKey(t *testing.T, s storage.ObjectStore) {
	const writers = 6
	// Writer i writes byte 'a'+i, with a length of its own, so a mixed or
	// cut object shows as a wrong byte or a wrong length.
	value := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 200<<10+i*1111) }
	check := func(b []byte) error {
		if len(b) == 0 {
			return errors.New("empty object")
		}
		i := int(b[0] - 'a')
		if i < 0 || i >= writers {
			return fmt.Errorf("unknown first byte %q", b[0])
		}
		if !bytes.Equal(b, value(i)) {
			return fmt.Errorf("object is not writer %d's value (len %d, want %d)", i, len(b), len(value(i)))
		}
		return nil
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	readErr := make(chan error, 1)
	wg.Go(func() { // a reader that must only ever see whole values
		for {
			select {
			case <-done:
				return
			default:
			}
			rc, _, err := s.Get(context.Background(), "same/key", nil)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err == nil {
				var b []byte
				b, err = io.ReadAll(rc)
				rc.Close()
				if err == nil {
					err = check(b)
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	})
	var puts sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		puts.Go(func() {
			for round := range 3 {
				size := int64(len(value(i)))
				if (i+round)%2 == 0 {
					size = -1
				}
				if _, err := s.Put(context.Background(), "same/key", onlyReader{bytes.NewReader(value(i))}, storage.PutOptions{Size: size}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	puts.Wait()
	close(done)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "writer %d", i)
	}
	select {
	case err := <-readErr:
		t.Fatalf("concurrent reader: %v", err)
	default:
	}
	got, _ := get(t, s, "same/key", nil)
	require.NoError(t, check(got))
	assert.Equal(t, []string{"same/key"}, listKeys(t, s, ""))
}

func testNotFound(t *testing.T, s storage.ObjectStore) {
	ctx := context.Background()
	put(t, s, "nf/folder/obj", []byte("x"))
	for _, k := range []string{"nf/missing", "missing", "nf/folder", "nf", "nf/folder/obj/below", "nf/folder/ob"} {
		_, err := s.Stat(ctx, k)
		assert.ErrorIs(t, err, storage.ErrNotFound, "stat %q", k)
		assert.NotErrorIs(t, err, storage.ErrInvalidKey, "stat %q", k)
		rc, _, err := s.Get(ctx, k, nil)
		if rc != nil {
			rc.Close()
		}
		assert.ErrorIs(t, err, storage.ErrNotFound, "get %q", k)
	}
}

func testPing(t *testing.T, s storage.ObjectStore) {
	require.NoError(t, s.Ping(context.Background()))
}
