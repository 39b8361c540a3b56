package web

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness check ("database", "objectstore").
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Healthz answers liveness: the process serves HTTP.
func Healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Readyz runs the checks concurrently (2 s each) and answers 200 when all
// pass, 503 naming the failing ones otherwise. While draining is true
// (shutdown began) it answers 503 so load balancers stop sending traffic.
func Readyz(draining func() bool, checks ...Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		type result struct {
			Status string `json:"status"`
			Error  string `json:"error,omitempty"`
		}
		res := map[string]result{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		ok := true
		for _, c := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
				defer cancel()
				err := c.Fn(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					ok = false
					res[c.Name] = result{Status: "fail", Error: err.Error()}
				} else {
					res[c.Name] = result{Status: "ok"}
				}
			}()
		}
		wg.Wait()
		status := "ready"
		code := http.StatusOK
		if draining != nil && draining() {
			status, code = "draining", http.StatusServiceUnavailable
		} else if !ok {
			status, code = "not ready", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "checks": res})
	}
}
