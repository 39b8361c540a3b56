package codec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// EnvWorker is the environment variable that turns a process linking this
// package into a codec worker.
const EnvWorker = "MOLAR_CODEC_WORKER"

func init() {
	if os.Getenv(EnvWorker) == "1" {
		os.Exit(Main())
	}
}

// Main serves requests on stdin/stdout until stdin closes and returns the
// exit code (`molar codec` and the init hook call it).
func Main() int {
	limit()
	// Serve returns only when reading or writing fails; io.EOF is stdin closing.
	if err := Serve(os.Stdin, os.Stdout); !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "molar codec:", err)
		return 1
	}
	return 0
}

// limit bounds what one worker can take from the machine.
func limit() {
	_ = syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: 4 << 30, Max: 4 << 30})
	_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
}

// Serve decodes requests from r and writes responses to w until r ends.
func Serve(r io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriterSize(w, 64<<10)
	for {
		req, err := readRequest(br)
		if err != nil {
			return err
		}
		res, err := handle(req)
		if err := writeResponse(bw, res, err); err != nil {
			return err
		}
	}
}

func handle(req Request) (Response, error) {
	if req.Rows <= 0 || req.Columns <= 0 || (req.Samples != 1 && req.Samples != 3) || (req.Container != 8 && req.Container != 16) {
		return Response{}, fmt.Errorf("unsupported frame %d×%d×%d of %d bits", req.Columns, req.Rows, req.Samples, req.Container)
	}
	switch req.Op {
	case OpJPEGLS:
		return decodeJPEGLS(req)
	case OpJPEG2000:
		return decodeJPEG2000(req)
	case opCrash, opHang:
		if os.Getenv("MOLAR_CODEC_TEST_HOOKS") == "1" {
			if req.Op == opCrash {
				syscall.Kill(os.Getpid(), syscall.SIGSEGV)
			}
			for {
				time.Sleep(time.Hour)
			}
		}
	}
	return Response{}, fmt.Errorf("unknown operation %d", req.Op)
}
