// Package portal is the parent portal: citizens see the dental records and
// appointments of the children in their custody who are under 15, and young
// people from 15 see their own (Danish Health Act §17, DOMAIN.md). It is where
// health data meets the open internet, so access control is the feature:
//
//   - only citizens (permission portal.use) reach it;
//   - a child is reached through an opaque reference that is derived per
//     user with a server key (never the CPR number or the database id), and
//     is resolved only among the user's own children: another child's
//     reference, however obtained, resolves to nothing;
//   - every page checks custody and age again (auth.Access) and writes an
//     audit row with the parent as actor;
//   - health pages are sent with Cache-Control: no-store under the shell's
//     strict Content-Security-Policy; the session idles out after 15 minutes
//     (auth), logins are rate limited and locked out (auth).
//
// The journal and the booking module feed it through the small interfaces
// below, which cmd/molar adapts; without them the portal still shows the
// children, messages, updates and the access log.
package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"
	_ "time/tzdata" // Europe/Copenhagen without the system's zoneinfo

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed templates/*.html templates/*.tmpl
var templates embed.FS

//go:embed static
var static embed.FS

// Migrations is the "portal" schema.
func Migrations() postgres.Source {
	sub, _ := fs.Sub(migrations, "migrations")
	return postgres.Source{Namespace: "portal", FS: sub}
}

// Static is the portal's static files (CSS), served by the shell's assets.
func Static() fs.FS { sub, _ := fs.Sub(static, "static"); return sub }

// Record is what the journal tells a family about a child, in plain
// language: signed entries only, no drafts.
type Record struct {
	LastExam   time.Time
	NextExam   time.Time
	Findings   []string // plain-language lines, e.g. "Hul i tand 36 (behandlet)"
	PlanDone   int
	PlanTotal  int
	NextCallIn time.Time
	Health     []string // allergies, medicines, conditions as recorded
	Entries    []Entry  // signed entries, newest first
}

// Entry is one signed journal entry as the family sees it.
type Entry struct {
	Date   time.Time
	Title  string
	Text   string
	Author string // name and profession
}

// Journal is what the portal needs from the dental journal.
type Journal interface {
	// Record returns the child's record for the family.
	Record(ctx context.Context, tenantID, personID int64) (Record, error)
	// ParentInformation records information from the family as a journal
	// entry ("information from parents") for the clinic to acknowledge.
	ParentInformation(ctx context.Context, tenantID, personID int64, byUserID int64, kind, text string) error
}

// Appointment is one appointment as the family sees it (no health data).
type Appointment struct {
	Ref   string // opaque reference for rebooking/cancelling
	Start time.Time
	End   time.Time
	Kind  string // "Undersøgelse", "Tandrensning" …
	Place string
	// CanMove, CanCancel: the family may (the booking rules: a type they
	// may book themselves or a call-in's time, the notice, cancelling allowed).
	CanMove, CanCancel bool
}

// Slot is a free time the family may choose.
type Slot struct {
	Ref   string
	Start time.Time
	End   time.Time
	Place string
}

// Invitation is a call-in with a proposed time.
type Invitation struct {
	Ref      string
	Kind     string
	Proposed time.Time
	Place    string
}

// Booking is what the portal needs from the booking module.
type Booking interface {
	Appointments(ctx context.Context, tenantID, personID int64) (upcoming, past []Appointment, err error)
	Invitations(ctx context.Context, tenantID, personID int64) ([]Invitation, error)
	// FreeSlots offers times for moving an appointment or answering an invitation.
	FreeSlots(ctx context.Context, tenantID, personID int64, ref string, from, to time.Time) ([]Slot, error)
	// Rebook moves an appointment (or accepts an invitation at) to a slot.
	Rebook(ctx context.Context, actor *auth.Principal, tenantID, personID int64, ref, slotRef string) error
	// Cancel cancels an appointment within the self-service rules.
	Cancel(ctx context.Context, actor *auth.Principal, tenantID, personID int64, ref, reason string) error
	// Accept accepts an invitation at its proposed time.
	Accept(ctx context.Context, actor *auth.Principal, tenantID, personID int64, ref string) error
}

// Image is an X-ray or photo as the family sees it.
type Image struct {
	Ref   string // opaque reference within the child's images
	Taken time.Time
	Kind  string // modality: IO, PX, CT …
}

// Images is what the portal needs to show a child's X-ray thumbnails, when
// the municipality allows it (Portal.ShowImages).
type Images interface {
	Images(ctx context.Context, tenantID, personID int64) ([]Image, error)
	// Thumbnail writes the JPEG thumbnail of one of the person's images.
	Thumbnail(ctx context.Context, tenantID, personID int64, ref string, w io.Writer) error
}

// Portal serves /portal.
type Portal struct {
	Pool    *pgxpool.Pool
	Auth    *auth.Service
	Shell   *web.Shell
	Log     *slog.Logger
	Journal Journal // optional
	Booking Booking // optional
	// Images shows X-ray thumbnails when ShowImages is set (a municipal
	// decision: some clinics prefer to explain images in person).
	Images     Images
	ShowImages bool
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	key []byte
}

// Local is the time zone families see times in.
var Local = func() *time.Location {
	l, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		return time.UTC
	}
	return l
}()

// Errors.
var (
	ErrNoChild = errors.New("portal: no such child")
)

func (p *Portal) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// today is the date in Denmark, which ages and the age limits of custody
// and care are counted on (as auth.Access does): a child turns 15 at
// midnight in Copenhagen, not at midnight on the server's clock.
func (p *Portal) today() time.Time { return auth.DateIn(p.now(), auth.Copenhagen) }

// Child is a person the signed-in citizen may see: a child in custody under
// 15, or the citizen themself.
type Child struct {
	Ref       string
	PersonID  int64
	Name      string
	GivenName string
	BirthDate time.Time
	Age       int
	Self      bool
}

// secret loads the key for opaque references.
func (p *Portal) secret(ctx context.Context) ([]byte, error) {
	if p.key != nil {
		return p.key, nil
	}
	var k []byte
	if err := p.Pool.QueryRow(ctx, `SELECT key FROM portal.secret WHERE id = 1`).Scan(&k); err != nil {
		return nil, fmt.Errorf("portal: key: %w", err)
	}
	p.key = k
	return k, nil
}

// Ref is the opaque reference of person for user: stable for the pair,
// meaningless for anyone else.
func Ref(key []byte, userID, personID int64) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "portal-child:%d:%d", userID, personID)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// Children lists whom the citizen may see, with references.
func (p *Portal) Children(ctx context.Context, pr *auth.Principal) ([]Child, error) {
	if pr == nil || !pr.IsCitizen() || pr.PersonID == 0 {
		return nil, fmt.Errorf("portal: %w", auth.ErrForbidden)
	}
	key, err := p.secret(ctx)
	if err != nil {
		return nil, err
	}
	var out []Child
	today := p.today()
	err = postgres.InTenant(ctx, p.Pool, pr.TenantID, func(tx pgx.Tx) error {
		self, err := auth.GetPerson(ctx, tx, pr.PersonID)
		if err != nil {
			return err
		}
		if age := auth.AgeAt(self.BirthDate, today); age >= 15 && age < 22 {
			// Young people from 15 see their own dental record.
			out = append(out, childOf(key, pr.UserID, self, today, true))
		}
		kids, err := auth.ChildrenInCustody(ctx, tx, pr.PersonID)
		if err != nil {
			return err
		}
		for _, k := range kids {
			if auth.AgeAt(k.BirthDate, today) < 15 {
				out = append(out, childOf(key, pr.UserID, k, today, false))
			}
		}
		return nil
	})
	return out, err
}

// OlderChildren lists children in custody aged 15–17: their records are
// their own now, and the custody holders are told so (Health Act §17).
func (p *Portal) OlderChildren(ctx context.Context, pr *auth.Principal) ([]Child, error) {
	var out []Child
	today := p.today()
	err := postgres.InTenant(ctx, p.Pool, pr.TenantID, func(tx pgx.Tx) error {
		kids, err := auth.ChildrenInCustody(ctx, tx, pr.PersonID)
		if err != nil {
			return err
		}
		for _, k := range kids {
			if a := auth.AgeAt(k.BirthDate, today); a >= 15 && a < 18 {
				out = append(out, Child{GivenName: k.GivenName, Age: a})
			}
		}
		return nil
	})
	return out, err
}

// childOf is per as a Child; today is the Danish date (Portal.today).
func childOf(key []byte, userID int64, per auth.Person, today time.Time, self bool) Child {
	return Child{
		Ref: Ref(key, userID, per.ID), PersonID: per.ID, Name: per.GivenName + " " + per.FamilyName,
		GivenName: per.GivenName, BirthDate: per.BirthDate, Age: auth.AgeAt(per.BirthDate, today), Self: self,
	}
}

// resolve finds the child behind ref among the citizen's own children, and
// checks access again in tx (custody and age can change between requests).
func (p *Portal) resolve(ctx context.Context, tx pgx.Tx, pr *auth.Principal, ref string) (Child, error) {
	kids, err := p.Children(ctx, pr)
	if err != nil {
		return Child{}, err
	}
	for _, k := range kids {
		if hmac.Equal([]byte(k.Ref), []byte(ref)) {
			d, err := p.Auth.Access(ctx, tx, pr, k.PersonID)
			if err != nil {
				return Child{}, err
			}
			if !d.Allowed || (d.Basis != auth.BasisCustody && d.Basis != auth.BasisSelf) {
				return Child{}, ErrNoChild
			}
			return k, nil
		}
	}
	return Child{}, ErrNoChild
}

// Templates is the portal's page templates.
func Templates() fs.FS { sub, _ := fs.Sub(templates, "templates"); return sub }
