package auth

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
)

// An OpenID login in flight (state, nonce, PKCE verifier, where to go
// next) lives in the browser, in a cookie sealed with AES-GCM, not in the
// database: starting a login needs no credentials, so it must cost the
// server nothing it keeps (no row per start to flood), and nothing limits
// how many people may start one at once.

// oidcFlowLifetime bounds the time between starting a login and the callback.
const oidcFlowLifetime = 10 * time.Minute

// maxNextLength bounds the return path a flow carries (a longer one
// returns to /).
const maxNextLength = 1024

type oidcFlow struct {
	State    string    `json:"s"`
	Provider string    `json:"p"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Next     string    `json:"x"`
	Created  time.Time `json:"t"`
}

// flowAEAD returns the cipher that seals flow cookies, with the
// installation's key (auth.secret 'oidc_flow': 32 random bytes, made once by
// the first server that needs it, so every instance opens the others'
// cookies and restarts keep logins in flight). It is loaded once; a failure
// is retried on the next login.
func (s *Service) flowAEAD(ctx context.Context) (cipher.AEAD, error) {
	s.flowMu.Lock()
	defer s.flowMu.Unlock()
	if s.flowKey == nil {
		var key []byte
		var err error
		// Twice: a server that lost the race to make the key may not see
		// the winner's row in its statement's snapshot; it does next time.
		for range 2 {
			err = s.pool.QueryRow(ctx, `WITH made AS (
					INSERT INTO auth.secret (name, value) VALUES ('oidc_flow', $1) ON CONFLICT (name) DO NOTHING RETURNING value)
				SELECT value FROM made UNION ALL SELECT value FROM auth.secret WHERE name = 'oidc_flow' LIMIT 1`, randomBytes(32)).Scan(&key)
			if !errors.Is(err, pgx.ErrNoRows) {
				break
			}
		}
		if err != nil {
			return nil, dbErr("OIDC flow key", err)
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("auth: OIDC flow key: %d bytes, want 32", len(key))
		}
		s.flowKey = key
	}
	block, err := aes.NewCipher(s.flowKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// flowAAD binds a sealed flow to its purpose and format.
var flowAAD = []byte("molar/oidc-flow/v1")

// maxFlowCookie bounds the flow cookie's value (browsers keep cookies of up
// to 4 KB, name and attributes included).
const maxFlowCookie = 3800

// oidcFlowCookie is the flow cookie: behind https a __Host- cookie on
// path / (no cookie planted over http or from a sibling domain poses as
// it), else a plain one on the callback's path.
func (s *Service) oidcFlowCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: s.cookieName(r, oidcStateCookie), Value: value, Path: "/auth/oidc/", MaxAge: maxAge, HttpOnly: true,
		Secure: s.secureRequest(r), SameSite: http.SameSiteLaxMode}
	if s.secureRequest(r) {
		c.Path = "/" // a __Host- cookie's path
	}
	return c
}

// sealFlow sets the flow cookie.
func (s *Service) sealFlow(ctx context.Context, w http.ResponseWriter, r *http.Request, f oidcFlow) error {
	aead, err := s.flowAEAD(ctx)
	if err != nil {
		return err
	}
	seal := func(f oidcFlow) string {
		var plain bytes.Buffer
		enc := json.NewEncoder(&plain)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(f)
		nonce := randomBytes(aead.NonceSize())
		return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain.Bytes(), flowAAD))
	}
	if len(f.Next) > maxNextLength {
		f.Next = "/"
	}
	v := seal(f)
	if len(v) > maxFlowCookie { // a return path that escapes to too much
		f.Next = "/"
		v = seal(f)
	}
	http.SetCookie(w, s.oidcFlowCookie(r, v, int(oidcFlowLifetime/time.Second)))
	return nil
}

// Why a flow cookie is refused.
var (
	errNoFlow      = errors.New("no login in flight in this browser")
	errFlowBroken  = errors.New("login cookie not ours or altered")
	errFlowExpired = errors.New("login took too long")
)

// openFlow reads and removes the flow cookie of the callback r.
func (s *Service) openFlow(w http.ResponseWriter, r *http.Request) (oidcFlow, error) {
	var f oidcFlow
	empty := s.oidcFlowCookie(r, "", -1)
	http.SetCookie(w, empty)
	c, err := r.Cookie(empty.Name)
	if err != nil || c.Value == "" {
		return f, errNoFlow
	}
	aead, err := s.flowAEAD(r.Context())
	if err != nil {
		return f, err
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(sealed) < aead.NonceSize() {
		return f, errFlowBroken
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], flowAAD)
	if err != nil || json.Unmarshal(plain, &f) != nil {
		return f, errFlowBroken
	}
	if age := s.now().Sub(f.Created); age > oidcFlowLifetime || age < -time.Minute {
		return f, errFlowExpired
	}
	return f, nil
}
