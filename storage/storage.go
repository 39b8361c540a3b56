// Package storage holds Molar's persistence ports: the object store that keeps
// DICOM instances, thumbnails and other blobs, and (in subpackages) the
// PostgreSQL pool, the embedded cluster and the migrations runner.
//
// Object store implementations live in storage/fs (the embedded default) and
// storage/s3 (minio-go); storage/storagetest holds the conformance suite that
// both pass.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("storage: object not found")

// ErrInvalidKey is returned (wrapped) for keys that are empty, absolute,
// contain "..", backslashes or control characters. See ValidateKey for the
// full rule.
var ErrInvalidKey = errors.New("storage: invalid object key")

// ErrInvalidRange is returned (wrapped) when a byte range lies outside the object.
// See Range for the rule.
var ErrInvalidRange = errors.New("storage: invalid byte range")

// DefaultContentType is reported when no content type was given at Put, and
// by stores that do not keep content types.
const DefaultContentType = "application/octet-stream"

// MaxKeyLen is the longest key in bytes (S3's limit).
const MaxKeyLen = 1024

// maxSegmentLen is the longest path segment in bytes (NAME_MAX on Linux file
// systems), enforced by every store so that keys mean the same everywhere.
const maxSegmentLen = 255

// ValidateKey reports whether key is a valid object key. A valid key is
// valid UTF-8 of at most MaxKeyLen bytes, made of non-empty segments
// separated by single slashes, each at most 255 bytes; it has no leading or
// trailing slash, no "." or ".." segment, no backslash and no control
// character (U+0000–U+001F, U+007F). The error wraps ErrInvalidKey.
//
// Every ObjectStore applies this rule, so a key accepted by one store is
// accepted by all (a store may reserve a few more names, and says so).
func ValidateKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, reason)
	}
	return nil
}

func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		return "not valid UTF-8"
	case strings.HasPrefix(key, "/"):
		return "absolute"
	case strings.HasSuffix(key, "/"):
		return "trailing slash"
	}
	for _, c := range key {
		switch {
		case c == '\\':
			return "backslash"
		case c < 0x20 || c == 0x7f:
			return "control character"
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return "empty segment"
		case seg == "." || seg == "..":
			return "dot segment"
		case len(seg) > maxSegmentLen:
			return fmt.Sprintf("segment longer than %d bytes", maxSegmentLen)
		}
	}
	return ""
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
	// ContentType as given at Put (DefaultContentType when none was given).
	// Stores that do not keep content types (storage/fs) always report
	// DefaultContentType; callers that need the type keep it themselves (the
	// DICOM index does). List leaves ContentType empty in every store: S3
	// listings do not carry it.
	ContentType string
}

// PutOptions tunes a Put.
type PutOptions struct {
	// Size of the stream if known, or -1. Implementations must accept -1 and
	// stream without holding the object in memory. When Size >= 0 the reader
	// must yield exactly Size bytes; a shorter or longer stream fails the Put
	// and stores nothing. Note that the zero value means "empty object".
	Size        int64
	ContentType string
	// Derived marks an object that can be made again from others (a
	// thumbnail). The store need not make it durable before Put returns
	// (storage/fs skips the fsyncs), but the Put stays atomic: readers see
	// the old object or the whole new one, never a part. After a crash a
	// derived object may be missing or empty; whoever reads it treats an
	// empty one as missing and makes it again.
	Derived bool
}

// Range selects bytes [Offset, Offset+Length) of an object. Length -1 means to the end.
//
// A range that runs past the end of the object is cut at the end (as in
// HTTP). The range is invalid (ErrInvalidRange) when Offset < 0, when Length
// is 0 or below -1, or when Offset >= the object's size — except {0, -1},
// which means the whole object and is valid for an empty object too.
type Range struct {
	Offset int64
	Length int64
}

// Resolve checks r against an object of the given size and returns the
// offset and length to read. A nil range selects the whole object. The error
// wraps ErrInvalidRange.
func (r *Range) Resolve(size int64) (offset, length int64, err error) {
	if r == nil || (r.Offset == 0 && r.Length == -1) {
		return 0, size, nil
	}
	if err := r.Check(); err != nil {
		return 0, 0, err
	}
	if r.Offset >= size {
		return 0, 0, fmt.Errorf("%w: offset %d of a %d-byte object", ErrInvalidRange, r.Offset, size)
	}
	length = size - r.Offset
	if r.Length != -1 && r.Length < length {
		length = r.Length
	}
	return r.Offset, length, nil
}

// Check reports the size-independent problems of r (negative offset, length
// 0 or below -1). A nil range is valid. The error wraps ErrInvalidRange.
func (r *Range) Check() error {
	switch {
	case r == nil:
		return nil
	case r.Offset < 0:
		return fmt.Errorf("%w: negative offset %d", ErrInvalidRange, r.Offset)
	case r.Length == 0 || r.Length < -1:
		return fmt.Errorf("%w: length %d", ErrInvalidRange, r.Length)
	}
	return nil
}

// ObjectStore is a flat key/value blob store. Keys are slash-separated
// relative paths such as "instances/1.2.3/4.5.6.dcm".
//
// Guarantees every implementation gives (checked by storagetest):
//   - Put is atomic: readers see either no object or the whole new object,
//     never a partial one, also after a crash. When Put returns nil the object
//     is durable. When Put returns an error (including a failing reader or a
//     cancelled context) no object and no partial object is visible, and an
//     existing object under the key is unchanged.
//   - Get returns ErrNotFound (wrapped) for a missing key, ErrInvalidRange for
//     a range starting past the end. The caller closes the reader. The
//     ObjectInfo describes the whole object (Size is the full size even for a
//     ranged Get).
//   - Every method returns ErrInvalidKey (wrapped) for a key that fails
//     ValidateKey, and fails with the context's error (wrapped) when ctx is
//     already done.
//   - Delete of a missing key is not an error.
//   - List calls fn for every key that starts with prefix (a plain string
//     prefix, "" for all), in byte-wise lexical order. An error from fn stops
//     the listing and is returned as is.
//   - Concurrent Puts to one key leave exactly one of the written values.
//
// Portable key sets never use a key as a folder of other keys ("a" next to
// "a/b"): S3 allows it, storage/fs fails the second Put.
type ObjectStore interface {
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error)
	Get(ctx context.Context, key string, rng *Range) (io.ReadCloser, ObjectInfo, error)
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Ping checks that the store is reachable and usable (used by /readyz and start-up).
	Ping(ctx context.Context) error
}
