package thumb

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"syscall"
)

// pool runs thumbnail work on n goroutines, each on an operating-system
// thread of its own at scheduling priority nice (Linux keeps the nice
// value per thread): when the cores are busy, the work of arriving
// instances goes first. The goroutines and their threads live as long as
// the process: a thread is never handed back to the Go scheduler with a
// changed priority (an unprivileged process cannot lower it again), and
// not ended and made anew for every job either. Should the system refuse
// the priority, the work runs at the process's own.
type pool struct {
	work chan func()
}

func newPool(n, nice int) *pool {
	p := &pool{work: make(chan func())}
	for range max(n, 1) {
		go func() {
			if nice != 0 {
				runtime.LockOSThread() // for good: see pool
				_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
			}
			for fn := range p.work {
				fn()
			}
		}()
	}
	return p
}

// run runs fn on one of the pool's threads once one is free (or returns
// ctx's error if none becomes free in time) and returns its error. A panic
// in fn reaches the caller's goroutine, where the job runner recovers it.
func (p *pool) run(ctx context.Context, fn func() error) error {
	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	task := func() {
		var r result
		defer func() {
			if v := recover(); v != nil {
				// The stack of the pool's thread, which re-panicking on
				// the caller's goroutine would lose.
				r.panicked = fmt.Sprintf("%v\n\n%s", v, debug.Stack())
			}
			done <- r
		}()
		r.err = fn()
	}
	select {
	case p.work <- task:
	case <-ctx.Done():
		return ctx.Err()
	}
	r := <-done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}
