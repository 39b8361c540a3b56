// Package booking is the booking module (issue 7): the municipality's
// calendars and self-service booking.
//
//   - Resources (chairs, rooms, staff) of a unit, opening hours, closed days
//     and absence; appointment types (duration, self-service or staff only,
//     an imaging step for the DICOM worklist, video meetings).
//   - The staff calendar (day and week per unit, resource and person): book,
//     move, cancel with a reason. Double booking is impossible: PostgreSQL
//     refuses two overlapping holds of one resource (an exclusion constraint
//     on time ranges, see migrations/0001_booking.sql).
//   - Self-service for citizens and for parents on behalf of children in
//     their custody and under 15 (auth.Access), within configurable rules;
//     booking pages show no health data.
//   - Call-ins from the journal's recall list (RecallSource): invitations
//     with a proposed time that the parent accepts or changes; unanswered
//     ones are followed up by the background runner.
//   - Confirmations and reminders through a Notifier (e-mail over SMTP with an
//     iCalendar attachment, SMS), and a per-citizen calendar feed behind a
//     revocable secret link that carries times and places only.
//   - The DICOM Modality Worklist feed (WorklistSource implements
//     worklist.Source).
//
// Times are stored as instants and shown in Europe/Copenhagen; opening hours
// are wall-clock times there, so the days of the daylight-saving changes
// (last Sunday of March and of October) have 23 and 25 hours.
//
// Every change of an appointment is written to the audit log with the person
// (auth/audit). Other packages (the parent portal, the journal) read and
// change appointments through the Module's methods, never its tables.
package booking

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/modules"
	"github.com/molar-health/molar/viewer/web"
)

// Permissions of the module.
const (
	// PermRead: see the calendars.
	PermRead = "booking.read"
	// PermBook: book, move and cancel appointments for persons in the
	// user's care.
	PermBook = "booking.book"
	// PermInvite: send call-in invitations from the recall list.
	PermInvite = "booking.invite"
	// PermAdmin: resources, opening hours, closed days, absence,
	// appointment types and rules.
	PermAdmin = "booking.admin"
)

// Loc is the time zone of calendars, opening hours and messages.
var Loc = auth.Copenhagen

// Resource kinds.
const (
	KindChair = "chair"
	KindRoom  = "room"
	KindStaff = "staff"
)

// Appointment statuses.
const (
	StatusProposed  = "proposed" // an invitation's proposed time, held until answered
	StatusBooked    = "booked"
	StatusCancelled = "cancelled"
)

// Ways an appointment was booked.
const (
	ViaStaff      = "staff"
	ViaSelf       = "self"
	ViaInvitation = "invitation"
)

// Errors. They carry a kind for the HTTP layer (web.KindOf) and are matched
// with errors.Is.
var (
	// ErrSlotTaken: the time is no longer free (another booking holds a
	// resource, or the person has another appointment then).
	ErrSlotTaken = web.E(web.Conflict, "booking: the time is no longer free")
	// ErrClosed: the time is outside the unit's opening hours, on a closed day
	// or not on the booking grid.
	ErrClosed = web.E(web.Invalid, "booking: the unit is closed at that time")
	// ErrRule: a self-service rule forbids it (too late, too far ahead,
	// cancelling not allowed, a staff-only type).
	ErrRule = web.E(web.Invalid, "booking: not allowed by the booking rules")
	// ErrNotFound: no such appointment, type, resource or invitation (or not
	// reachable by the user).
	ErrNotFound = web.E(web.NotFound, "booking: not found")
	// ErrInvalid: bad input.
	ErrInvalid = web.E(web.Invalid, "booking: invalid input")
	// ErrStatus: the appointment or invitation is not in a state that allows it.
	ErrStatus = web.E(web.Conflict, "booking: not possible in the current state")
	// ErrForbidden: the user may not do this for this person.
	ErrForbidden = web.E(web.Forbidden, "booking: not allowed for this person")
)

// Unit is one unit of the core register as the module sees it.
type Unit struct {
	ID   int64
	Kind string
	Name string
}

// Units is what the module needs from the core register.
type Units interface {
	Units(ctx context.Context, tenantID int64) ([]Unit, error)
}

// Due is one entry of the journal's recall list: a person due for a call-in.
type Due struct {
	PersonID int64
	// DueDate is the date the person should be seen from (a calendar date).
	DueDate time.Time
	// Reason is a short code (e.g. "recall"), never free text or health data.
	Reason string
}

// RecallSource is what the module needs from the journal: who is due for a
// call-in at a clinic by a date. cmd/molar adapts (*journal.Service).RecallDue.
type RecallSource interface {
	Due(ctx context.Context, tenantID, clinicID int64, until time.Time) ([]Due, error)
}

// NoRecalls is the RecallSource used until the journal provides one.
type NoRecalls struct{}

// Due implements RecallSource with an empty list.
func (NoRecalls) Due(context.Context, int64, int64, time.Time) ([]Due, error) { return nil, nil }

// Module is the booking module.
type Module struct {
	Pool  *pgxpool.Pool
	Shell *web.Shell
	Units Units
	// Recalls is the journal's recall list (nil: none).
	Recalls RecallSource
	// Notifier sends confirmations, reminders and invitations (nil: the
	// outbox keeps them unsent).
	Notifier Notifier
	// BaseURL is the public URL of the server, for links in messages and the
	// calendar feed address (e.g. "https://molar.kommune.dk").
	BaseURL string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Log gets operational messages (never names or CPR numbers).
	Log *slog.Logger
	// PollEvery is how often the runner looks for due work (default 30 s).
	PollEvery time.Duration
}

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed templates/*.html
var templates embed.FS

//go:embed assets
var assets embed.FS

// Name implements modules.Module.
func (m *Module) Name() string { return "booking" }

// Migrations implements modules.Module.
func (m *Module) Migrations() fs.FS { sub, _ := fs.Sub(migrations, "migrations"); return sub }

// Pages implements modules.Pager.
func (m *Module) Pages() (fs.FS, string) { return templates, "templates/*.html" }

// Permissions implements modules.Permissioner.
func (m *Module) Permissions() []modules.Permission {
	clinic := []string{auth.RoleDentist, auth.RoleDentalAssistant, auth.RoleClinicAdmin}
	return []modules.Permission{
		{Name: PermRead, Roles: clinic},
		{Name: PermBook, Roles: clinic},
		{Name: PermInvite, Roles: clinic},
		{Name: PermAdmin, Roles: []string{auth.RoleClinicAdmin}},
	}
}

// Nav implements modules.Navigator.
func (m *Module) Nav() []modules.NavItem {
	return []modules.NavItem{
		{Label: "booking.nav.calendar", Path: "/m/booking/calendar", Permission: PermRead, Order: 20},
		{Label: "booking.nav.my", Path: "/m/booking/my", Permission: auth.PermPortalUse, Order: 20},
	}
}

// PublicPaths lists the module's routes reachable without login, relative
// to /m/booking: the calendar feed (its secret link is the credential).
func (m *Module) PublicPaths() []string { return []string{"/feed/"} }

func (m *Module) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Module) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (m *Module) recalls() RecallSource {
	if m.Recalls != nil {
		return m.Recalls
	}
	return NoRecalls{}
}

// Interface guards.
var (
	_ modules.Module       = (*Module)(nil)
	_ modules.Permissioner = (*Module)(nil)
	_ modules.Navigator    = (*Module)(nil)
	_ modules.Messager     = (*Module)(nil)
	_ modules.Pager        = (*Module)(nil)
	_ modules.Seeder       = (*Module)(nil)
	_ modules.Runner       = (*Module)(nil)
)
