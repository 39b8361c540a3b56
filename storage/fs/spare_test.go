package fs

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/storage"
)

// TestSpares: a Put leaves a spare temporary file ready for the next one,
// which becomes that Put's object; a spare too old to be safe from
// SweepTemp is removed instead of used.
func TestSpares(t *testing.T) {
	s, err := New(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	put := func(key string) {
		_, err := s.Put(ctx, key, strings.NewReader("x"), storage.PutOptions{Size: 1})
		require.NoError(t, err)
	}
	take := func() spare {
		t.Helper()
		require.Eventually(t, func() bool { return len(s.spares) == 1 }, 5*time.Second, time.Millisecond)
		return <-s.spares
	}

	put("a")
	sp := take()
	require.True(t, strings.HasPrefix(sp.f.Name(), s.tmp+string(os.PathSeparator)+SparePrefix))
	before, err := os.Stat(sp.f.Name())
	require.NoError(t, err)
	require.Zero(t, before.Size())
	s.spares <- sp
	put("b")
	after, err := os.Stat(s.path("b"))
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after), "the spare became the object")

	old := take()
	_, err = old.f.WriteString("stale ") // would show in the object if used
	require.NoError(t, err)
	old.created = time.Now().Add(-spareMaxAge - time.Minute)
	s.spares <- old
	put("c")
	_, err = os.Stat(old.f.Name())
	require.ErrorIs(t, err, os.ErrNotExist, "a stale spare is removed")
	c, err := os.ReadFile(s.path("c"))
	require.NoError(t, err)
	require.Equal(t, "x", string(c), "and not used")
}
