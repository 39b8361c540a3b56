// Package media moves DICOM in and out of Molar outside the network
// protocols: it wraps photographs and scans in DICOM (JPEG/PNG/TIFF as VL
// Photographic or Secondary Capture images, STL and PLY as Encapsulated
// STL), writes PS3.10 media (a folder or a ZIP with DICOM/… files and a
// DICOMDIR) and de-identifies with the PS3.15 Basic Application Level
// Confidentiality Profile.
//
// UIDs made here are under the 2.25 root (PS3.5 B.2): the decimal value of
// a UUID, random (NewUID) or derived from a name with SHA-256 (UIDFrom), so
// that wrapping the same file for the same person twice gives the same
// instance (a second import is a duplicate, not a copy).
package media

import (
	"crypto/rand"
	"crypto/sha256"
	"math/big"
)

// NewUID returns a fresh random UID 2.25.<UUID v4 as a decimal>.
func NewUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80
	return uuidUID(b)
}

// UIDFrom returns the UID derived from the parts (UUID version 8 layout
// filled from their SHA-256): the same parts give the same UID.
func UIDFrom(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x80 // version 8
	b[8] = b[8]&0x3f | 0x80
	return uuidUID(b)
}

func uuidUID(b [16]byte) string {
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}
