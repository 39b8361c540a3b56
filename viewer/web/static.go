package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// Assets serves embedded static files at content-hash URLs
// (/static/<hash>/<name>), so a changed file gets a new URL and every URL
// can be cached forever.
type Assets struct {
	prefix string
	files  map[string]asset // by name
	byHash map[string]asset // by "hash/name"
}

type asset struct {
	name, hash, ctype string
	body              []byte
}

// NewAssets indexes every file of fsys (recursively) for serving under prefix.
func NewAssets(prefix string, fsys ...fs.FS) (*Assets, error) {
	a := &Assets{prefix: strings.TrimSuffix(prefix, "/"), files: map[string]asset{}, byHash: map[string]asset{}}
	for _, f := range fsys {
		err := fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(f, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			h := hex.EncodeToString(sum[:6])
			ct := mime.TypeByExtension(path.Ext(p))
			if ct == "" {
				ct = "application/octet-stream"
			}
			if _, dup := a.files[p]; dup {
				return fmt.Errorf("web: static asset %s given twice", p)
			}
			as := asset{name: p, hash: h, ctype: ct, body: b}
			a.files[p] = as
			a.byHash[h+"/"+p] = as
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("web: index assets: %w", err)
		}
	}
	return a, nil
}

// URL returns the content-hash URL of a named asset. Unknown names panic in
// templates at parse-check time (see CheckTemplates), never silently 404.
func (a *Assets) URL(name string) (string, error) {
	as, ok := a.files[name]
	if !ok {
		return "", fmt.Errorf("web: unknown static asset %q", name)
	}
	return a.prefix + "/" + as.hash + "/" + as.name, nil
}

// Prefix is the URL prefix the assets are mounted under.
func (a *Assets) Prefix() string { return a.prefix }

// ServeHTTP serves /<prefix>/<hash>/<name>.
func (a *Assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, a.prefix+"/")
	as, ok := a.byHash[key]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", as.ctype)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("ETag", `"`+as.hash+`"`)
	if r.Header.Get("If-None-Match") == `"`+as.hash+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(as.body)
}
