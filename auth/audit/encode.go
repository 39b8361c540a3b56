package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// HashSize is the size of chain hashes (SHA-256).
const HashSize = sha256.Size

// zeroHash is prev_hash of the first seal and the hash of the empty chain.
var zeroHash = make([]byte, HashSize)

// eventRow is an audit.event row as the hash sees it. Every column is
// nullable here: a tampered table may hold what the schema forbids, and the
// encoding must still be defined.
type eventRow struct {
	ID               *int64
	At               *time.Time
	TenantID         *int64
	UserID           *int64
	Username         *string
	Role             *string
	Action           *string
	PersonID         *int64
	Object           *string
	RequestID        *string
	SourceAddr       *string // inet as PostgreSQL prints it
	BreakGlassReason *string
	Detail           *string // jsonb as PostgreSQL prints it (normalised)
	WriterXID        *int64
}

// scanTargets returns pointers for rows.Scan in the column order of the
// audit.seal_candidates and audit.chain_page functions.
func (e *eventRow) scanTargets() []any {
	return []any{&e.ID, &e.At, &e.TenantID, &e.UserID, &e.Username, &e.Role, &e.Action,
		&e.PersonID, &e.Object, &e.RequestID, &e.SourceAddr, &e.BreakGlassReason, &e.Detail, &e.WriterXID}
}

// encodingV1 is the first byte of the canonical encoding.
const encodingV1 = 1

// appendCanonical appends the canonical encoding of e (version 1): a version
// byte, then for every column in table order a presence byte (0 = NULL,
// 1 = value) followed by the value: integers as 8 bytes big-endian,
// timestamps as microseconds since the Unix epoch (8 bytes big-endian), text
// as a 4-byte big-endian length and the UTF-8 bytes. The encoding is
// injective: no two different rows encode alike.
func appendCanonical(b []byte, e *eventRow) []byte {
	b = append(b, encodingV1)
	b = appendInt(b, e.ID)
	if e.At == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixMicro()))
	}
	b = appendInt(b, e.TenantID)
	b = appendInt(b, e.UserID)
	b = appendText(b, e.Username)
	b = appendText(b, e.Role)
	b = appendText(b, e.Action)
	b = appendInt(b, e.PersonID)
	b = appendText(b, e.Object)
	b = appendText(b, e.RequestID)
	b = appendText(b, e.SourceAddr)
	b = appendText(b, e.BreakGlassReason)
	b = appendText(b, e.Detail)
	b = appendInt(b, e.WriterXID)
	return b
}

func appendInt(b []byte, v *int64) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return binary.BigEndian.AppendUint64(b, uint64(*v))
}

func appendText(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(*s)))
	return append(b, *s...)
}

// chainHash returns SHA-256(prev || canonical(e)); buf is scratch space.
func chainHash(prev []byte, e *eventRow, buf []byte) (sum []byte, scratch []byte) {
	buf = appendCanonical(buf[:0], e)
	h := sha256.New()
	h.Write(prev)
	h.Write(buf)
	return h.Sum(nil), buf
}
