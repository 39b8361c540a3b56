package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/storage/postgres"
)

// Config configures the Service. The zero value works for a local set-up
// (no OIDC, plain HTTP); durations and limits left zero take the defaults.
type Config struct {
	// PublicURL is the URL users reach the server at (e.g.
	// "https://molar.kommune.dk"). When it is https, cookies are Secure even
	// behind a TLS-terminating proxy; it is also the origin that state-changing
	// requests must come from. Empty: taken from each request.
	PublicURL string

	// IdleTimeout ends a staff session after this long without a request
	// (default 30 min); CitizenIdleTimeout does so for citizens (default 15
	// min, issue 8). AbsoluteTimeout ends any session this long after login
	// (default 12 h).
	IdleTimeout        time.Duration
	CitizenIdleTimeout time.Duration
	AbsoluteTimeout    time.Duration

	// MaxFailedLogins failed logins within FailureWindow lock an account
	// (defaults 3 and 24 h, per typical Danish data-processor terms).
	MaxFailedLogins int
	FailureWindow   time.Duration

	// Per source address, LoginFailureBurst failed attempts are allowed at
	// once, then one more every LoginFailureEvery (defaults 10 and 1 min).
	// Further attempts answer 429 without checking credentials and without
	// counting toward any account's lock-out. A negative burst disables the
	// limit.
	LoginFailureBurst int
	LoginFailureEvery time.Duration
	// TrustedProxies may set X-Forwarded-For (the load balancer's addresses).
	TrustedProxies []netip.Prefix

	// BreakGlassDuration is how long a break-the-glass grant lasts (default 4 h).
	BreakGlassDuration time.Duration

	// PublicPaths are reachable without authentication besides the built-in
	// ones (/login, /auth/oidc/, /healthz, /readyz, /metrics, /static/,
	// /favicon.ico). An entry ending in "/" is a prefix.
	PublicPaths []string

	// OIDC lists the OpenID providers (MitID broker for citizens, the
	// municipality's staff directory …). The first is the default.
	OIDC []OIDCConfig
	// HTTPClient reaches the OpenID providers (default http.DefaultClient).
	HTTPClient *http.Client

	// Argon2 sets the parameters of new password hashes (default DefaultArgon2Params).
	Argon2 *argon2id.Params
	// Notifier tells users about lock-outs and unlocks (optional).
	Notifier Notifier
	// LoginPage renders the login page (the web shell's); default a minimal page.
	LoginPage func(w http.ResponseWriter, r *http.Request, data LoginPageData)
	// Logger receives structured logs without names or CPR numbers.
	Logger *slog.Logger
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
}

// Service is the identity and access core bound to a database.
type Service struct {
	pool    *pgxpool.Pool
	cfg     Config
	log     *slog.Logger
	limiter *addrLimiter
	// flowKey seals the OpenID login cookies (oidcflow.go), loaded at the
	// first login.
	flowMu  sync.Mutex
	flowKey []byte
	basic   *credCache
	oidc    []*oidcProvider
	origin  string // scheme://host of PublicURL, or ""
	secure  bool   // PublicURL is https
	public  []string

	dummyHash string
	// hashSlots bounds concurrent argon2id verifications (each takes the
	// hash's memory, 46 MiB by default), so a flood of logins cannot exhaust memory.
	hashSlots chan struct{}
}

// New makes a Service. It does not contact the OpenID providers: discovery
// happens at first use and is retried until it succeeds.
func New(pool *pgxpool.Pool, cfg Config) (*Service, error) {
	if pool == nil {
		return nil, fmt.Errorf("auth: %w: no database pool", ErrInvalidInput)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleTimeout, 30*time.Minute)
	def(&cfg.CitizenIdleTimeout, 15*time.Minute)
	def(&cfg.AbsoluteTimeout, 12*time.Hour)
	def(&cfg.FailureWindow, 24*time.Hour)
	def(&cfg.LoginFailureEvery, time.Minute)
	def(&cfg.BreakGlassDuration, DefaultBreakGlassDuration)
	if cfg.MaxFailedLogins <= 0 {
		cfg.MaxFailedLogins = 3
	}
	if cfg.LoginFailureBurst == 0 {
		cfg.LoginFailureBurst = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.LoginPage == nil {
		cfg.LoginPage = DefaultLoginPage
	}
	s := &Service{pool: pool, cfg: cfg, log: cfg.Logger,
		limiter:   newAddrLimiter(cfg.LoginFailureEvery, cfg.LoginFailureBurst),
		basic:     newCredCache(5 * time.Minute),
		hashSlots: make(chan struct{}, max(2, runtime.NumCPU())),
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("auth: %w: public URL %q is not an http(s) URL", ErrInvalidInput, cfg.PublicURL)
		}
		s.origin = u.Scheme + "://" + u.Host
		s.secure = u.Scheme == "https"
	}
	s.public = append([]string{"/login", "/login/", "/auth/oidc/", "/healthz", "/readyz", "/metrics", "/static/", "/favicon.ico"}, cfg.PublicPaths...)
	names := map[string]bool{}
	for i, oc := range cfg.OIDC {
		p, err := newOIDCProvider(oc, i)
		if err != nil {
			return nil, err
		}
		if names[p.cfg.Name] {
			return nil, fmt.Errorf("auth: %w: OIDC provider name %q given twice", ErrInvalidInput, p.cfg.Name)
		}
		names[p.cfg.Name] = true
		s.oidc = append(s.oidc, p)
	}
	// A hash to verify against when the user does not exist, so that timing
	// does not tell which usernames exist.
	h, err := argon2id.CreateHash(randomToken(), s.argon2())
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s.dummyHash = h
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Now() }

func (s *Service) argon2() *argon2id.Params {
	if s.cfg.Argon2 != nil {
		return s.cfg.Argon2
	}
	return DefaultArgon2Params
}

// Pool returns the database pool the service uses.
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// CreateUser creates an account (see CreateUser).
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	var u User
	err := postgres.InTenant(ctx, s.pool, nu.TenantID, func(tx pgx.Tx) error {
		var err error
		u, err = CreateUser(ctx, tx, nu, s.argon2())
		return err
	})
	return u, err
}

// SetPassword sets a user's local password and ends the user's sessions.
func (s *Service) SetPassword(ctx context.Context, userID int64, password string) error {
	h, err := HashPassword(password, s.argon2())
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE auth.users SET password_hash = $2, password_changed = $3 WHERE id = $1`, userID, h, s.now())
	if err != nil {
		return dbErr("set password", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("auth: set password: %w", ErrNotFound)
	}
	return s.DeleteUserSessions(ctx, userID)
}

// Unlock unlocks an account and clears its failed logins. by is the admin
// doing it: they need PermAdminUsers and the same tenant as the account.
// The user gets a notice and is notified.
func (s *Service) Unlock(ctx context.Context, by *Principal, userID int64) error {
	if by == nil {
		return fmt.Errorf("auth: unlock: %w", ErrUnauthenticated)
	}
	if !by.Can(PermAdminUsers) {
		return fmt.Errorf("auth: unlock: %w", ErrForbidden)
	}
	u, err := GetUser(ctx, s.pool, userID)
	if err != nil {
		return err
	}
	if u.TenantID != by.TenantID {
		return fmt.Errorf("auth: unlock: %w", ErrNotFound) // other municipalities' accounts do not exist for this admin
	}
	now := s.now()
	var n Notice
	err = postgres.InTenant(ctx, s.pool, u.TenantID, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE auth.users SET locked_at = NULL WHERE id = $1`, userID); err != nil {
			return dbErr("unlock", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM auth.login_failure WHERE user_id = $1`, userID); err != nil {
			return dbErr("unlock", err)
		}
		if n, err = addNotice(ctx, tx, userID, NoticeAccountUnlocked, map[string]any{"by_user_id": by.UserID}, now); err != nil {
			return err
		}
		return recordAudit(ensureActor(ctx, by), tx, auditEvent{Action: actionUnlock, Object: fmt.Sprintf("auth.user/%d", userID),
			Detail: map[string]any{"change": "unlocked"}})
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "account unlocked", "user_id", userID, "tenant_id", u.TenantID, "by_user_id", by.UserID)
	s.notify(ctx, u, n)
	return nil
}

// LockedUsers lists the locked accounts of a tenant (for its admins).
func (s *Service) LockedUsers(ctx context.Context, tenantID int64) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM auth.users WHERE tenant_id = $1 AND locked_at IS NOT NULL ORDER BY locked_at`, tenantID)
	if err != nil {
		return nil, dbErr("locked users", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, dbErr("locked users", err)
		}
		out = append(out, u)
	}
	return out, dbErr("locked users", rows.Err())
}

func (s *Service) notify(ctx context.Context, u User, n Notice) {
	if s.cfg.Notifier == nil {
		return
	}
	if err := s.cfg.Notifier.Notify(context.WithoutCancel(ctx), u, n); err != nil {
		s.log.WarnContext(ctx, "notifying user failed", "user_id", u.ID, "notice", n.Kind, "err", err)
	}
}

// Access is the package's Access with the service's clock.
func (s *Service) Access(ctx context.Context, tx pgx.Tx, p *Principal, personID int64) (Decision, error) {
	return accessAt(ctx, tx, p, personID, s.now())
}

// RequireAccess is Access that returns ErrForbidden (wrapped) when refused.
func (s *Service) RequireAccess(ctx context.Context, tx pgx.Tx, p *Principal, personID int64) (Decision, error) {
	d, err := s.Access(ctx, tx, p, personID)
	if err == nil && !d.Allowed {
		err = fmt.Errorf("auth: access to person %d: %w", personID, ErrForbidden)
	}
	return d, err
}

// BreakGlass is the package's BreakGlass with the service's clock and duration.
func (s *Service) BreakGlass(ctx context.Context, tx pgx.Tx, p *Principal, personID int64, reason string) (Decision, error) {
	return breakGlassAt(ctx, tx, p, personID, reason, s.now(), s.cfg.BreakGlassDuration)
}

// PasswordLogin checks a username and password from source (the client's
// address), applying the per-address rate limit and the account lock-out.
// Errors: ErrRateLimited, ErrInvalidCredentials, ErrLocked (for a locked
// account whatever the password, so that guessing on it learns nothing).
func (s *Service) PasswordLogin(ctx context.Context, username, password string, source netip.Addr) (User, error) {
	key := limitKey(source)
	now := s.now()
	end, err := s.limiter.Begin(ctx, key, now)
	if errors.Is(err, errLimited) {
		s.log.WarnContext(ctx, "login attempt rate-limited", "source", source.String())
		return User{}, fmt.Errorf("auth: login: %w", ErrRateLimited)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: login: %w", err)
	}
	failed := true // also when checking panics
	defer func() { end(failed) }()
	u, err := s.checkPassword(ctx, username, password, source)
	// A locked account's right password is not a failure of the address
	// (its owner may try again); a wrong one is, though it too answers
	// ErrLocked: guessing costs a hash each time.
	failed = err != nil && (!errors.Is(err, ErrLocked) || errors.Is(err, errLockedWrongPassword))
	return u, err
}

// errLockedWrongPassword is ErrLocked for a wrong password.
var errLockedWrongPassword = fmt.Errorf("%w (wrong password)", ErrLocked)

func (s *Service) checkPassword(ctx context.Context, username, password string, source netip.Addr) (User, error) {
	if len(password) > 4*MaxPasswordLength {
		password = password[:4*MaxPasswordLength]
	}
	select {
	case s.hashSlots <- struct{}{}:
		defer func() { <-s.hashSlots }()
	case <-ctx.Done():
		return User{}, fmt.Errorf("auth: login: %w", ctx.Err())
	}
	u, err := UserByUsername(ctx, s.pool, username)
	if errors.Is(err, ErrNotFound) || (err == nil && !u.HasPassword) {
		_, _ = argon2id.ComparePasswordAndHash(password, s.dummyHash)
		s.log.InfoContext(ctx, "login failed", "reason", "unknown user or no local password", "source", source.String())
		return User{}, fmt.Errorf("auth: login: %w", ErrInvalidCredentials)
	}
	if err != nil {
		return User{}, err
	}
	ok, err := argon2id.ComparePasswordAndHash(password, u.passwordHash)
	if err != nil {
		return User{}, fmt.Errorf("auth: login: verify password: %w", err)
	}
	if u.Locked() {
		// The same answer whatever the password: a different one for the
		// right password would let guessing go on against a locked
		// account and tell the guesser when it hit.
		if !ok {
			s.log.InfoContext(ctx, "login failed", "reason", "locked account", "user_id", u.ID, "source", source.String())
			return User{}, fmt.Errorf("auth: login: %w", errLockedWrongPassword)
		}
		return User{}, fmt.Errorf("auth: login: %w", ErrLocked)
	}
	if ok {
		err := postgres.InTenant(ctx, s.pool, u.TenantID, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `DELETE FROM auth.login_failure WHERE user_id = $1`, u.ID); err != nil {
				return dbErr("login", err)
			}
			return recordAudit(withAuditActor(ctx, actorOf(ctx, u, source)), tx, auditEvent{Action: actionLogin, Object: fmt.Sprintf("auth.user/%d", u.ID),
				Detail: map[string]any{"method": "password"}})
		})
		if err != nil {
			return User{}, err
		}
		return u, nil
	}
	return User{}, s.recordFailure(ctx, u, source)
}

// recordFailure notes a failed login and locks the account when it reaches
// MaxFailedLogins within FailureWindow. It returns ErrInvalidCredentials.
func (s *Service) recordFailure(ctx context.Context, u User, source netip.Addr) error {
	now := s.now()
	var locked bool
	var failures int
	var n Notice
	err := postgres.InTenant(ctx, s.pool, u.TenantID, func(tx pgx.Tx) error {
		// Serialise concurrent failures of one account.
		var lockedAt *time.Time
		if err := tx.QueryRow(ctx, `SELECT locked_at FROM auth.users WHERE id = $1 FOR UPDATE`, u.ID).Scan(&lockedAt); err != nil {
			return dbErr("record failed login", err)
		}
		if lockedAt != nil {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO auth.login_failure (user_id, at, source) VALUES ($1, $2, $3)`, u.ID, now, source.String()); err != nil {
			return dbErr("record failed login", err)
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM auth.login_failure WHERE user_id = $1 AND at > $2`,
			u.ID, now.Add(-s.cfg.FailureWindow)).Scan(&failures); err != nil {
			return dbErr("record failed login", err)
		}
		// The one who tried is unknown: user id 0 and the name tried (audit.Actor).
		failed := actorOf(ctx, u, source)
		failed.UserID, failed.Role = 0, ""
		actx := withAuditActor(ctx, failed)
		if err := recordAudit(actx, tx, auditEvent{Action: actionLoginFailed, Object: fmt.Sprintf("auth.user/%d", u.ID)}); err != nil {
			return err
		}
		if failures < s.cfg.MaxFailedLogins {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE auth.users SET locked_at = $2 WHERE id = $1`, u.ID, now); err != nil {
			return dbErr("lock account", err)
		}
		var err error
		n, err = addNotice(ctx, tx, u.ID, NoticeAccountLocked, map[string]any{"failures": failures, "window_hours": s.cfg.FailureWindow.Hours()}, now)
		if err != nil {
			return err
		}
		locked = true
		return recordAudit(actx, tx, auditEvent{Action: actionLock, Object: fmt.Sprintf("auth.user/%d", u.ID),
			Detail: map[string]any{"change": "locked", "failures": failures}})
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "login failed", "reason", "wrong password", "user_id", u.ID, "source", source.String(), "failures", failures)
	if locked {
		u.LockedAt = now
		s.basic.forgetUser(u.ID)
		s.log.WarnContext(ctx, "account locked after failed logins", "user_id", u.ID, "tenant_id", u.TenantID,
			"failures", failures, "window", s.cfg.FailureWindow.String(), "source", source.String())
		s.notify(ctx, u, n)
	}
	return fmt.Errorf("auth: login: %w", ErrInvalidCredentials)
}

// TakeNotices returns the user's pending notices and marks them shown.
func (s *Service) TakeNotices(ctx context.Context, userID int64) ([]Notice, error) {
	var out []Notice
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if out, err = PendingNotices(ctx, tx, userID); err != nil || len(out) == 0 {
			return err
		}
		return MarkNoticesShown(ctx, tx, userID, s.now())
	})
	return out, err
}

func actorOf(ctx context.Context, u User, source netip.Addr) auditActor {
	return auditActor{UserID: u.ID, Username: u.Username, Role: u.Role, TenantID: u.TenantID,
		RequestID: requestIDFrom(ctx), SourceAddr: addrString(source)}
}

// credCache remembers recently verified HTTP Basic credentials (keyed by an
// HMAC of username and password with a per-process key) so that a viewer
// sending Basic on every request does not cost an argon2id hash each time.
// An entry is used only while the account's stored hash is unchanged.
type credCache struct {
	key []byte
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]credEntry
}

type credEntry struct {
	userID int64
	hash   string
	exp    time.Time
}

func newCredCache(ttl time.Duration) *credCache {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return &credCache{key: k, ttl: ttl, m: map[string]credEntry{}}
}

func (c *credCache) id(username, password string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(strings.ToLower(username)))
	m.Write([]byte{0})
	m.Write([]byte(password))
	return string(m.Sum(nil))
}

func (c *credCache) get(username, password string, now time.Time) (credEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[c.id(username, password)]
	if !ok || now.After(e.exp) {
		return credEntry{}, false
	}
	return e, true
}

func (c *credCache) put(username, password string, u User, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 10_000 {
		for k, e := range c.m {
			if now.After(e.exp) {
				delete(c.m, k)
			}
		}
		if len(c.m) > 10_000 {
			c.m = map[string]credEntry{}
		}
	}
	c.m[c.id(username, password)] = credEntry{userID: u.ID, hash: u.passwordHash, exp: now.Add(c.ttl)}
}

func (c *credCache) forgetUser(userID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.userID == userID {
			delete(c.m, k)
		}
	}
}

// basicLogin authenticates HTTP Basic credentials with the cache in front of
// PasswordLogin.
func (s *Service) basicLogin(ctx context.Context, username, password string, source netip.Addr) (User, error) {
	now := s.now()
	if e, ok := s.basic.get(username, password, now); ok {
		u, err := GetUser(ctx, s.pool, e.userID)
		if err == nil && !u.Locked() && u.passwordHash == e.hash && strings.EqualFold(u.Username, username) {
			return u, nil
		}
	}
	u, err := s.PasswordLogin(ctx, username, password, source)
	if err != nil {
		return User{}, err
	}
	s.basic.put(username, password, u, now)
	return u, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("auth: no randomness: %v", err)) // crypto/rand does not fail on supported systems
	}
	return b
}

// randomToken returns 256 random bits, base64url without padding.
func randomToken() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// CheckPassword checks a username and password that come without an HTTP
// request (a DICOM association's user identity) as HTTP Basic is checked:
// rate limit per source, lock-out, the short-lived cache in front of the
// hash. Errors: ErrInvalidCredentials, ErrLocked, ErrRateLimited.
func (s *Service) CheckPassword(ctx context.Context, username, password string, source netip.Addr) (*Principal, error) {
	u, err := s.basicLogin(ctx, username, password, source)
	if err != nil {
		return nil, err
	}
	return u.Principal(MethodBasic), nil
}

// CheckBearer checks a JWT of a configured OpenID provider that comes
// without an HTTP request (a DICOM association's user identity) as a
// bearer token is checked. Errors: ErrInvalidCredentials, ErrForbidden,
// ErrNoRole, ErrLocked, ErrRateLimited, ErrUnavailable.
func (s *Service) CheckBearer(ctx context.Context, token string, source netip.Addr) (*Principal, error) {
	return s.bearerLogin(ctx, token, source)
}
