package thumb

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPool: work runs at the pool's priority (the caller's thread keeps
// its own), its error comes back, a panic reaches the caller's goroutine,
// and a caller whose context ends while every thread is busy gives up.
func TestPool(t *testing.T) {
	nice := func() int {
		// The raw system call answers 20 - nice.
		p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		require.NoError(t, err)
		return 20 - p
	}
	runtime.LockOSThread() // "the caller's thread": the same one throughout
	defer runtime.UnlockOSThread()
	ctx := context.Background()
	before := nice()
	target := min(before+5, 19)
	p := newPool(1, target)
	var inside int
	want := errors.New("from fn")
	require.ErrorIs(t, p.run(ctx, func() error { inside = nice(); return want }), want)
	require.Equal(t, target, inside)
	require.Equal(t, before, nice(), "the caller's thread keeps its priority")

	func() {
		defer func() {
			v := recover()
			require.NotNil(t, v, "the panic reaches the caller")
			require.Contains(t, fmt.Sprint(v), "boom")
			require.Contains(t, fmt.Sprint(v), "pool_test.go", "with the stack where it happened")
		}()
		_ = p.run(ctx, func() error { panic("boom") })
	}()
	require.NoError(t, p.run(ctx, func() error { return nil }), "the thread survives a panic")

	release := make(chan struct{})
	go func() { _ = p.run(ctx, func() error { <-release; return nil }) }()
	require.Eventually(t, func() bool {
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		return errors.Is(p.run(short, func() error { return nil }), context.DeadlineExceeded)
	}, 5*time.Second, 10*time.Millisecond, "the only thread is busy")
	close(release)
	require.NoError(t, p.run(ctx, func() error { return nil }))
}
