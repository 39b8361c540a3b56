package journal

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"strings"
)

//go:embed data/sks-diagnoses-DK00-DK14.tsv
var sksDiagnoses []byte

// SKSCode is one SKS diagnosis code (urn:oid:1.2.208.176.2.4).
type SKSCode struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// SKS is the searchable list of dental SKS diagnosis codes (DK00–DK14,
// diseases of the oral cavity, salivary glands and jaws; see data/SOURCES.md).
type SKS struct {
	codes  []SKSCode
	byCode map[string]string
	norm   []string // normalised "code text" per code
}

// LoadSKS parses the embedded code list.
func LoadSKS() (*SKS, error) {
	s := &SKS{byCode: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(sksDiagnoses))
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			continue
		}
		code, text, ok := strings.Cut(line, "\t")
		if !ok || code == "" {
			continue
		}
		text = danishSpelling(text)
		s.codes = append(s.codes, SKSCode{Code: code, Text: text})
		s.byCode[code] = text
		s.norm = append(s.norm, foldDanish(code+" "+text))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal: SKS codes: %w", err)
	}
	return s, nil
}

// Lookup returns the text of a code.
func (s *SKS) Lookup(code string) (string, bool) {
	if s == nil {
		return "", false
	}
	t, ok := s.byCode[code]
	return t, ok
}

// Search finds codes whose code starts with the query or whose text holds
// every word of it, case-insensitively and with the Danish letters folded
// (æ = ae, ø = oe, å = aa: the list is transliterated), at most limit.
func (s *SKS) Search(q string, limit int) []SKSCode {
	if s == nil {
		return nil
	}
	words := strings.Fields(foldDanish(q))
	if len(words) == 0 {
		return nil
	}
	if limit <= 0 {
		limit = 20
	}
	var prefix, other []SKSCode
	for i, c := range s.codes {
		if len(words) == 1 && strings.HasPrefix(strings.ToLower(c.Code), words[0]) {
			prefix = append(prefix, c)
			continue
		}
		all := true
		for _, w := range words {
			if !strings.Contains(s.norm[i], w) {
				all = false
				break
			}
		}
		if all {
			other = append(other, c)
		}
	}
	out := append(prefix, other...)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// foldDanish lower-cases s and writes æ, ø, å as ae, oe, aa.
func foldDanish(s string) string {
	s = strings.ToLower(s)
	return strings.NewReplacer("æ", "ae", "ø", "oe", "å", "aa", "é", "e").Replace(s)
}
