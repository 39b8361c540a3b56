package auth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// addrLimiter limits failed authentication attempts per source address with
// a token bucket. A failure takes a token; while the bucket is empty every
// attempt from the address, right or wrong, is refused before credentials
// are checked, so it neither reveals anything nor counts toward the lock-out
// of the account it names. Successful attempts take no token, so a viewer
// sending HTTP Basic on every request is not slowed down.
//
// An attempt being checked holds a token until its outcome is known
// (Begin … end): otherwise a flood of concurrent attempts would all pass
// the check before the first failure is counted. An attempt that finds the
// remaining tokens held waits for those attempts to end.
type addrLimiter struct {
	every time.Duration
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
	// pending counts attempts being checked; settled is closed (and
	// replaced) whenever one of them ends.
	pending int
	settled chan struct{}
}

const maxBuckets = 100_000

func newAddrLimiter(every time.Duration, burst int) *addrLimiter {
	return &addrLimiter{every: every, burst: burst, buckets: map[string]*bucket{}}
}

func (l *addrLimiter) get(key string, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets || now.Sub(l.lastSweep) > 10*time.Minute {
			l.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst), settled: make(chan struct{})}
		l.buckets[key] = b
	}
	b.seen = now
	return b
}

// sweep drops buckets that are full again (idle long enough to refill).
func (l *addrLimiter) sweep(now time.Time) {
	l.lastSweep = now
	full := l.every * time.Duration(l.burst)
	for k, b := range l.buckets {
		if b.pending == 0 && now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets { // under attack from very many addresses: start over
		l.buckets = map[string]*bucket{}
	}
}

// errLimited is Begin's answer when the address has no token left.
var errLimited = errors.New("rate limited")

// Begin starts an attempt from key: it returns errLimited when no token is
// left, or ctx's error when ctx ends while waiting for attempts ahead of it.
// Otherwise the caller checks the credentials and calls end once, with
// failed true when the attempt failed (it then takes the token it held).
func (l *addrLimiter) Begin(ctx context.Context, key string, now time.Time) (end func(failed bool), err error) {
	if l == nil || l.burst <= 0 {
		return func(bool) {}, nil
	}
	l.mu.Lock()
	b := l.get(key, now)
	for {
		tokens := b.lim.TokensAt(now)
		if tokens < 1 {
			l.mu.Unlock()
			return nil, errLimited
		}
		if tokens-float64(b.pending) >= 1 {
			break
		}
		settled := b.settled
		l.mu.Unlock()
		select {
		case <-settled:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		l.mu.Lock()
	}
	b.pending++
	l.mu.Unlock()
	var once sync.Once
	return func(failed bool) {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			b.pending--
			if failed {
				b.lim.AllowN(now, 1)
			}
			close(b.settled)
			b.settled = make(chan struct{})
		})
	}, nil
}

// clientAddr returns the request's source address. X-Forwarded-For is used
// only when the direct peer is a trusted proxy, taking the right-most
// address that is not itself a trusted proxy.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	addr = addr.Unmap()
	if !isTrusted(addr, trusted) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr
		}
		a = a.Unmap()
		if !isTrusted(a, trusted) {
			return a
		}
		addr = a
	}
	return addr
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// limitKey groups IPv6 addresses by /64 (one subscriber's network).
func limitKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
