package index

import (
	"strings"
	"unicode/utf8"
)

// FuzzyKey folds a name for Danish-aware fuzzy matching: lower case; æ→ae,
// ø→oe, å→aa (and ä, ö, ü, so "Søren", "Soeren" and "Sören" meet, while Ø
// is never O); common accents dropped; every run of other characters
// (DICOM's ^ and =, spaces, hyphens) becomes one space. dicom.fuzzy_key in
// SQL does the same (a test keeps them in step).
func FuzzyKey(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	space := true // suppress leading spaces
	for _, r := range s {
		rep := fold(r)
		if rep == "" {
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		b.WriteString(rep)
		space = false
	}
	return strings.TrimRight(b.String(), " ")
}

const accentsFrom = "éèêëáàâãíìîïóòôõúùûýÿñçðÉÈÊËÁÀÂÃÍÌÎÏÓÒÔÕÚÙÛÝÑÇÐ"
const accentsTo = "eeeeaaaaiiiioooouuuyyncdeeeeaaaaiiiioooouuuyncd"

var accentMap = func() map[rune]byte {
	m := map[rune]byte{}
	to := []byte(accentsTo)
	i := 0
	for _, r := range accentsFrom {
		m[r] = to[i]
		i++
	}
	if i != len(to) || !utf8.ValidString(accentsFrom) {
		panic("index: accent tables differ in length")
	}
	return m
}()

// fold maps one rune to its fuzzy form: "" for a separator.
func fold(r rune) string {
	switch r {
	case 'æ', 'Æ', 'ä', 'Ä':
		return "ae"
	case 'ø', 'Ø', 'ö', 'Ö':
		return "oe"
	case 'å', 'Å':
		return "aa"
	case 'ü', 'Ü':
		return "ue"
	}
	if c, ok := accentMap[r]; ok {
		return string(rune(c))
	}
	switch {
	case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return string(r)
	case r >= 'A' && r <= 'Z':
		return string(r + 'a' - 'A')
	}
	return ""
}

// NormalizeName trims a DICOM person name as stored: surrounding spaces,
// and empty trailing components ("Hansen^Jens^^^" → "Hansen^Jens").
func NormalizeName(pn string) string {
	pn = strings.TrimSpace(pn)
	for strings.HasSuffix(pn, "^") || strings.HasSuffix(pn, " ") {
		pn = strings.TrimRight(strings.TrimRight(pn, "^"), " ")
	}
	return pn
}
