package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
)

// Languages Molar speaks. Danish is the default.
const (
	Danish  = "da"
	English = "en"
)

//go:embed i18n/*.json
var catalogFS embed.FS

// Catalog holds UI messages per language. Keys are dotted ("nav.patients").
type Catalog struct {
	mu   sync.RWMutex
	msgs map[string]map[string]string
}

// NewCatalog loads the core's Danish and English messages.
func NewCatalog() (*Catalog, error) {
	c := &Catalog{msgs: map[string]map[string]string{}}
	for _, lang := range []string{Danish, English} {
		b, err := catalogFS.ReadFile("i18n/" + lang + ".json")
		if err != nil {
			return nil, fmt.Errorf("web: catalog %s: %w", lang, err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("web: catalog %s: %w", lang, err)
		}
		c.msgs[lang] = m
	}
	return c, nil
}

// Add merges messages (lang → key → text), e.g. from a module.
func (c *Catalog) Add(msgs map[string]map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for lang, m := range msgs {
		if c.msgs[lang] == nil {
			c.msgs[lang] = map[string]string{}
		}
		for k, v := range m {
			c.msgs[lang][k] = v
		}
	}
}

// T returns the message for key in lang, falling back to Danish, then to the key.
// Extra arguments are applied with fmt.Sprintf.
func (c *Catalog) T(lang, key string, args ...any) string {
	c.mu.RLock()
	s, ok := c.msgs[lang][key]
	if !ok {
		s, ok = c.msgs[Danish][key]
	}
	c.mu.RUnlock()
	if !ok {
		s = key
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Missing lists keys present in one language and absent in another.
func (c *Catalog) Missing() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for _, a := range []string{Danish, English} {
		for _, b := range []string{Danish, English} {
			if a == b {
				continue
			}
			for k := range c.msgs[a] {
				if _, ok := c.msgs[b][k]; !ok {
					out = append(out, b+":"+k)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// LangCookie remembers the chosen language.
const LangCookie = "molar_lang"

// Lang picks the request's language: ?lang=, then the language cookie,
// then Danish. The browser's Accept-Language is not used: staff and citizens
// of a Danish municipality get Danish unless they choose English, whatever
// language their browser was installed in.
func Lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == Danish || l == English {
		return l
	}
	if c, err := r.Cookie(LangCookie); err == nil && (c.Value == Danish || c.Value == English) {
		return c.Value
	}
	return Danish
}
