package codec

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"
)

func hookPool(t *testing.T) *Pool {
	p := &Pool{Size: 2, Timeout: 3 * time.Second, Command: func() (*exec.Cmd, error) {
		cmd, err := selfCommand()
		if err == nil {
			cmd.Env = append(cmd.Env, "MOLAR_CODEC_TEST_HOOKS=1")
		}
		return cmd, err
	}}
	t.Cleanup(p.Close)
	return p
}

// TestWorkerCrashAndHangAreContained: a worker that dies by a signal or
// never answers costs only that request; the pool starts a new one.
func TestWorkerCrashAndHangAreContained(t *testing.T) {
	p := hookPool(t)
	ctx := context.Background()
	req := Request{Op: opCrash, Rows: 1, Columns: 1, Samples: 1, Container: 8}
	_, err := p.Decode(ctx, req)
	if !errors.Is(err, ErrCrashed) {
		t.Fatalf("crash: %v, want ErrCrashed", err)
	}
	t.Log(err)
	req.Op = opHang
	start := time.Now()
	_, err = p.Decode(ctx, req)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("hang: %v, want ErrTimeout", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("timeout not enforced")
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := p.Decode(cctx, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled: %v", err)
	}
	// The pool still works.
	_, err = p.Decode(ctx, Request{Op: OpJPEGLS, Rows: 2, Columns: 2, Samples: 1, Container: 8, Data: []byte{0xFF, 0xD8, 0xFF, 0xF7}})
	if !errors.Is(err, ErrDecode) {
		t.Fatalf("after crashes: %v, want ErrDecode", err)
	}
	if p.Started() < 4 {
		t.Fatalf("%d workers started, want a fresh one after each failure", p.Started())
	}
}

// TestHostileInputToCodecs feeds truncated and random codestreams to both
// codecs: every request ends with an error (or a frame), the pool survives.
func TestHostileInputToCodecs(t *testing.T) {
	p := &Pool{Size: 2, Timeout: 10 * time.Second}
	t.Cleanup(p.Close)
	rnd := rand.New(rand.NewPCG(1, 2))
	seeds := [][]byte{
		{0xFF, 0xD8, 0xFF, 0xF7, 0x00, 0x0B, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x01, 0x11, 0x00},       // JPEG-LS SOF claiming 65535²
		{0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF}, // J2K SIZ claiming huge
	}
	for i := range 40 {
		data := append([]byte(nil), seeds[i%2]...)
		for range rnd.IntN(200) {
			data = append(data, byte(rnd.UintN(256)))
		}
		op := byte(OpJPEGLS + i%2)
		_, err := p.Decode(context.Background(), Request{Op: op, Rows: 16, Columns: 16, Samples: 1, Container: 16, Data: data})
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrCrashed) && !errors.Is(err, ErrTimeout) {
			t.Fatalf("op %d: unexpected error %v", op, err)
		}
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
