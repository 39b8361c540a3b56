package journal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error of this package wraps at most one of them
// (auth.ErrForbidden and auth.ErrNotFound pass through from access checks).
var (
	// ErrInvalid is invalid input; the error is an *InputError with a
	// message for people.
	ErrInvalid = errors.New("journal: invalid input")
	// ErrNotFound is an entry, plan item or patient that does not exist (or
	// belongs to another person or municipality).
	ErrNotFound = errors.New("journal: not found")
	// ErrLocked is a change refused because an entry is signed (locked) or
	// already replaced by a newer version.
	ErrLocked = errors.New("journal: entry is locked")
	// ErrConflict is a change that clashes with the current state (a second
	// active treatment plan, an item already closed).
	ErrConflict = errors.New("journal: conflict")
	// ErrForbidden is an action the user's role does not allow (signing
	// another author's entry, a clinic the user does not belong to).
	ErrForbidden = errors.New("journal: forbidden")
)

// InputError is invalid input with a message key of the journal's catalog
// (Messages) and its arguments, so pages and the API can say what is wrong
// in the user's language.
type InputError struct {
	Key  string
	Args []any
	// Sentinel is ErrInvalid, or ErrLocked / ErrConflict for refusals of
	// that kind that still deserve a precise message.
	Sentinel error
}

func (e *InputError) Error() string { return "journal: " + e.Message("en") }

// Unwrap makes errors.Is(err, ErrInvalid) (or the sentinel given) true.
func (e *InputError) Unwrap() error {
	if e.Sentinel != nil {
		return e.Sentinel
	}
	return ErrInvalid
}

// Message is the error's text in lang ("da" or "en").
func (e *InputError) Message(lang string) string {
	m := messages[lang]
	if m == nil {
		m = messages["da"]
	}
	f, ok := m["journal.err."+e.Key]
	if !ok {
		f = messages["da"]["journal.err."+e.Key]
	}
	if f == "" {
		return e.Key
	}
	if len(e.Args) == 0 {
		return f
	}
	return fmt.Sprintf(f, e.Args...)
}

func inputErr(key string, args ...any) error { return &InputError{Key: key, Args: args} }

func lockedErr(key string, args ...any) error {
	return &InputError{Key: key, Args: args, Sentinel: ErrLocked}
}

func conflictErr(key string, args ...any) error {
	return &InputError{Key: key, Args: args, Sentinel: ErrConflict}
}

// MessageOf returns the user-facing message of err in lang when it is an
// *InputError, else "".
func MessageOf(err error, lang string) string {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie.Message(lang)
	}
	return ""
}
