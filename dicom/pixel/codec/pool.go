package codec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs decode requests in worker subprocesses (see the package doc).
// The zero value is ready to use. It is safe for concurrent use.
type Pool struct {
	// Size is the number of concurrent workers (default min(NumCPU, 4)).
	Size int
	// Timeout bounds one request (default 20 s plus 1 s per MiB of input).
	Timeout time.Duration
	// Command builds the worker command; default: this executable with
	// MOLAR_CODEC_WORKER=1 and the argument "codec".
	Command func() (*exec.Cmd, error)

	once   sync.Once
	sem    chan struct{}
	mu     sync.Mutex
	idle   []*worker
	closed bool

	started atomic.Int64
}

var (
	defaultPool     *Pool
	defaultPoolOnce sync.Once
)

// Default returns the process-wide pool.
func Default() *Pool {
	defaultPoolOnce.Do(func() { defaultPool = &Pool{} })
	return defaultPool
}

// Started reports how many workers the pool has started (for tests and metrics).
func (p *Pool) Started() int64 { return p.started.Load() }

func (p *Pool) init() {
	p.once.Do(func() {
		if p.Size <= 0 {
			p.Size = min(runtime.NumCPU(), 4)
		}
		p.sem = make(chan struct{}, p.Size)
	})
}

type worker struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *limitedBuffer
	exited chan struct{}
}

func (w *worker) kill() {
	_ = w.cmd.Process.Kill()
	_ = w.in.Close()
	<-w.exited
}

// selfCommand runs this executable as a worker.
func selfCommand() (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("codec: own executable: %w", err)
	}
	cmd := exec.Command(exe, "codec")
	cmd.Env = append(os.Environ(), EnvWorker+"=1")
	return cmd, nil
}

func (p *Pool) start() (*worker, error) {
	mk := p.Command
	if mk == nil {
		mk = selfCommand
	}
	cmd, err := mk()
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("codec: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("codec: %w", err)
	}
	w := &worker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10), stderr: &limitedBuffer{max: 4096}, exited: make(chan struct{})}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("codec: start worker: %w", err)
	}
	p.started.Add(1)
	go func() { _ = cmd.Wait(); close(w.exited) }()
	return w, nil
}

func (p *Pool) get() (*worker, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("codec: pool closed")
	}
	for len(p.idle) > 0 {
		w := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		select {
		case <-w.exited:
			continue // died while idle
		default:
		}
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	return p.start()
}

func (p *Pool) put(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		go w.kill()
		return
	}
	p.idle = append(p.idle, w)
}

// Close stops the idle workers; requests running finish first.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.kill()
	}
}

// Decode runs one request in a worker.
func (p *Pool) Decode(ctx context.Context, req Request) (Response, error) {
	p.init()
	if len(req.Data) > MaxInput {
		return Response{}, fmt.Errorf("%w: %d bytes of input", ErrDecode, len(req.Data))
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
	defer func() { <-p.sem }()
	w, err := p.get()
	if err != nil {
		return Response{}, err
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 20*time.Second + time.Duration(len(req.Data)>>20)*time.Second
	}
	maxData := req.Rows * req.Columns * req.Samples * 2
	type result struct {
		res Response
		err error
	}
	ch := make(chan result, 1)
	go func() {
		if err := writeRequest(w.in, req); err != nil {
			ch <- result{err: err}
			return
		}
		res, err := readResponse(w.out, maxData)
		ch <- result{res, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err == nil || errors.Is(r.err, ErrDecode) {
			p.put(w)
			return r.res, r.err
		}
		w.kill()
		return Response{}, fmt.Errorf("%w (%s): %v", ErrCrashed, w.status(), r.err)
	case <-timer.C:
		w.kill()
		<-ch
		return Response{}, fmt.Errorf("%w after %v", ErrTimeout, timeout)
	case <-ctx.Done():
		w.kill()
		<-ch
		return Response{}, ctx.Err()
	}
}

func (w *worker) status() string {
	<-w.exited
	s := "exit"
	if w.cmd.ProcessState != nil {
		s = w.cmd.ProcessState.String()
	}
	if e := strings.TrimSpace(w.stderr.String()); e != "" {
		s += ": " + e
	}
	return s
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
