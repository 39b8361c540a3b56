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
