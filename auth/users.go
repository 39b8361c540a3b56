package auth

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"
	"github.com/jackc/pgx/v5"
)

// DefaultArgon2Params are the argon2id parameters for new password hashes
// (OWASP Password Storage Cheat Sheet: 46 MiB, 1 iteration, 1 lane).
// Existing hashes keep the parameters they were made with.
var DefaultArgon2Params = &argon2id.Params{Memory: 46 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// Password length bounds (characters).
const (
	MinPasswordLength = 10
	MaxPasswordLength = 1024
)

// User is an account: staff, or a citizen (PersonID set).
type User struct {
	ID          int64
	TenantID    int64
	Username    string
	DisplayName string
	Role        string
	PersonID    int64 // 0 = none
	HasPassword bool
	OIDCIssuer  string
	OIDCSubject string
	LockedAt    time.Time // zero = not locked
	Created     time.Time

	passwordHash string
}

// Locked reports whether the account is locked.
func (u User) Locked() bool { return !u.LockedAt.IsZero() }

// NewUser describes an account to create.
type NewUser struct {
	TenantID    int64
	Username    string
	DisplayName string
	Role        string
	// Password, when not empty, becomes the local password (hashed with argon2id).
	Password string
	// PersonID links the account to a person of the register (required for citizens).
	PersonID    int64
	OIDCIssuer  string
	OIDCSubject string
}

// HashPassword hashes a password with argon2id after checking its length.
func HashPassword(password string, params *argon2id.Params) (string, error) {
	if err := checkPassword(password); err != nil {
		return "", err
	}
	if params == nil {
		params = DefaultArgon2Params
	}
	h, err := argon2id.CreateHash(password, params)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return h, nil
}

func checkPassword(password string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLength {
		return fmt.Errorf("%w: at least %d characters", ErrWeakPassword, MinPasswordLength)
	}
	if n > MaxPasswordLength {
		return fmt.Errorf("%w: password longer than %d characters", ErrInvalidInput, MaxPasswordLength)
	}
	return nil
}

func validUsername(u string) bool {
	if u == "" || len(u) > 200 || strings.TrimSpace(u) != u {
		return false
	}
	for _, r := range u {
		if r < 0x21 || r == 0x7f { // no spaces or control characters
			return false
		}
	}
	return true
}

// CreateUser creates an account in q (any transaction: the users table is
// not under row-level security). The password is hashed with params (nil:
// DefaultArgon2Params).
func CreateUser(ctx context.Context, q Querier, nu NewUser, params *argon2id.Params) (User, error) {
	nu.Username = strings.TrimSpace(nu.Username)
	if nu.TenantID == 0 || !validUsername(nu.Username) {
		return User{}, fmt.Errorf("auth: create user: %w: tenant and a username without spaces are required", ErrInvalidInput)
	}
	if _, err := ParseCPR(nu.Username); err == nil {
		// The username goes into the audit log, where CPR numbers never go.
		return User{}, fmt.Errorf("auth: create user: %w: a CPR number cannot be a username", ErrInvalidInput)
	}
	if !ValidRole(nu.Role) {
		return User{}, fmt.Errorf("auth: create user: %w: unknown role %q", ErrInvalidInput, nu.Role)
	}
	if nu.Role == RoleCitizen && nu.PersonID == 0 {
		return User{}, fmt.Errorf("auth: create user: %w: a citizen account needs its person", ErrInvalidInput)
	}
	var hash *string
	if nu.Password != "" {
		h, err := HashPassword(nu.Password, params)
		if err != nil {
			return User{}, err
		}
		hash = &h
	}
	u := User{TenantID: nu.TenantID, Username: nu.Username, DisplayName: nu.DisplayName, Role: nu.Role, PersonID: nu.PersonID,
		HasPassword: hash != nil, OIDCIssuer: nu.OIDCIssuer, OIDCSubject: nu.OIDCSubject}
	err := q.QueryRow(ctx, `
		INSERT INTO auth.users (tenant_id, username, display_name, role, password_hash, password_changed, person_id, oidc_issuer, oidc_subject)
		VALUES ($1, $2, $3, $4, $5, CASE WHEN $5::text IS NULL THEN NULL ELSE now() END, NULLIF($6, 0), NULLIF($7, ''), NULLIF($8, ''))
		RETURNING id, created`,
		nu.TenantID, nu.Username, nu.DisplayName, nu.Role, hash, nu.PersonID, nu.OIDCIssuer, nu.OIDCSubject).Scan(&u.ID, &u.Created)
	if err != nil {
		return User{}, dbErr("create user", err)
	}
	return u, nil
}

const userColumns = `id, tenant_id, username, display_name, role, COALESCE(person_id, 0), COALESCE(password_hash, ''),
	COALESCE(oidc_issuer, ''), COALESCE(oidc_subject, ''), locked_at, created`

func scanUser(row pgx.Row) (User, error) {
	var u User
	var locked *time.Time
	err := row.Scan(&u.ID, &u.TenantID, &u.Username, &u.DisplayName, &u.Role, &u.PersonID, &u.passwordHash,
		&u.OIDCIssuer, &u.OIDCSubject, &locked, &u.Created)
	if err != nil {
		return User{}, err
	}
	u.HasPassword = u.passwordHash != ""
	if locked != nil {
		u.LockedAt = *locked
	}
	return u, nil
}

// GetUser reads an account by id.
func GetUser(ctx context.Context, q Querier, id int64) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM auth.users WHERE id = $1`, id))
	return u, dbErr("get user", err)
}

// UserByUsername reads an account by username (case-insensitive).
func UserByUsername(ctx context.Context, q Querier, username string) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM auth.users WHERE lower(username) = lower($1)`, username))
	return u, dbErr("user by username", err)
}

// SetUserRole changes an account's role.
func SetUserRole(ctx context.Context, q Querier, userID int64, role string) error {
	if !ValidRole(role) {
		return fmt.Errorf("auth: set role: %w: unknown role %q", ErrInvalidInput, role)
	}
	tag, err := q.Exec(ctx, `UPDATE auth.users SET role = $2 WHERE id = $1`, userID, role)
	if err != nil {
		return dbErr("set role", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("auth: set role: %w", ErrNotFound)
	}
	return nil
}

// Notice kinds.
const (
	NoticeAccountLocked   = "account_locked"
	NoticeAccountUnlocked = "account_unlocked"
)

// Notice is a message for a user, shown at the next login and sent through
// the Notifier (e-mail, later).
type Notice struct {
	ID      int64
	UserID  int64
	Kind    string
	Detail  map[string]any
	Created time.Time
}

// Notifier tells a user about their account (lock-out, unlock). The wiring
// plugs in e-mail or SMS; it must not log names or CPR numbers. Errors are
// logged and do not undo the lock-out.
type Notifier interface {
	Notify(ctx context.Context, u User, n Notice) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, u User, n Notice) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, u User, n Notice) error { return f(ctx, u, n) }

func addNotice(ctx context.Context, q Querier, userID int64, kind string, detail map[string]any, at time.Time) (Notice, error) {
	if detail == nil {
		detail = map[string]any{}
	}
	n := Notice{UserID: userID, Kind: kind, Detail: detail, Created: at}
	err := q.QueryRow(ctx, `INSERT INTO auth.notice (user_id, kind, detail, created) VALUES ($1, $2, $3, $4) RETURNING id`,
		userID, kind, detail, at).Scan(&n.ID)
	return n, dbErr("add notice", err)
}

// PendingNotices lists the notices a user has not seen yet, oldest first.
func PendingNotices(ctx context.Context, q Querier, userID int64) ([]Notice, error) {
	rows, err := q.Query(ctx, `SELECT id, user_id, kind, detail, created FROM auth.notice WHERE user_id = $1 AND shown_at IS NULL ORDER BY id`, userID)
	if err != nil {
		return nil, dbErr("notices", err)
	}
	defer rows.Close()
	var out []Notice
	for rows.Next() {
		var n Notice
		if err := rows.Scan(&n.ID, &n.UserID, &n.Kind, &n.Detail, &n.Created); err != nil {
			return nil, dbErr("notices", err)
		}
		out = append(out, n)
	}
	return out, dbErr("notices", rows.Err())
}

// MarkNoticesShown marks the user's pending notices as shown.
func MarkNoticesShown(ctx context.Context, q Querier, userID int64, at time.Time) error {
	_, err := q.Exec(ctx, `UPDATE auth.notice SET shown_at = $2 WHERE user_id = $1 AND shown_at IS NULL`, userID, at)
	return dbErr("mark notices", err)
}
