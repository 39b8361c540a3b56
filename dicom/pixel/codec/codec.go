// Package codec decodes the transfer syntaxes Molar leaves to C libraries —
// JPEG-LS with CharLS and JPEG 2000 with OpenJPEG, both through cgo — in
// worker subprocesses, so that a codec crashing or looping on hostile data
// costs one worker, never the server.
//
// Isolation design:
//   - A worker is the running executable itself, started again with the
//     environment variable MOLAR_CODEC_WORKER=1 (and the argument "codec"
//     for ps). This package's init function sees the variable and serves
//     requests on stdin/stdout before main (or a test's TestMain) runs, so
//     every binary that links the package — molar, and each package's test
//     binary — can be its own worker without extra files to ship. `molar
//     codec` is the same loop, by hand.
//   - The worker caps its address space (RLIMIT_AS, 4 GiB) and CPU time, and
//     dies with its parent (PR_SET_PDEATHSIG). Each request carries the frame
//     size the DICOM header promises; the worker compares the codestream's
//     header with it before decoding, so a lying bitstream cannot make it
//     allocate more.
//   - A Pool keeps up to Size workers (default: the number of CPUs, at most
//     4), started lazily and reused. A request that times out or whose
//     context ends kills its worker; a worker that crashes (signal, abort,
//     broken pipe) is discarded and the request fails with ErrCrashed. The
//     next request starts a fresh worker.
//   - The protocol on the pipes is a small length-prefixed binary format
//     (see Request and Response): no shared memory, no file names.
package codec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors.
var (
	// ErrCrashed: the worker died while decoding (the input is suspect).
	ErrCrashed = errors.New("codec: worker crashed")
	// ErrTimeout: the worker took longer than the pool's timeout.
	ErrTimeout = errors.New("codec: worker timed out")
	// ErrDecode: the codec refused the data (message from the codec).
	ErrDecode = errors.New("codec: cannot decode")
)

// Operations.
const (
	OpJPEGLS   = 1
	OpJPEG2000 = 2
	opCrash    = 0xEE // test hook: the worker aborts (only with MOLAR_CODEC_TEST_HOOKS=1)
	opHang     = 0xEF // test hook: the worker loops forever
)

// MaxInput caps the compressed size of one request (256 MiB).
const MaxInput = 256 << 20

// Request asks a worker to decode one frame.
type Request struct {
	Op                     byte
	Rows, Columns, Samples int
	// Container is the bits allocated per sample (8 or 16).
	Container int
	Data      []byte
}

// Response is a decoded frame: samples pixel interleaved, little endian,
// Bytes (1 or 2) each.
type Response struct {
	Rows, Columns, Samples int
	Bytes                  int
	Precision              int
	Signed                 bool
	// ColorTransformed: the codestream's multi-component transform turned
	// YBR_ICT/YBR_RCT into RGB.
	ColorTransformed bool
	Data             []byte
}

var magic = [4]byte{'M', 'C', 'D', '1'}

func writeRequest(w io.Writer, r Request) error {
	var h [16]byte
	copy(h[:4], magic[:])
	h[4] = r.Op
	h[5] = byte(r.Container)
	binary.LittleEndian.PutUint16(h[6:], uint16(r.Rows))
	binary.LittleEndian.PutUint16(h[8:], uint16(r.Columns))
	binary.LittleEndian.PutUint16(h[10:], uint16(r.Samples))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(r.Data)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(r.Data)
	return err
}

func readRequest(r io.Reader) (Request, error) {
	var h [16]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Request{}, err
	}
	if [4]byte(h[:4]) != magic {
		return Request{}, fmt.Errorf("codec: bad request magic")
	}
	req := Request{Op: h[4], Container: int(h[5]), Rows: int(binary.LittleEndian.Uint16(h[6:])),
		Columns: int(binary.LittleEndian.Uint16(h[8:])), Samples: int(binary.LittleEndian.Uint16(h[10:]))}
	n := binary.LittleEndian.Uint32(h[12:])
	if n > MaxInput {
		return Request{}, fmt.Errorf("codec: request of %d bytes", n)
	}
	req.Data = make([]byte, n)
	if _, err := io.ReadFull(r, req.Data); err != nil {
		return Request{}, err
	}
	return req, nil
}

// Response framing: status byte 0 = ok, 1 = error (then uint32 length and
// message); ok: rows, columns, samples (uint16), bytes, precision, flags
// (1 signed, 2 colour transformed), uint32 length, data.
func writeResponse(w *bufio.Writer, res Response, err error) error {
	if err != nil {
		msg := err.Error()
		w.WriteByte(1)
		binary.Write(w, binary.LittleEndian, uint32(len(msg)))
		w.WriteString(msg)
		return w.Flush()
	}
	var h [14]byte
	binary.LittleEndian.PutUint16(h[0:], uint16(res.Rows))
	binary.LittleEndian.PutUint16(h[2:], uint16(res.Columns))
	binary.LittleEndian.PutUint16(h[4:], uint16(res.Samples))
	h[6], h[7] = byte(res.Bytes), byte(res.Precision)
	if res.Signed {
		h[8] |= 1
	}
	if res.ColorTransformed {
		h[8] |= 2
	}
	binary.LittleEndian.PutUint32(h[10:], uint32(len(res.Data)))
	w.WriteByte(0)
	w.Write(h[:])
	w.Write(res.Data)
	return w.Flush()
}

func readResponse(r io.Reader, maxData int) (Response, error) {
	var st [1]byte
	if _, err := io.ReadFull(r, st[:]); err != nil {
		return Response{}, err
	}
	if st[0] == 1 {
		var n uint32
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return Response{}, err
		}
		if n > 4096 {
			return Response{}, fmt.Errorf("codec: error message of %d bytes", n)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			return Response{}, err
		}
		return Response{}, fmt.Errorf("%w: %s", ErrDecode, msg)
	}
	var h [14]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Response{}, err
	}
	res := Response{Rows: int(binary.LittleEndian.Uint16(h[0:])), Columns: int(binary.LittleEndian.Uint16(h[2:])),
		Samples: int(binary.LittleEndian.Uint16(h[4:])), Bytes: int(h[6]), Precision: int(h[7]),
		Signed: h[8]&1 != 0, ColorTransformed: h[8]&2 != 0}
	n := int(binary.LittleEndian.Uint32(h[10:]))
	if n > maxData || n != res.Rows*res.Columns*res.Samples*res.Bytes {
		return Response{}, fmt.Errorf("codec: response of %d bytes", n)
	}
	res.Data = make([]byte, n)
	if _, err := io.ReadFull(r, res.Data); err != nil {
		return Response{}, err
	}
	return res, nil
}
