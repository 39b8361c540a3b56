// Package fs is the filesystem ObjectStore, Molar's embedded default. Each
// object is one regular file under a root directory; the key is the path
// relative to the root.
//
// Put writes to a temporary file in the root's ".tmp" folder (same file
// system, so the final rename is atomic), fsyncs it, renames it into place
// and fsyncs the parent directory, plus every directory it had to create.
// A reader therefore sees the old object or the whole new one, also after a
// crash; a crash can only leave a stale temporary file, which SweepTemp
// removes.
//
// Differences from storage/s3 (both documented on storage.ObjectStore):
//   - Content types are not kept: ObjectInfo.ContentType is always
//     storage.DefaultContentType. Keeping them would need a sidecar file or
//     an extended attribute per object, neither of which is worth it while
//     the DICOM index knows every type.
//   - A key cannot be both an object and a folder of other keys ("a" and
//     "a/b"): the second Put fails. Molar's key scheme never does this.
//   - Keys whose first segment is ".tmp" are reserved (ErrInvalidKey).
package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/molar-health/molar/storage"
)

// TempDir is the name of the folder under the root that holds temporary
// files of Puts in progress. Keys inside it are rejected.
const TempDir = ".tmp"

// SparePrefix starts the names of temporary files made ahead of the Puts
// that will use them (empty until one does).
const SparePrefix = "spare-"

const (
	tempPrefix = "put-"
	dirPerm    = 0o750
	filePerm   = 0o640
	copyBuf    = 256 << 10
	// writebackChunk: after this many new bytes a Put starts their
	// write-back (startWriteback), so the final fsync has little left to do.
	writebackChunk = 512 << 10
)

// Store is a filesystem ObjectStore. It is safe for concurrent use, also by
// several processes sharing the root (for example `molar import` next to a
// running server).
type Store struct {
	root string // absolute, cleaned
	tmp  string // root/.tmp
	// spares are temporary files created ahead of the Puts that will use
	// them: creating a file (allocating an inode, a journal entry) costs
	// 0.1 to 1 ms on ext4 and is taken off the path a Put's caller waits on.
	spares chan spare
}

// spare is a temporary file created ahead of time.
type spare struct {
	f       *os.File
	created time.Time
}

const (
	// spareFiles is how many temporary files a store keeps ready.
	spareFiles = 4
	// spareMaxAge: an older spare is not used (SweepTemp removes temporary
	// files an hour old; a spare must never be one of them).
	spareMaxAge = 10 * time.Minute
)

var _ storage.ObjectStore = (*Store)(nil)

// New opens (creating it if needed) a store rooted at dir. Call SweepTemp at
// start-up to remove temporary files left by a crash.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("storage/fs: empty root directory")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage/fs: root %q: %w", dir, err)
	}
	s := &Store{root: root, tmp: filepath.Join(root, TempDir), spares: make(chan spare, spareFiles)}
	if err := os.MkdirAll(s.tmp, dirPerm); err != nil {
		return nil, fmt.Errorf("storage/fs: create root: %w", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("storage/fs: root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("storage/fs: root %s is not a directory", root)
	}
	return s, nil
}

// Root returns the absolute root directory.
func (s *Store) Root() string { return s.root }

// validKey applies storage.ValidateKey plus the reserved temp folder.
func validKey(key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("storage/fs: %w", err)
	}
	if key == TempDir || strings.HasPrefix(key, TempDir+"/") {
		return fmt.Errorf("storage/fs: %w %q: %s is reserved", storage.ErrInvalidKey, key, TempDir)
	}
	return nil
}

func (s *Store) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

// isNotFound reports errors that mean "no object": a missing file, or a
// path component that is a file instead of a folder.
func isNotFound(err error) bool {
	return errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func ctxErr(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage/fs: %s %q: %w", op, key, err)
	}
	return nil
}

func info(key string, fi iofs.FileInfo) storage.ObjectInfo {
	return storage.ObjectInfo{
		Key:         key,
		Size:        fi.Size(),
		Modified:    fi.ModTime(),
		ContentType: storage.DefaultContentType,
	}
}

// Put implements storage.ObjectStore. opts.ContentType is not kept.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if err := validKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := ctxErr(ctx, "put", key); err != nil {
		return storage.ObjectInfo{}, err
	}
	tmp, refilled, err := s.takeTemp()
	defer refilled()
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("storage/fs: put %q: %w", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	if err := copyExact(ctx, &writebackFile{f: tmp}, r, opts.Size); err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return storage.ObjectInfo{}, fmt.Errorf("storage/fs: put %q: %w", key, err)
	}
	if !opts.Derived {
		if err := tmp.Sync(); err != nil {
			return storage.ObjectInfo{}, fmt.Errorf("storage/fs: put %q: sync: %w", key, err)
		}
	}
	fi, err := tmp.Stat()
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("storage/fs: put %q: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("storage/fs: put %q: close: %w", key, err)
	}
	// Last point of no return: a cancelled Put must not replace the object.
	if err := ctxErr(ctx, "put", key); err != nil {
		return storage.ObjectInfo{}, err
	}
	final := s.path(key)
	if err := s.renameIntoPlace(tmp.Name(), final); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("storage/fs: put %q: %w", key, err)
	}
	committed = true
	if opts.Derived {
		return info(key, fi), nil
	}
	// The object is in place; from here on an error means "maybe not
	// durable", which the caller must hear about.
	if err := syncDir(filepath.Dir(final)); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("storage/fs: put %q: sync folder: %w", key, err)
	}
	return info(key, fi), nil
}

// takeTemp returns a spare temporary file when one is ready, or creates
// one, and starts making a spare for the next Put; the caller waits for
// that with refilled before it returns (it has finished long before, as a
// Put's fsyncs take longer than a create), so nothing outlives a Put.
func (s *Store) takeTemp() (f *os.File, refilled func(), err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.addSpare()
	}()
	refilled = func() { <-done }
	for {
		select {
		case sp := <-s.spares:
			if time.Since(sp.created) < spareMaxAge {
				return sp.f, refilled, nil
			}
			sp.f.Close()
			os.Remove(sp.f.Name())
			continue
		default:
		}
		f, err := s.createTemp(tempPrefix)
		return f, refilled, err
	}
}

// addSpare creates one spare temporary file, unless enough are ready.
func (s *Store) addSpare() {
	if len(s.spares) >= cap(s.spares) {
		return
	}
	f, err := s.createTemp(SparePrefix)
	if err != nil {
		return // the next Put creates its own and reports the error
	}
	select {
	// Wall-clock time (no monotonic reading), as SweepTemp compares
	// modification times: a clock step or a paused VM counts for both.
	case s.spares <- spare{f: f, created: time.Now().Round(0)}:
	default:
		f.Close()
		os.Remove(f.Name())
	}
}

// createTemp creates a new file in the temp folder. It recreates the folder
// if someone removed it.
func (s *Store) createTemp(prefix string) (*os.File, error) {
	var b [12]byte
	for attempt := 0; ; attempt++ {
		rand.Read(b[:])
		name := filepath.Join(s.tmp, prefix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		if err == nil {
			return f, nil
		}
		if attempt < 3 && errors.Is(err, iofs.ErrNotExist) {
			// Recreate the temp folder, never the root: a missing root
			// (say, an unmounted volume) must stay an error.
			if err := os.Mkdir(s.tmp, dirPerm); err != nil && !errors.Is(err, iofs.ErrExist) {
				return nil, err
			}
			continue
		}
		if attempt < 3 && errors.Is(err, iofs.ErrExist) {
			continue
		}
		return nil, err
	}
}

// renameIntoPlace creates the missing parents of final (fsyncing each new
// entry) and renames tmp onto final. A concurrent Delete may remove a
// freshly created, still empty parent between the two steps; then it tries
// again.
func (s *Store) renameIntoPlace(tmp, final string) error {
	dir := filepath.Dir(final)
	for attempt := 0; ; attempt++ {
		if err := s.mkdirAll(dir); err != nil {
			return conflict(err)
		}
		err := os.Rename(tmp, final)
		if err == nil {
			return nil
		}
		if attempt < 5 && errors.Is(err, iofs.ErrNotExist) {
			if _, serr := os.Stat(tmp); serr == nil {
				continue
			}
		}
		return conflict(err)
	}
}

// conflict explains the errors that come from a key that collides with a
// folder ("a" put after "a/b", or "a/b" after "a").
func conflict(err error) error {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) ||
		errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("key collides with a folder of other keys or an object on its path: %w", err)
	}
	return err
}

// mkdirAll creates dir and its missing parents below the root. After
// creating an entry it fsyncs the folder holding it, so a durable object is
// never lost because its folder was not.
func (s *Store) mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	if dir == s.root || !strings.HasPrefix(dir, s.root+string(filepath.Separator)) {
		return err // the root itself is gone; do not recreate it silently
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirAll(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, dirPerm); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			// Created concurrently; it is a folder unless a file took the name.
			if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
				return nil
			}
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writebackFile starts the write-back of every writebackChunk bytes
// written (see startWriteback).
type writebackFile struct {
	f         *os.File
	off, sent int64
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.sent >= writebackChunk {
		startWriteback(w.f, w.sent, w.off-w.sent)
		w.sent = w.off
	}
	return n, err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// copyExact copies r to w, checking ctx between chunks. With size >= 0 the
// stream must have exactly size bytes.
func copyExact(ctx context.Context, w io.Writer, r io.Reader, size int64) error {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			n += int64(m)
			if size >= 0 && n > size {
				return fmt.Errorf("stream longer than the declared size %d", size)
			}
			if _, werr := w.Write(buf[:m]); werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read: %w", rerr)
		}
	}
	if size >= 0 && n != size {
		return fmt.Errorf("stream of %d bytes shorter than the declared size %d", n, size)
	}
	return ctx.Err()
}

// openRegular opens the object file, treating folders and other non-regular
// files as missing.
func (s *Store) openRegular(key string) (*os.File, iofs.FileInfo, error) {
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, iofs.ErrNotExist
	}
	return f, fi, nil
}

// Get implements storage.ObjectStore. The reader does not watch ctx.
func (s *Store) Get(ctx context.Context, key string, rng *storage.Range) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := validKey(key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if err := ctxErr(ctx, "get", key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	f, fi, err := s.openRegular(key)
	if err != nil {
		if isNotFound(err) {
			return nil, storage.ObjectInfo{}, fmt.Errorf("storage/fs: get %q: %w", key, storage.ErrNotFound)
		}
		return nil, storage.ObjectInfo{}, fmt.Errorf("storage/fs: get %q: %w", key, err)
	}
	off, n, err := rng.Resolve(fi.Size())
	if err != nil {
		f.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("storage/fs: get %q: %w", key, err)
	}
	return &sectionFile{SectionReader: io.NewSectionReader(f, off, n), f: f}, info(key, fi), nil
}

// sectionFile reads a section of a file and closes the file.
type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionFile) Close() error { return s.f.Close() }

// Stat implements storage.ObjectStore.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := validKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := ctxErr(ctx, "stat", key); err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := os.Stat(s.path(key))
	if err == nil && !fi.Mode().IsRegular() {
		err = iofs.ErrNotExist
	}
	if err != nil {
		if isNotFound(err) {
			return storage.ObjectInfo{}, fmt.Errorf("storage/fs: stat %q: %w", key, storage.ErrNotFound)
		}
		return storage.ObjectInfo{}, fmt.Errorf("storage/fs: stat %q: %w", key, err)
	}
	return info(key, fi), nil
}

// Delete implements storage.ObjectStore. It then removes the object's
// folders that became empty, best-effort, never the root.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := ctxErr(ctx, "delete", key); err != nil {
		return err
	}
	p := s.path(key)
	fi, err := os.Lstat(p)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("storage/fs: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a folder of other keys, not an object
	}
	if err := os.Remove(p); err != nil && !isNotFound(err) {
		return fmt.Errorf("storage/fs: delete %q: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil && !isNotFound(err) {
		return fmt.Errorf("storage/fs: delete %q: sync folder: %w", key, err)
	}
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty, or gone: stop
			break
		}
	}
	return nil
}

// List implements storage.ObjectStore. It skips the temp folder, folders
// and anything that is not a regular file.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctxErr(ctx, "list", prefix); err != nil {
		return err
	}
	// Start at the deepest folder that the prefix fully names.
	dirKey := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey = prefix[:i]
		if validKey(dirKey) != nil {
			return nil // no valid key lies below it
		}
	}
	dir := s.root
	if dirKey != "" {
		dir = s.path(dirKey)
	}
	return s.walk(ctx, dir, dirKey, prefix, fn)
}

// walk lists folder dir (holding keys that start with dirKey+"/") in
// byte-wise key order. Sorting folder names with a trailing "/" makes the
// depth-first walk yield keys in lexical order: "a-b" < "a.b" < "a/x".
func (s *Store) walk(ctx context.Context, dir, dirKey, prefix string, fn func(storage.ObjectInfo) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if dir != s.root && isNotFound(err) {
			return nil // removed while listing
		}
		return fmt.Errorf("storage/fs: list %q: %w", prefix, err)
	}
	type entry struct {
		name string // with "/" for folders
		e    iofs.DirEntry
	}
	list := make([]entry, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if dir == s.root && name == TempDir {
			continue
		}
		if e.IsDir() {
			name += "/"
		}
		list = append(list, entry{name, e})
	}
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	for _, ent := range list {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("storage/fs: list %q: %w", prefix, err)
		}
		key := ent.name
		if dirKey != "" {
			key = dirKey + "/" + ent.name
		}
		if ent.e.IsDir() {
			sub := strings.TrimSuffix(key, "/")
			// Descend only if keys below can match the prefix.
			if strings.HasPrefix(key, prefix) || strings.HasPrefix(prefix, key) {
				if err := s.walk(ctx, filepath.Join(dir, ent.e.Name()), sub, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !ent.e.Type().IsRegular() || !strings.HasPrefix(key, prefix) || storage.ValidateKey(key) != nil {
			continue
		}
		fi, err := ent.e.Info()
		if err != nil {
			if isNotFound(err) {
				continue // deleted while listing
			}
			return fmt.Errorf("storage/fs: list %q: %w", prefix, err)
		}
		oi := info(key, fi)
		oi.ContentType = "" // List does not report content types
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

// Ping implements storage.ObjectStore: the root must exist and take a new
// file.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage/fs: ping: %w", err)
	}
	fi, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("storage/fs: ping: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("storage/fs: ping: root %s is not a directory", s.root)
	}
	if err := os.Mkdir(s.tmp, dirPerm); err != nil && !errors.Is(err, iofs.ErrExist) {
		return fmt.Errorf("storage/fs: ping: root not writable: %w", err)
	}
	f, err := os.CreateTemp(s.tmp, "ping-")
	if err != nil {
		return fmt.Errorf("storage/fs: ping: root not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("storage/fs: ping: %w", err)
	}
	return nil
}

// SweepTemp removes temporary files (of Puts interrupted by a crash) that
// were last written more than olderThan ago, and returns how many it
// removed. A Put in progress keeps touching its file, so a generous age (an
// hour) never hurts another process's Put. Call it at start-up.
func (s *Store) SweepTemp(olderThan time.Duration) (int, error) {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("storage/fs: sweep: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	var errs []error
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || fi.IsDir() || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(s.tmp, e.Name())); err != nil {
			if !errors.Is(err, iofs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("storage/fs: sweep: %w", err)
	}
	return removed, nil
}
