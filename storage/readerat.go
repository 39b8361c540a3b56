package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ReaderAt reads an object at random offsets through ranged Gets, keeping a
// few recently read blocks, so a decoder can seek within a large object
// (a CBCT instance) without holding it in memory.
type ReaderAt struct {
	ctx   context.Context
	store ObjectStore
	key   string
	size  int64
	block int64

	mu     sync.Mutex
	blocks []cachedBlock // most recent last
	keep   int
}

type cachedBlock struct {
	off  int64
	data []byte
}

// NewReaderAt reads key (of size bytes) in blocks of blockSize (0 = 256 KiB),
// keeping up to keep blocks (0 = 4).
func NewReaderAt(ctx context.Context, store ObjectStore, key string, size, blockSize int64, keep int) *ReaderAt {
	if blockSize <= 0 {
		blockSize = 256 << 10
	}
	if keep <= 0 {
		keep = 4
	}
	return &ReaderAt{ctx: ctx, store: store, key: key, size: size, block: blockSize, keep: keep}
}

// Size is the object's size.
func (r *ReaderAt) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < r.size {
		bo := off / r.block * r.block
		b, err := r.get(bo)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], b[off-bo:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *ReaderAt) get(off int64) ([]byte, error) {
	r.mu.Lock()
	for i, b := range r.blocks {
		if b.off == off {
			r.blocks = append(append(r.blocks[:i:i], r.blocks[i+1:]...), b)
			r.mu.Unlock()
			return b.data, nil
		}
	}
	r.mu.Unlock()
	length := min(r.block, r.size-off)
	rc, _, err := r.store.Get(r.ctx, r.key, &Range{Offset: off, Length: length})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, length)
	if n, err := io.ReadFull(rc, data); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// The store sent less than the range it was asked for (a cut
			// connection): a fault of the store, not the end of the
			// object, so it must not read as io.EOF to the caller.
			return nil, fmt.Errorf("storage: read %s at %d: the store sent %d of %d bytes", r.key, off, n, length)
		}
		return nil, fmt.Errorf("storage: read %s at %d: %w", r.key, off, err)
	}
	r.mu.Lock()
	r.blocks = append(r.blocks, cachedBlock{off, data})
	if len(r.blocks) > r.keep {
		r.blocks = r.blocks[1:]
	}
	r.mu.Unlock()
	return data, nil
}
