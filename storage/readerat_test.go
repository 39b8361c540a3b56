package storage_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage"
	fsstore "github.com/molar-health/molar/storage/fs"
)

func TestReaderAtMatchesTheObject(t *testing.T) {
	st, err := fsstore.New(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	data := make([]byte, 1<<20+123)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	_, err = st.Put(ctx, "a/b.dcm", bytes.NewReader(data), storage.PutOptions{Size: int64(len(data))})
	require.NoError(t, err)
	r := storage.NewReaderAt(ctx, st, "a/b.dcm", int64(len(data)), 4096, 3)
	for i := 0; i < 500; i++ {
		off := rng.Int64N(int64(len(data)))
		n := rng.IntN(20000)
		buf := make([]byte, n)
		got, err := r.ReadAt(buf, off)
		want := min(int64(n), int64(len(data))-off)
		require.Equal(t, int(want), got)
		if int64(n) > want {
			require.ErrorIs(t, err, io.EOF)
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, data[off:off+want], buf[:got])
	}
	_, err = r.ReadAt(make([]byte, 1), int64(len(data)))
	require.ErrorIs(t, err, io.EOF)
	// A section reader over it streams the whole object.
	all, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	require.NoError(t, err)
	require.Equal(t, data, all)
}

// shortStore's Get sends only half of what was asked for, as a store whose
// connection is cut does.
type shortStore struct{ storage.ObjectStore }

func (s shortStore) Get(ctx context.Context, key string, rng *storage.Range) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := s.ObjectStore.Get(ctx, key, rng)
	if err != nil {
		return nil, info, err
	}
	n := info.Size / 2
	if rng != nil {
		n = rng.Length / 2
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, n), rc}, info, nil
}

// TestReaderAtShortBodyIsNotTheEnd: a store that sends less than the range
// asked for is a fault of the store, never the end of the object (which a
// decoder would take for a truncated file, for good).
func TestReaderAtShortBodyIsNotTheEnd(t *testing.T) {
	st, err := fsstore.New(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	data := bytes.Repeat([]byte("molar"), 10000)
	_, err = st.Put(ctx, "a/c.dcm", bytes.NewReader(data), storage.PutOptions{Size: int64(len(data))})
	require.NoError(t, err)
	r := storage.NewReaderAt(ctx, shortStore{st}, "a/c.dcm", int64(len(data)), 4096, 3)
	for _, off := range []int64{0, 5000, int64(len(data)) - 10} {
		_, err := r.ReadAt(make([]byte, 8), off)
		require.Error(t, err, "offset %d", off)
		require.NotErrorIs(t, err, io.EOF)
		require.NotErrorIs(t, err, io.ErrUnexpectedEOF)
	}
}
