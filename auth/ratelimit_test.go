package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Concurrent attempts from one address must not get past the limit: an
// attempt whose outcome is still unknown holds its token until it ends.
func TestRateLimitHoldsUnderConcurrentAttempts(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.LoginFailureBurst = 2
		c.LoginFailureEvery = time.Hour
	})
	src := netip.MustParseAddr("203.0.113.9")
	// Keep every password check waiting, as a flood of slow argon2id
	// verifications would, while the attempts arrive.
	for range cap(e.svc.hashSlots) {
		e.svc.hashSlots <- struct{}{}
	}
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.svc.PasswordLogin(context.Background(), fmt.Sprintf("nobody%d", i), "wrong password", src)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for range cap(e.svc.hashSlots) {
		<-e.svc.hashSlots
	}
	wg.Wait()
	checked, limited := 0, 0
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrInvalidCredentials):
			checked++
		case errors.Is(err, ErrRateLimited):
			limited++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	require.Equal(t, 2, checked, "only the burst may be checked")
	require.Equal(t, n-2, limited)
}

// Right credentials sent concurrently (a viewer's first requests) wait for
// the attempts ahead of them instead of being refused.
func TestRateLimitLetsConcurrentGoodLoginsThrough(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.LoginFailureBurst = 2
		c.LoginFailureEvery = time.Hour
	})
	e.user("viewer", RoleDentist, goodPassword, 0)
	src := netip.MustParseAddr("203.0.113.10")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.svc.PasswordLogin(context.Background(), "viewer", goodPassword, src)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}
