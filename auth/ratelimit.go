package auth

import (
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
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
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
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets { // under attack from very many addresses: start over
		l.buckets = map[string]*bucket{}
	}
}

// Allowed reports whether an attempt from key may proceed (a token is left).
func (l *addrLimiter) Allowed(key string, now time.Time) bool {
	if l == nil || l.burst <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.get(key, now).lim.TokensAt(now) >= 1
}

// Failed takes a token for a failed attempt from key.
func (l *addrLimiter) Failed(key string, now time.Time) {
	if l == nil || l.burst <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(key, now).lim.AllowN(now, 1)
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
