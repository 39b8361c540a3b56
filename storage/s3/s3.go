// Package s3 is the S3 ObjectStore (minio-go). It works with MinIO,
// versitygw, Ceph RGW, AWS S3 and other S3-compatible servers.
//
// Memory: a Put of known size up to Config.PartSize is streamed in one PUT
// request; a larger one, or one of unknown size, goes multipart with one
// PartSize buffer (16 MiB by default). Unknown-size objects (C-STORE) that
// turn out to fit in a peek buffer (8 MiB: intra-oral and panoramic images)
// are sent as one PUT, which saves the two extra round trips of a multipart
// upload and the server's assembly of the parts.
//
// Atomicity comes from S3 itself: an object appears only when its PUT or
// CompleteMultipartUpload succeeds. When a Put fails the multipart upload is
// aborted.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/molar-health/molar/storage"
)

const (
	// DefaultPartSize is the multipart part size when Config.PartSize is 0.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest part size.
	MinPartSize = 5 << 20

	peekSize = 8 << 20

	// connectTimeout bounds New's first contact with the server.
	connectTimeout = 15 * time.Second
	// pingTimeout bounds Ping.
	pingTimeout = 5 * time.Second
	// abortGrace is how long a request of a Put whose context was
	// cancelled may still run, so that the Put learns its true outcome.
	abortGrace = 10 * time.Second
	// maxRetries of one request (minio-go's default, 10, makes an
	// unreachable server take ~8 s to report).
	maxRetries = 3
)

// Config configures the S3 store. Endpoint is host:port (an http:// or
// https:// prefix is accepted and must agree with UseTLS).
type Config struct {
	Endpoint  string
	Bucket    string
	AccessKey string
	SecretKey string
	UseTLS    bool
	// Region of the bucket; empty lets minio-go ask the server.
	Region string
	// PartSize of multipart uploads in bytes; 0 means DefaultPartSize. Each
	// Put of a large or unknown-size object holds one part in memory.
	PartSize uint64
}

// Store is an S3 ObjectStore. It is safe for concurrent use.
type Store struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	endpoint string
	partSize uint64
	peekPool sync.Pool
}

var _ storage.ObjectStore = (*Store)(nil)

// New connects to the server and creates the bucket if it is missing. It
// fails with a one-line error when the server cannot be reached (within
// about 15 seconds, or ctx's deadline) or refuses the credentials.
func New(ctx context.Context, cfg Config) (*Store, error) {
	endpoint, secure, err := parseEndpoint(cfg.Endpoint, cfg.UseTLS)
	if err != nil {
		return nil, err
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("storage/s3: bucket name %q: %w", cfg.Bucket, err)
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < MinPartSize {
		return nil, fmt.Errorf("storage/s3: part size %d below S3's minimum of %d bytes", partSize, MinPartSize)
	}
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("storage/s3: %w", err)
	}
	transport.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	client, err := minio.New(endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     secure,
		Region:     cfg.Region,
		Transport:  transport,
		MaxRetries: maxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("storage/s3: endpoint %q: %w", cfg.Endpoint, err)
	}
	s := &Store{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   cfg.Bucket,
		endpoint: endpoint,
		partSize: partSize,
	}
	s.peekPool.New = func() any { b := make([]byte, peekSize); return &b }

	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	exists, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, s.connectErr(err)
	}
	if !exists {
		err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
			return nil, fmt.Errorf("storage/s3: create bucket %q at %s: %w", cfg.Bucket, endpoint, s.connectErr(err))
		}
	}
	return s, nil
}

func parseEndpoint(endpoint string, useTLS bool) (string, bool, error) {
	if endpoint == "" {
		return "", false, errors.New("storage/s3: empty endpoint")
	}
	for scheme, tls := range map[string]bool{"http://": false, "https://": true} {
		if rest, ok := strings.CutPrefix(endpoint, scheme); ok {
			if tls != useTLS {
				return "", false, fmt.Errorf("storage/s3: endpoint %q disagrees with UseTLS=%t", endpoint, useTLS)
			}
			endpoint = strings.TrimSuffix(rest, "/")
		}
	}
	if strings.Contains(endpoint, "/") {
		return "", false, fmt.Errorf("storage/s3: endpoint %q: want host:port without a path", endpoint)
	}
	return endpoint, useTLS, nil
}

// credentialCodes are the S3 error codes of rejected credentials.
// XAdminUserNotFound is versitygw's answer to an unknown access key.
var credentialCodes = []string{
	minio.AccessDenied, "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
	"ExpiredToken", "XAdminUserNotFound",
}

// connectErr explains a failure of the first requests.
func (s *Store) connectErr(err error) error {
	resp := minio.ToErrorResponse(err)
	if slices.Contains(credentialCodes, resp.Code) || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("storage/s3: %s refused the credentials or access to bucket %q (%s): check the access and secret key", s.endpoint, s.bucket, resp.Code)
	}
	if resp.StatusCode != 0 {
		return fmt.Errorf("storage/s3: bucket %q at %s: %w", s.bucket, s.endpoint, err)
	}
	return fmt.Errorf("storage/s3: cannot reach %s: %w", s.endpoint, err)
}

// mapErr turns minio errors into storage errors.
func (s *Store) mapErr(ctx context.Context, op, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("storage/s3: %s %q: %w (%w)", op, key, cerr, err)
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchKey:
		return fmt.Errorf("storage/s3: %s %q: %w", op, key, storage.ErrNotFound)
	case resp.Code == minio.InvalidRange || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("storage/s3: %s %q: %w", op, key, storage.ErrInvalidRange)
	case resp.Code == minio.NoSuchBucket:
		return fmt.Errorf("storage/s3: %s %q: bucket %q does not exist: %w", op, key, s.bucket, err)
	}
	return fmt.Errorf("storage/s3: %s %q: %w", op, key, err)
}

func checkKey(ctx context.Context, op, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("storage/s3: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage/s3: %s %q: %w", op, key, err)
	}
	return nil
}

func contentType(ct string) string {
	if ct == "" {
		return storage.DefaultContentType
	}
	return ct
}

// Put implements storage.ObjectStore.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if err := checkKey(ctx, "put", key); err != nil {
		return storage.ObjectInfo{}, err
	}
	// The reader stops at once when ctx is done, which fails the upload
	// (minio-go then aborts a multipart upload on a detached context). The
	// requests themselves run on a context that outlives ctx by abortGrace:
	// cutting a PUT or CompleteMultipartUpload in flight would leave the
	// outcome unknown (the server may commit the object while we report an
	// error), whereas letting it finish gives a truthful answer.
	reqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(abortGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-reqCtx.Done():
		}
	})
	defer stop()

	body := &guardReader{ctx: ctx, r: r, remaining: opts.Size}
	size := opts.Size
	var reader io.Reader = body
	if size < 0 {
		bufp := s.peekPool.Get().(*[]byte)
		defer s.peekPool.Put(bufp)
		n, err := readPeek(body, *bufp)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			size = int64(n) // small: one PUT, and the body can be retried
			reader = bytes.NewReader((*bufp)[:n])
		case err != nil:
			return storage.ObjectInfo{}, s.mapErr(ctx, "put", key, err)
		default:
			reader = io.MultiReader(bytes.NewReader(*bufp), body)
		}
	}
	ct := contentType(opts.ContentType)
	up, err := s.client.PutObject(reqCtx, s.bucket, key, reader, size, minio.PutObjectOptions{
		ContentType: ct,
		PartSize:    s.partSize,
	})
	if err != nil {
		return storage.ObjectInfo{}, s.mapErr(ctx, "put", key, err)
	}
	mod := up.LastModified
	if mod.IsZero() {
		mod = time.Now()
	}
	return storage.ObjectInfo{Key: key, Size: up.Size, Modified: mod, ContentType: ct}, nil
}

// readPeek is io.ReadFull in reads of at most 512 KiB, so a stalled or
// cancelled source is noticed between them as before the peek buffer grew.
func readPeek(r io.Reader, buf []byte) (int, error) {
	const chunk = 512 << 10
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:min(n+chunk, len(buf))])
		n += m
		if err == io.EOF {
			if n == 0 {
				return 0, io.EOF
			}
			return n, io.ErrUnexpectedEOF
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// guardReader stops reading when ctx is done and, for a known size, fails
// a stream that is shorter or longer than declared. It fails before handing
// out the last byte when more follow, so the server never receives a
// complete body for a stream that is too long.
type guardReader struct {
	ctx       context.Context
	r         io.Reader
	remaining int64 // -1: unknown size
	seen      int64
}

func (g *guardReader) Read(p []byte) (int, error) {
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	if g.remaining < 0 {
		n, err := g.r.Read(p)
		if err != nil && err != io.EOF {
			err = fmt.Errorf("read: %w", err)
		}
		return n, err
	}
	if g.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.remaining {
		p = p[:g.remaining]
	}
	n, err := g.r.Read(p)
	g.remaining -= int64(n)
	g.seen += int64(n)
	if err == io.EOF && g.remaining > 0 {
		return 0, fmt.Errorf("stream of %d bytes shorter than the declared size %d", g.seen, g.seen+g.remaining)
	}
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("read: %w", err)
	}
	if g.remaining == 0 {
		// Probe for extra bytes before handing out the last ones.
		var one [1]byte
		for {
			m, perr := g.r.Read(one[:])
			if m > 0 {
				return 0, fmt.Errorf("stream longer than the declared size %d", g.seen)
			}
			if perr == io.EOF {
				break
			}
			if perr != nil {
				return 0, fmt.Errorf("read: %w", perr)
			}
		}
	}
	return n, nil
}

// Get implements storage.ObjectStore. The reader stops when ctx is done.
func (s *Store) Get(ctx context.Context, key string, rng *storage.Range) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := checkKey(ctx, "get", key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	if err := rng.Check(); err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("storage/s3: get %q: %w", key, err)
	}
	if rng != nil && rng.Offset == 0 && rng.Length == -1 {
		rng = nil
	}
	var opts minio.GetObjectOptions
	if rng != nil {
		// After Check and the {0,-1} case: Offset >= 0, and Length > 0 or
		// Length == -1 with Offset > 0.
		if rng.Length == -1 || rng.Length > math.MaxInt64-rng.Offset {
			opts.Set("Range", fmt.Sprintf("bytes=%d-", rng.Offset))
		} else {
			opts.Set("Range", fmt.Sprintf("bytes=%d-%d", rng.Offset, rng.Offset+rng.Length-1))
		}
	}
	body, oi, hdr, err := s.core.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		return nil, storage.ObjectInfo{}, s.mapErr(ctx, "get", key, err)
	}
	info := objectInfo(key, oi)
	if rng == nil {
		return body, info, nil
	}
	if cr := hdr.Get("Content-Range"); cr != "" {
		total, ok := parseContentRangeTotal(cr)
		if !ok {
			body.Close()
			return nil, storage.ObjectInfo{}, fmt.Errorf("storage/s3: get %q: bad Content-Range %q", key, cr)
		}
		info.Size = total
		return body, info, nil
	}
	// The server ignored the range (some do for empty objects): apply it here.
	off, n, err := rng.Resolve(info.Size)
	if err != nil {
		body.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("storage/s3: get %q: %w", key, err)
	}
	if _, err := io.CopyN(io.Discard, body, off); err != nil {
		body.Close()
		return nil, storage.ObjectInfo{}, s.mapErr(ctx, "get", key, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(body, n), body}, info, nil
}

// parseContentRangeTotal returns the total of "bytes a-b/total".
func parseContentRangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	total, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return total, err == nil && total >= 0
}

func objectInfo(key string, oi minio.ObjectInfo) storage.ObjectInfo {
	return storage.ObjectInfo{
		Key:         key,
		Size:        oi.Size,
		Modified:    oi.LastModified,
		ContentType: contentType(oi.ContentType),
	}
}

// Stat implements storage.ObjectStore. Stat uses HEAD, whose answer has no
// body: a missing bucket looks like a missing object here (Get and Ping
// tell them apart).
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := checkKey(ctx, "stat", key); err != nil {
		return storage.ObjectInfo{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, s.mapErr(ctx, "stat", key, err)
	}
	return objectInfo(key, oi), nil
}

// Delete implements storage.ObjectStore.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(ctx, "delete", key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return s.mapErr(ctx, "delete", key, err)
	}
	return nil
}

// List implements storage.ObjectStore. It relies on S3's guarantee that
// listings come in UTF-8 binary (byte-wise) order, and skips keys that are
// not valid storage keys (written by other tools).
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage/s3: list %q: %w", prefix, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when fn fails
	for oi := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return s.mapErr(ctx, "list", prefix, oi.Err)
		}
		if storage.ValidateKey(oi.Key) != nil {
			continue
		}
		if err := fn(storage.ObjectInfo{Key: oi.Key, Size: oi.Size, Modified: oi.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage/s3: list %q: %w", prefix, err)
	}
	return nil
}

// Ping implements storage.ObjectStore: the bucket must exist, checked with
// a 5-second timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("storage/s3: ping: %w", s.connectErr(err))
	}
	if !ok {
		return fmt.Errorf("storage/s3: ping: bucket %q does not exist at %s", s.bucket, s.endpoint)
	}
	return nil
}
