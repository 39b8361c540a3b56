package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"
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

// flowKey derives the flow cookies' key: from the providers' client
// secrets, so that every instance of an installation opens the others'
// cookies; without any secret (public clients only), a key of this process
// (a login started before a restart, or on another instance, then fails
// and is started again).
func flowKey(providers []OIDCConfig) []byte {
	m := hmac.New(sha256.New, []byte("molar/oidc-flow/v1"))
	secret := false
	for _, p := range providers {
		if p.ClientSecret != "" {
			secret = true
			m.Write([]byte(p.Name))
			m.Write([]byte{0})
			m.Write([]byte(p.ClientSecret))
			m.Write([]byte{0})
		}
	}
	if !secret {
		return randomBytes(32)
	}
	return m.Sum(nil)
}

func (s *Service) flowAEAD() cipher.AEAD {
	block, err := aes.NewCipher(s.flowKey)
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return g
}

// oidcFlowCookieName is the flow cookie: behind https a __Host- cookie on
// path / (no cookie planted over http or from a sibling domain poses as
// it), else a plain one on the callback's path.
func (s *Service) oidcFlowCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: oidcStateCookie, Value: value, Path: "/auth/oidc/", MaxAge: maxAge, HttpOnly: true,
		Secure: s.secureRequest(r), SameSite: http.SameSiteLaxMode}
	if s.secureRequest(r) {
		c.Name, c.Path = secureOIDCStateCookie, "/"
	}
	return c
}

// sealFlow sets the flow cookie.
func (s *Service) sealFlow(w http.ResponseWriter, r *http.Request, f oidcFlow) {
	if len(f.Next) > maxNextLength {
		f.Next = "/"
	}
	plain, _ := json.Marshal(f)
	aead := s.flowAEAD()
	nonce := randomBytes(aead.NonceSize())
	sealed := aead.Seal(nonce, nonce, plain, []byte(oidcStateCookie))
	http.SetCookie(w, s.oidcFlowCookie(r, base64.RawURLEncoding.EncodeToString(sealed), int(oidcFlowLifetime/time.Second)))
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
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	aead := s.flowAEAD()
	if err != nil || len(sealed) < aead.NonceSize() {
		return f, errFlowBroken
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(oidcStateCookie))
	if err != nil || json.Unmarshal(plain, &f) != nil {
		return f, errFlowBroken
	}
	if age := s.now().Sub(f.Created); age > oidcFlowLifetime || age < -time.Minute {
		return f, errFlowExpired
	}
	return f, nil
}
