package journal

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations is the journal's schema ("journal"); it needs auth's.
func Migrations() postgres.Source {
	sub, _ := fs.Sub(migrations, "migrations")
	return postgres.Source{Namespace: "journal", FS: sub}
}

// Service is the dental journal. Every method that touches a person's
// record takes the acting principal, decides access with auth (care
// relation of the user's clinic, custody, self, or break-the-glass), and
// writes an audit event for the person in the same transaction as the
// read or write.
type Service struct {
	Pool      *pgxpool.Pool
	Catalogue *Catalogue
	SKS       *SKS
	Rules     RecallRules
	// Images finds a person's images in the DICOM index (nil: none).
	Images Images
	Logger *slog.Logger
	// Now is the clock (tests set it); nil means time.Now.
	Now func() time.Time
}

// New builds a service with the default catalogue, SKS list and recall rules.
func New(pool *pgxpool.Pool) (*Service, error) {
	sks, err := LoadSKS()
	if err != nil {
		return nil, err
	}
	return &Service{Pool: pool, Catalogue: DefaultCatalogue(), SKS: sks, Rules: DefaultRecallRules(), Logger: slog.New(slog.DiscardHandler)}, nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) images() Images {
	if s.Images == nil {
		return NoImages{}
	}
	return s.Images
}

// Profile is a patient's health information and caries risk. Versions are
// kept: the newest is current.
type Profile struct {
	Risk         Risk      `json:"risk,omitempty"`
	Allergies    string    `json:"allergies"`
	Medicines    string    `json:"medicines"`
	Conditions   string    `json:"conditions"`
	RecordedAt   time.Time `json:"recorded_at,omitzero"`
	RecordedName string    `json:"recorded_by,omitempty"`
	// Version identifies the saved profile (0: none yet).
	Version int64 `json:"version"`
	// BasedOn, when saving, is the Version the edit started from: a save
	// over a profile changed meanwhile (by a colleague, or the risk by an
	// examination) is then refused (ErrConflict) instead of putting back
	// the old values. Nil: not checked.
	BasedOn *int64 `json:"based_on,omitempty"`
}

// Person is the register's person as the journal shows it.
type Person struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CPR       string    `json:"cpr,omitempty"` // DDMMYY-SSSS for staff; never logged
	BirthDate time.Time `json:"birth_date"`
	Sex       string    `json:"sex"`
}

func personOf(p auth.Person) Person {
	out := Person{ID: p.ID, Name: strings.TrimSpace(p.GivenName + " " + p.FamilyName), BirthDate: p.BirthDate, Sex: p.Sex}
	if !p.CPR.IsZero() {
		out.CPR = p.CPR.Formatted()
	}
	return out
}

// MaxAge: free municipal dental care is for everyone under 22.
const MaxAge = 22

func requirePerm(p *auth.Principal, perm string) error {
	if p == nil || p.UserID == 0 {
		return fmt.Errorf("journal: %w", auth.ErrUnauthenticated)
	}
	if !p.Can(perm) {
		return fmt.Errorf("journal: %s: %w", perm, auth.ErrForbidden)
	}
	return nil
}

// access is a tenant transaction for work on one person's record: it
// checks the permission and access, runs fn, and records the audit event fn
// describes (action and object) flagged with a break-the-glass reason.
func (s *Service) access(ctx context.Context, p *auth.Principal, perm string, personID int64, action audit.Action,
	fn func(ctx context.Context, tx pgx.Tx) (object string, detail map[string]any, err error)) error {
	if err := requirePerm(p, perm); err != nil {
		return err
	}
	ctx = auth.WithPrincipal(ctx, p)
	return postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		d, err := auth.RequireAccess(ctx, tx, p, personID)
		if err != nil {
			return err
		}
		object, detail, err := fn(ctx, tx)
		if err != nil {
			return err
		}
		if detail == nil {
			detail = map[string]any{}
		}
		detail["basis"] = d.Basis
		return audit.Record(ctx, tx, audit.Event{Action: action, PersonID: personID, Object: object, BreakGlassReason: d.Reason, Detail: detail})
	})
}

// BreakGlass grants the principal access to a person outside their
// clinic's care for auth.DefaultBreakGlassDuration, with a stated reason;
// the grant and every read under it are flagged in the audit log.
func (s *Service) BreakGlass(ctx context.Context, p *auth.Principal, personID int64, reason string) error {
	if err := requirePerm(p, auth.PermJournalRead); err != nil {
		return err
	}
	if !validText(reason) {
		return inputErr("text.invalid")
	}
	if len([]rune(strings.TrimSpace(reason))) < auth.MinBreakGlassReason {
		return inputErr("breakglass.reason")
	}
	ctx = auth.WithPrincipal(ctx, p)
	return postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		_, err := auth.BreakGlass(ctx, tx, p, personID, reason)
		return err
	})
}

// Access reports whether the principal may open the person's record now
// and on what basis (without recording anything).
func (s *Service) Access(ctx context.Context, p *auth.Principal, personID int64) (auth.Decision, error) {
	if err := requirePerm(p, auth.PermJournalRead); err != nil {
		return auth.Decision{}, err
	}
	var d auth.Decision
	err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		d, err = auth.Access(ctx, tx, p, personID)
		return err
	})
	return d, err
}

// ---- loading ----

const entryColumns = `e.id, e.person_id, e.kind, e.author_id, e.author_name, e.author_role, e.care_time, e.recorded_at,
	COALESCE(e.supersedes, 0), COALESCE(e.reason, ''), e.body, sg.signed_at, COALESCE(sg.signed_by, 0),
	COALESCE((SELECT n.id FROM journal.entry n WHERE n.supersedes = e.id), 0)`

const entryFrom = ` FROM journal.entry e LEFT JOIN journal.signature sg ON sg.entry_id = e.id `

func scanEntry(row pgx.Row) (Entry, error) {
	var e Entry
	var body []byte
	var signed *time.Time
	err := row.Scan(&e.ID, &e.PersonID, &e.Kind, &e.AuthorID, &e.AuthorName, &e.AuthorRole, &e.CareTime, &e.RecordedAt,
		&e.Supersedes, &e.Reason, &body, &signed, &e.SignedBy, &e.SupersededBy)
	if err != nil {
		return Entry{}, err
	}
	if signed != nil {
		e.SignedAt = *signed
	}
	if err := json.Unmarshal(body, &e.Content); err != nil {
		return Entry{}, fmt.Errorf("journal: entry %d: %w", e.ID, err)
	}
	return e, nil
}

// loadEntries returns every version of the persons' entries, newest care
// time first.
func loadEntries(ctx context.Context, tx pgx.Tx, personIDs ...int64) ([]Entry, error) {
	rows, err := tx.Query(ctx, `SELECT `+entryColumns+entryFrom+` WHERE e.person_id = ANY($1) ORDER BY e.care_time DESC, e.id DESC`, personIDs)
	if err != nil {
		return nil, dbErr("load entries", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, dbErr("load entries", err)
		}
		out = append(out, e)
	}
	return out, dbErr("load entries", rows.Err())
}

func loadEntry(ctx context.Context, tx pgx.Tx, personID, id int64) (Entry, error) {
	e, err := scanEntry(tx.QueryRow(ctx, `SELECT `+entryColumns+entryFrom+` WHERE e.id = $1 AND e.person_id = $2`, id, personID))
	if err != nil {
		return Entry{}, dbErr("load entry", err)
	}
	return e, nil
}

func loadProfile(ctx context.Context, tx pgx.Tx, personID int64) (Profile, error) {
	var pr Profile
	var risk *string
	err := tx.QueryRow(ctx, `SELECT id, risk, allergies, medicines, conditions, recorded_at, recorded_name
		FROM journal.patient_profile WHERE person_id = $1 ORDER BY recorded_at DESC, id DESC LIMIT 1`, personID).
		Scan(&pr.Version, &risk, &pr.Allergies, &pr.Medicines, &pr.Conditions, &pr.RecordedAt, &pr.RecordedName)
	if errors.Is(err, pgx.ErrNoRows) {
		return Profile{}, nil
	}
	if risk != nil {
		pr.Risk = Risk(*risk)
	}
	return pr, dbErr("load profile", err)
}

// loadPlanItems returns the items of the person's active plan (and the plan).
func loadPlan(ctx context.Context, tx pgx.Tx, personID int64) (*Plan, error) {
	var pl Plan
	var closed *time.Time
	err := tx.QueryRow(ctx, `SELECT id, person_id, created_at, created_by, closed_at FROM journal.plan
		WHERE person_id = $1 AND closed_at IS NULL`, personID).Scan(&pl.ID, &pl.PersonID, &pl.CreatedAt, &pl.CreatedBy, &closed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr("load plan", err)
	}
	rows, err := tx.Query(ctx, `SELECT i.id, i.plan_id, COALESCE(i.tooth, 0), i.surfaces, i.procedure, i.note, i.entry_id, i.created_at,
			ev.status, ev.at, COALESCE(ev.entry_id, 0)
		FROM journal.plan_item i
		JOIN LATERAL (SELECT status, at, entry_id FROM journal.plan_item_event x WHERE x.item_id = i.id ORDER BY x.id DESC LIMIT 1) ev ON true
		WHERE i.plan_id = $1 ORDER BY i.id`, pl.ID)
	if err != nil {
		return nil, dbErr("load plan", err)
	}
	defer rows.Close()
	for rows.Next() {
		var it PlanItem
		var doneEntry int64
		if err := rows.Scan(&it.ID, &it.PlanID, &it.Tooth, &it.Surfaces, &it.Procedure, &it.Note, &it.EntryID, &it.CreatedAt,
			&it.Status, &it.StatusAt, &doneEntry); err != nil {
			return nil, dbErr("load plan", err)
		}
		if it.Status == ItemDone {
			it.DoneEntryID = doneEntry
		}
		pl.Items = append(pl.Items, it)
	}
	return &pl, dbErr("load plan", rows.Err())
}

// ConsentGiver is who gives consent for the person on the Danish date of
// now (Health Act §17): "patient" from 15, "custody_holder" under 15 or
// when the birth date is unknown. The caller has checked access; only the
// register's birth date is read (no journal data, so no audit row).
func (s *Service) ConsentGiver(ctx context.Context, p *auth.Principal, personID int64) (string, error) {
	var birth time.Time
	err := postgres.InTenant(ctx, s.Pool, p.TenantID, func(tx pgx.Tx) error {
		person, err := getPerson(ctx, tx, personID)
		birth = person.BirthDate
		return err
	})
	if err != nil {
		return "", err
	}
	if !birth.IsZero() && ageYears(birth, auth.DateIn(s.now(), auth.Copenhagen)) >= auth.CustodyAgeLimit {
		return "patient", nil
	}
	return "custody_holder", nil
}

func getPerson(ctx context.Context, tx pgx.Tx, personID int64) (auth.Person, error) {
	p, err := auth.GetPerson(ctx, tx, personID)
	if errors.Is(err, auth.ErrNotFound) {
		return auth.Person{}, fmt.Errorf("journal: person %d: %w", personID, ErrNotFound)
	}
	return p, err
}

// dbErr wraps a database error; rule violations raised by the journal's
// triggers and constraints become ErrLocked / ErrConflict / ErrInvalid.
// The driver's detail text is never included (it can quote values).
func dbErr(op string, err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("journal: %s: %w", op, ErrNotFound)
	case errors.As(err, &pgErr):
		switch pgErr.Code {
		case "P0001": // raised by a journal trigger
			if strings.Contains(pgErr.Message, "append-only") || strings.Contains(pgErr.Message, "locked") || strings.Contains(pgErr.Message, "replaced") {
				return fmt.Errorf("journal: %s: %s: %w", op, pgErr.Message, ErrLocked)
			}
			return fmt.Errorf("journal: %s: %s: %w", op, pgErr.Message, ErrConflict)
		case "23505":
			return fmt.Errorf("journal: %s: %w", op, ErrConflict)
		case "23503":
			return fmt.Errorf("journal: %s: %w", op, ErrNotFound)
		case "23514", "22P02", "23502", "22021", "22P05": // 22021, 22P05: NUL or bytes not UTF-8
			return fmt.Errorf("journal: %s: %w", op, ErrInvalid)
		case "42501":
			return fmt.Errorf("journal: %s: %w", op, auth.ErrForbidden)
		}
	}
	return fmt.Errorf("journal: %s: %w", op, err)
}
