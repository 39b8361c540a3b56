package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/storage"
	"github.com/molar-health/molar/storage/postgres"
)

// Kinds of Problem.
const (
	ProblemMissing = "missing"    // the row's object is not in the store
	ProblemSize    = "wrong-size" // the object's size differs from the row's
	ProblemSHA256  = "wrong-hash" // the object's bytes differ from what was acknowledged
	ProblemRead    = "unreadable" // the object is there but could not be read to its end
	verifyPage     = 1000         // rows fetched per query
	verifyParallel = 4            // objects checked at once by default
)

// Problem is one instance row whose object is not what the row says: an
// acknowledged instance lost or damaged in the object store (a restore from
// an incomplete backup, a disk error, a hand-deleted file). It names the
// row and the object, never the patient.
type Problem struct {
	TenantID   int64
	InstanceID int64
	Key        string
	Kind       string
	Detail     string
}

func (p Problem) String() string {
	return fmt.Sprintf("tenant %d instance %d object %s: %s (%s)", p.TenantID, p.InstanceID, p.Key, p.Kind, p.Detail)
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Hash reads every object and compares its SHA-256 with the row's;
	// without it only presence and size are checked (one Stat each).
	Hash bool
	// Parallel is how many objects are checked at once (default 4).
	Parallel int
	// Start is called once with how many instances and bytes will be
	// checked; Progress after each instance with its size. Both optional,
	// called from one goroutine at a time.
	Start    func(instances, bytes int64)
	Progress func(size int64)
	// Problem is called for each problem found, one at a time.
	Problem func(Problem)
}

// Database is what Verify needs of the database (a *pgxpool.Pool).
type Database interface {
	postgres.Beginner
	index.Querier
}

// VerifyReport is what Verify checked and found.
type VerifyReport struct {
	Instances int64
	Bytes     int64
	Problems  map[string]int // by kind
}

// Total is the number of problems found.
func (r VerifyReport) Total() int {
	n := 0
	for _, c := range r.Problems {
		n += c
	}
	return n
}

// Verify checks that every instance row of every tenant points to an
// object in the store with the row's size (and, with Hash, its SHA-256):
// the storage verification a PACS archive runs after a restore or on a
// schedule. Rows are read in pages in short transactions, so it can run
// beside a serving molar; a row deleted or pointed at another object
// while it was being checked is not a problem. A store that cannot be
// reached (any error but not-found) ends it with that error: nothing can
// be said of the objects then.
func Verify(ctx context.Context, db Database, store storage.ObjectStore, opts VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{Problems: map[string]int{}}
	tenants, err := index.TenantIDs(ctx, db)
	if err != nil {
		return rep, err
	}
	var total, totalBytes int64
	for _, t := range tenants {
		err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
			n, b, err := index.CountObjects(ctx, tx)
			total, totalBytes = total+n, totalBytes+b
			return err
		})
		if err != nil {
			return rep, err
		}
	}
	if opts.Start != nil {
		opts.Start(total, totalBytes)
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = verifyParallel
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	work := make(chan index.ObjectRef)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ref := range work {
				p, err := checkObject(ctx, store, ref, opts.Hash)
				if err == nil && p != nil {
					p, err = confirm(ctx, db, ref, p)
				}
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				rep.Instances++
				rep.Bytes += ref.Size
				if p != nil {
					rep.Problems[p.Kind]++
					if opts.Problem != nil {
						opts.Problem(*p)
					}
				}
				if opts.Progress != nil {
					opts.Progress(ref.Size)
				}
				mu.Unlock()
			}
		}()
	}

	walkErr := func() error {
		for _, t := range tenants {
			err := index.EachObjectRef(verifyPage, func(after int64, limit int) (page []index.ObjectRef, err error) {
				err = postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
					page, err = index.ObjectRefs(ctx, tx, after, limit)
					return err
				})
				return page, err
			}, func(ref index.ObjectRef) error {
				select {
				case work <- ref:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil {
				return err
			}
		}
		return nil
	}()
	close(work)
	wg.Wait()
	if firstErr != nil {
		return rep, firstErr
	}
	if walkErr != nil {
		return rep, walkErr
	}

	return rep, nil
}

// confirm returns p if the row still says what was checked, nil if not:
// an instance deleted, or overwritten under the same SOP Instance UID,
// while it was checked is not damage.
func confirm(ctx context.Context, db postgres.Beginner, ref index.ObjectRef, p *Problem) (*Problem, error) {
	var now []index.ObjectRef
	err := postgres.InTenant(ctx, db, ref.TenantID, func(tx pgx.Tx) error {
		var err error
		now, err = index.ObjectRefs(ctx, tx, ref.InstanceID-1, 1)
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case len(now) == 0 || now[0].InstanceID != ref.InstanceID || now[0].Key != ref.Key ||
		now[0].Size != ref.Size || !bytes.Equal(now[0].SHA256, ref.SHA256):
		return nil, nil
	}
	return p, nil
}

// checkObject checks one object against its row: a Problem when it is not
// what the row says, an error when the store could not answer.
func checkObject(ctx context.Context, store storage.ObjectStore, ref index.ObjectRef, hash bool) (*Problem, error) {
	problem := func(kind, detail string) *Problem {
		return &Problem{TenantID: ref.TenantID, InstanceID: ref.InstanceID, Key: ref.Key, Kind: kind, Detail: detail}
	}
	if !hash {
		info, err := store.Stat(ctx, ref.Key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return problem(ProblemMissing, "not in the object store"), nil
		case err != nil:
			return nil, fmt.Errorf("ingest: verify %s: %w", ref.Key, err)
		case info.Size != ref.Size:
			return problem(ProblemSize, fmt.Sprintf("%d bytes, the index says %d", info.Size, ref.Size)), nil
		}
		return nil, nil
	}
	// A read that fails half-way is tried once more before it counts as
	// damage: over a network it is more often a cut connection.
	for try := 0; ; try++ {
		sum, n, err := hashObject(ctx, store, ref.Key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return problem(ProblemMissing, "not in the object store"), nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, errStoreGet):
			return nil, fmt.Errorf("ingest: verify %s: %w", ref.Key, err)
		case err != nil && try == 0:
			continue
		case err != nil:
			return problem(ProblemRead, fmt.Sprintf("read failed twice, after %d bytes: %v", n, err)), nil
		case n != ref.Size:
			return problem(ProblemSize, fmt.Sprintf("%d bytes, the index says %d", n, ref.Size)), nil
		case !bytes.Equal(sum, ref.SHA256):
			return problem(ProblemSHA256, "sha256 "+hex.EncodeToString(sum)[:16]+"…, the index says "+hex.EncodeToString(ref.SHA256)[:min(16, 2*len(ref.SHA256))]+"…"), nil
		}
		return nil, nil
	}
}

// errStoreGet marks hashObject's errors from the store's Get itself (the
// store could not be asked), as against failures while reading the body.
var errStoreGet = errors.New("get")

// hashObject reads an object whole and returns its SHA-256 and length.
func hashObject(ctx context.Context, store storage.ObjectStore, key string) ([]byte, int64, error) {
	rc, _, err := store.Get(ctx, key, nil)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("%w: %w", errStoreGet, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	return h.Sum(nil), n, err
}
