package web

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
)

// Kind classifies an error for the one place that maps errors to HTTP status.
type Kind int

// Error kinds. Append only.
const (
	Internal Kind = iota
	NotFound
	Invalid
	Unauthorized
	Forbidden
	Conflict
	Unavailable
	RateLimited
	CSRF
)

var kindStatus = map[Kind]int{
	Internal:     http.StatusInternalServerError,
	NotFound:     http.StatusNotFound,
	Invalid:      http.StatusBadRequest,
	Unauthorized: http.StatusUnauthorized,
	Forbidden:    http.StatusForbidden,
	Conflict:     http.StatusConflict,
	Unavailable:  http.StatusServiceUnavailable,
	RateLimited:  http.StatusTooManyRequests,
	CSRF:         http.StatusForbidden,
}

var kindMessage = map[Kind]string{
	Internal:     "error.internal",
	NotFound:     "error.notfound",
	Invalid:      "error.badrequest",
	Unauthorized: "error.unauthorized",
	Forbidden:    "error.forbidden",
	Conflict:     "error.conflict",
	Unavailable:  "error.unavailable",
	RateLimited:  "error.ratelimited",
	CSRF:         "error.csrf",
}

// Error is an error with a kind and a message safe to show users.
type Error struct {
	Kind    Kind
	Message string // shown to the user; no health data
	Err     error  // the cause, logged for Internal errors only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// E makes an *Error.
func E(kind Kind, msg string, cause ...error) error {
	e := &Error{Kind: kind, Message: msg}
	if len(cause) > 0 {
		e.Err = cause[0]
	}
	return e
}

var (
	sentinelMu sync.RWMutex
	sentinels  []struct {
		err  error
		kind Kind
	}
)

// RegisterError maps a package's sentinel error (matched with errors.Is) to
// a kind. The wiring registers auth.ErrForbidden, storage.ErrNotFound, ….
func RegisterError(sentinel error, kind Kind) {
	sentinelMu.Lock()
	defer sentinelMu.Unlock()
	sentinels = append(sentinels, struct {
		err  error
		kind Kind
	}{sentinel, kind})
}

// KindOf classifies err.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.Canceled) {
		return Unavailable
	}
	if unstorableText(err) {
		return Invalid
	}
	sentinelMu.RLock()
	defer sentinelMu.RUnlock()
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.kind
		}
	}
	return Internal
}

// unstorableText reports whether the database refused a value as text it
// cannot store: a NUL character or bytes that are not UTF-8 (SQLSTATE
// 22021, 22P05), or a value longer than its column (22001). That is the
// request's fault, whichever form or API it came through, and the
// statement's transaction is rolled back, so nothing stored changes.
func unstorableText(err error) bool {
	var st interface{ SQLState() string }
	if !errors.As(err, &st) {
		return false
	}
	switch st.SQLState() {
	case "22021", "22P05", "22001":
		return true
	}
	return false
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	ErrorID  string `json:"errorId,omitempty"`
}

// WantsJSON reports whether a request is an API call rather than a browser page.
func WantsJSON(r *http.Request) bool {
	p := r.URL.Path
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/dicomweb") || strings.Contains(p, "/api/") {
		return true
	}
	a := r.Header.Get("Accept")
	return strings.Contains(a, "json") && !strings.Contains(a, "text/html")
}

// Error answers a request with err: an HTML page for browsers, a problem
// document for APIs. Internal errors are logged with an id that the user
// sees, and their details never reach the response.
func (s *Shell) Error(w http.ResponseWriter, r *http.Request, err error) {
	kind := KindOf(err)
	status := kindStatus[kind]
	lang := Lang(r)
	msg := ""
	var e *Error
	if errors.As(err, &e) && kind != Internal {
		msg = e.Message
	} else if unstorableText(err) {
		msg = s.Catalog.T(lang, "error.text")
	}
	id := ""
	if kind == Internal {
		id = newID()
		s.Logger.ErrorContext(r.Context(), "internal error", "error_id", id, "err", err, "path", r.URL.Path)
		msg = s.Catalog.T(lang, kindMessage[kind], id)
	} else if msg == "" {
		msg = s.Catalog.T(lang, kindMessage[kind])
	}
	if kind == RateLimited {
		w.Header().Set("Retry-After", "60")
	}
	if WantsJSON(r) {
		WriteProblem(w, r, status, msg, id)
		return
	}
	s.Render(w, r, status, "error", map[string]string{"Message": msg, "ID": id})
}

// WriteProblem writes an application/problem+json response.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, detail, id string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type: "about:blank", Title: http.StatusText(status), Status: status,
		Detail: detail, Instance: r.URL.Path, ErrorID: id,
	})
}

// requestIDEncoding has no digits: a request id can never hold something
// shaped like a CPR number, which the audit log would refuse.
var requestIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyzABCDEF").WithPadding(base32.NoPadding)

// newRequestID returns a random request id (16 characters, 80 bits).
func newRequestID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return requestIDEncoding.EncodeToString(b)
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
