package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"sync"
)

//go:embed templates/*.html
var coreTemplates embed.FS

//go:embed static
var coreStatic embed.FS

// CoreStatic is the shell's own static files (CSS, shared JS).
func CoreStatic() fs.FS { sub, _ := fs.Sub(coreStatic, "static"); return sub }

// NavItem is one entry in the shell's navigation.
type NavItem struct {
	Label      string // message key
	Path       string
	Permission string
	Order      int
}

// User is what the layout shows of the signed-in person.
type User struct {
	Name string
	Role string
	// Can reports whether the user holds a permission (filters navigation).
	Can func(perm string) bool
}

// Shell renders server-side pages inside the common layout.
type Shell struct {
	Catalog *Catalog
	Assets  *Assets
	Logger  *slog.Logger
	// UserOf returns the signed-in user of a request (nil when anonymous).
	UserOf func(*http.Request) *User
	// CSRFToken returns the CSRF token for forms in a request ("" when none).
	CSRFToken func(*http.Request) string

	mu    sync.RWMutex
	nav   []NavItem
	pages map[string]*template.Template
}

// NewShell builds a shell with the core layout.
func NewShell(cat *Catalog, assets *Assets, log *slog.Logger) *Shell {
	return &Shell{Catalog: cat, Assets: assets, Logger: log, pages: map[string]*template.Template{}}
}

// AddNav adds navigation entries (from the core and modules).
func (s *Shell) AddNav(items ...NavItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nav = append(s.nav, items...)
	sort.SliceStable(s.nav, func(i, j int) bool { return s.nav[i].Order < s.nav[j].Order })
}

// View is the data every page template gets as ".".
type View struct {
	Lang      string
	OtherLang string
	Title     string
	User      *User
	Nav       []NavItem
	Path      string
	CSRF      string
	Data      any
}

// funcs are the template functions; T and asset are bound per request.
func (s *Shell) funcs(lang string) template.FuncMap {
	return template.FuncMap{
		"T": func(key string, args ...any) string { return s.Catalog.T(lang, key, args...) },
		"asset": func(name string) (string, error) {
			return s.Assets.URL(name)
		},
	}
}

// AddPages parses page templates from fsys (glob pattern): each file
// defines "title" and "content" (and optionally "head") and is rendered
// inside the layout under its base file name without extension.
func (s *Shell) AddPages(fsys fs.FS, pattern string) error {
	return s.AddPagesWith(fsys, pattern, "")
}

// AddPagesWith is AddPages where every page also gets the templates of the
// files matching partials (shared blocks such as a tab bar), e.g. "*.tmpl".
func (s *Shell) AddPagesWith(fsys fs.FS, pattern, partials string) error {
	var partialFiles []string
	if partials != "" {
		var err error
		if partialFiles, err = fs.Glob(fsys, partials); err != nil {
			return fmt.Errorf("web: %w", err)
		}
	}
	files, err := fs.Glob(fsys, pattern)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	if len(files) == 0 {
		return fmt.Errorf("web: no templates match %s", pattern)
	}
	for _, f := range files {
		if pageName(f) == "layout" {
			continue
		}
		base := template.New("layout.html").Funcs(s.funcs(Danish))
		if _, err := base.ParseFS(coreTemplates, "templates/layout.html"); err != nil {
			return fmt.Errorf("web: layout: %w", err)
		}
		if len(partialFiles) > 0 {
			if _, err := base.ParseFS(fsys, partialFiles...); err != nil {
				return fmt.Errorf("web: parse partials: %w", err)
			}
		}
		t, err := base.ParseFS(fsys, f)
		if err != nil {
			return fmt.Errorf("web: parse %s: %w", f, err)
		}
		name := pageName(f)
		s.mu.Lock()
		if _, dup := s.pages[name]; dup {
			s.mu.Unlock()
			return fmt.Errorf("web: page %q defined twice", name)
		}
		s.pages[name] = t
		s.mu.Unlock()
	}
	return nil
}

func pageName(f string) string {
	b := f
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '/' {
			b = b[i+1:]
			break
		}
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '.' {
			return b[:i]
		}
	}
	return b
}

// Render writes page with data inside the layout.
func (s *Shell) Render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	s.mu.RLock()
	t, ok := s.pages[page]
	s.mu.RUnlock()
	if !ok {
		s.Logger.Error("unknown page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	lang := Lang(r)
	v := View{Lang: lang, OtherLang: English, Path: r.URL.Path, Data: data}
	if lang == English {
		v.OtherLang = Danish
	}
	if s.UserOf != nil {
		v.User = s.UserOf(r)
	}
	if s.CSRFToken != nil {
		v.CSRF = s.CSRFToken(r)
	}
	if v.User != nil {
		s.mu.RLock()
		for _, n := range s.nav {
			if n.Permission == "" || (v.User.Can != nil && v.User.Can(n.Permission)) {
				v.Nav = append(v.Nav, n)
			}
		}
		s.mu.RUnlock()
	}
	t, err := t.Clone()
	if err == nil {
		t = t.Funcs(s.funcs(lang))
	}
	var buf bytes.Buffer
	if err == nil {
		err = t.ExecuteTemplate(&buf, "layout.html", v)
	}
	if err != nil {
		s.Logger.Error("render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", lang)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Pages lists the registered page names.
func (s *Shell) Pages() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for k := range s.pages {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CorePages is the shell's own pages (login, home, error).
func CorePages() fs.FS { sub, _ := fs.Sub(coreTemplates, "templates"); return sub }
