package portal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// Routes mounts the portal: /portal for families, /portal/clinic for staff.
func (p *Portal) Routes(r chi.Router) {
	r.Route("/portal", func(r chi.Router) {
		r.Use(web.NoStore)
		r.Group(func(r chi.Router) {
			r.Use(p.requirePerm(auth.PermPortalUse))
			r.Get("/", p.handleHome)
			r.Get("/c/{ref}/", p.child(p.handleOverview, "overview"))
			r.Get("/c/{ref}/journal", p.child(p.handleJournal, "journal"))
			r.Get("/c/{ref}/appointments", p.child(p.handleAppointments, "appointments"))
			r.Get("/c/{ref}/appointments/{appt}/move", p.child(p.handleMoveForm, "move"))
			r.Post("/c/{ref}/appointments/{appt}/move", p.child(p.handleMove, "appointments"))
			r.Post("/c/{ref}/appointments/{appt}/cancel", p.child(p.handleCancel, "appointments"))
			r.Post("/c/{ref}/invitations/{appt}/accept", p.child(p.handleAccept, "appointments"))
			r.Get("/c/{ref}/messages", p.child(p.handleMessages, "messages"))
			r.Post("/c/{ref}/messages", p.child(p.handlePostMessage, "messages"))
			r.Get("/c/{ref}/health", p.child(p.handleHealth, "health"))
			r.Post("/c/{ref}/health", p.child(p.handlePostHealth, "health"))
			r.Get("/c/{ref}/log", p.child(p.handleLog, "log"))
			r.Get("/c/{ref}/images", p.child(p.handleImages, "images"))
			r.Get("/c/{ref}/images/{img}", p.handleImage)
		})
		r.Group(func(r chi.Router) {
			r.Use(p.requirePerm(auth.PermJournalRead))
			r.Get("/clinic/", p.handleClinicInbox)
			r.Get("/clinic/c/{person}", p.handleClinicThread)
			r.Post("/clinic/c/{person}/messages", p.handleClinicReply)
			r.Post("/clinic/updates/{id}/ack", p.handleClinicAck)
		})
	})
}

func (p *Portal) requirePerm(perm string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pr := auth.PrincipalFrom(r.Context())
			if pr == nil {
				p.Shell.Error(w, r, web.E(web.Unauthorized, ""))
				return
			}
			if !pr.Can(perm) {
				p.Shell.Error(w, r, web.E(web.Forbidden, ""))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// childPage is what every child page gets.
type childPage struct {
	Child  Child
	Tab    string
	Data   any
	Flash  string
	Images bool // the images tab is shown
}

type childHandler func(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error)

// child wraps a page about one child: resolve the reference among the
// citizen's own children, check access, audit the read (or write), and
// render, all in one tenant transaction. An unknown reference is 404 and
// reveals nothing.
func (p *Portal) child(h childHandler, tab string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pr := auth.PrincipalFrom(r.Context())
		var page childPage
		var redirect string
		err := postgres.InTenant(r.Context(), p.Pool, pr.TenantID, func(tx pgx.Tx) error {
			c, err := p.resolve(r.Context(), tx, pr, chi.URLParam(r, "ref"))
			if err != nil {
				return err
			}
			action := audit.ActionRead
			if r.Method == http.MethodPost {
				action = audit.ActionUpdate
			}
			if err := audit.Record(r.Context(), tx, audit.Event{Action: action, PersonID: c.PersonID, Object: fmt.Sprintf("portal.%s/%d", tab, c.PersonID)}); err != nil {
				return err
			}
			data, err := h(w, r, tx, pr, c)
			if err != nil {
				return err
			}
			if rd, ok := data.(redirectTo); ok {
				redirect = string(rd)
				return nil
			}
			page = childPage{Child: c, Tab: tabOf[tab], Data: data, Flash: r.URL.Query().Get("ok"), Images: p.imagesOn()}
			return nil
		})
		if err != nil {
			p.fail(w, r, err)
			return
		}
		if redirect != "" {
			http.Redirect(w, r, redirect, http.StatusSeeOther)
			return
		}
		p.Shell.Render(w, r, http.StatusOK, "portal_"+tab, page)
	}
}

type redirectTo string

// tabOf maps a page to the tab it belongs to.
var tabOf = map[string]string{"images": "images", "overview": "overview", "journal": "journal", "appointments": "appointments", "move": "appointments",
	"messages": "messages", "health": "health", "log": "log"}

func (p *Portal) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNoChild):
		p.Shell.Error(w, r, web.E(web.NotFound, ""))
	default:
		p.Shell.Error(w, r, err)
	}
}

// GET /portal/
func (p *Portal) handleHome(w http.ResponseWriter, r *http.Request) {
	pr := auth.PrincipalFrom(r.Context())
	kids, err := p.Children(r.Context(), pr)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	older, err := p.OlderChildren(r.Context(), pr)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.Shell.Render(w, r, http.StatusOK, "portal_home", map[string]any{"Children": kids, "Older": older})
}

// overview is the child's front page.
type overview struct {
	Record      *Record
	Upcoming    []Appointment
	Invitations []Invitation
	OpenUpdates int
}

func (p *Portal) handleOverview(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	var ov overview
	if p.Journal != nil {
		rec, err := p.Journal.Record(r.Context(), pr.TenantID, c.PersonID)
		if err != nil {
			return nil, err
		}
		ov.Record = &rec
	}
	if p.Booking != nil {
		up, _, err := p.Booking.Appointments(r.Context(), pr.TenantID, c.PersonID)
		if err != nil {
			return nil, err
		}
		ov.Upcoming = up
		if ov.Invitations, err = p.Booking.Invitations(r.Context(), pr.TenantID, c.PersonID); err != nil {
			return nil, err
		}
	}
	if err := tx.QueryRow(r.Context(), `SELECT count(*) FROM portal.update_request WHERE person_id = $1 AND acknowledged IS NULL`, c.PersonID).Scan(&ov.OpenUpdates); err != nil {
		return nil, fmt.Errorf("portal: updates: %w", err)
	}
	return ov, nil
}

func (p *Portal) handleJournal(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	if p.Journal == nil {
		return (*Record)(nil), nil
	}
	rec, err := p.Journal.Record(r.Context(), pr.TenantID, c.PersonID)
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

type appointmentsPage struct {
	Enabled     bool
	Upcoming    []Appointment
	Past        []Appointment
	Invitations []Invitation
}

func (p *Portal) handleAppointments(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	if p.Booking == nil {
		return appointmentsPage{}, nil
	}
	up, past, err := p.Booking.Appointments(r.Context(), pr.TenantID, c.PersonID)
	if err != nil {
		return nil, err
	}
	inv, err := p.Booking.Invitations(r.Context(), pr.TenantID, c.PersonID)
	if err != nil {
		return nil, err
	}
	return appointmentsPage{Enabled: true, Upcoming: up, Past: past, Invitations: inv}, nil
}

type movePage struct {
	Ref   string
	Slots []Slot
}

func (p *Portal) handleMoveForm(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	if p.Booking == nil {
		return nil, web.E(web.NotFound, "")
	}
	from := p.now()
	slots, err := p.Booking.FreeSlots(r.Context(), pr.TenantID, c.PersonID, chi.URLParam(r, "appt"), from, from.AddDate(0, 0, 42))
	if err != nil {
		return nil, err
	}
	return movePage{Ref: chi.URLParam(r, "appt"), Slots: slots}, nil
}

func (p *Portal) handleMove(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	if p.Booking == nil {
		return nil, web.E(web.NotFound, "")
	}
	slot := r.PostFormValue("slot")
	if slot == "" {
		return nil, web.E(web.Invalid, "choose a time")
	}
	if err := p.Booking.Rebook(r.Context(), pr, pr.TenantID, c.PersonID, chi.URLParam(r, "appt"), slot); err != nil {
		return nil, err
	}
	return redirectTo("/portal/c/" + c.Ref + "/appointments?ok=moved"), nil
}

func (p *Portal) handleCancel(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	if p.Booking == nil {
		return nil, web.E(web.NotFound, "")
	}
	if err := p.Booking.Cancel(r.Context(), pr, pr.TenantID, c.PersonID, chi.URLParam(r, "appt"), strings.TrimSpace(r.PostFormValue("reason"))); err != nil {
		return nil, err
	}
	return redirectTo("/portal/c/" + c.Ref + "/appointments?ok=cancelled"), nil
}

func (p *Portal) handleAccept(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	if p.Booking == nil {
		return nil, web.E(web.NotFound, "")
	}
	if err := p.Booking.Accept(r.Context(), pr, pr.TenantID, c.PersonID, chi.URLParam(r, "appt")); err != nil {
		return nil, err
	}
	return redirectTo("/portal/c/" + c.Ref + "/appointments?ok=accepted"), nil
}

// Message is one message of a thread.
type Message struct {
	Author     string
	FromClinic bool
	Body       string
	Created    time.Time
}

func messages(ctx context.Context, tx pgx.Tx, personID int64) ([]Message, error) {
	rows, err := tx.Query(ctx, `SELECT author_name, from_clinic, body, created FROM portal.message WHERE person_id = $1 ORDER BY created, id`, personID)
	if err != nil {
		return nil, fmt.Errorf("portal: messages: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		var m Message
		err := r.Scan(&m.Author, &m.FromClinic, &m.Body, &m.Created)
		m.Created = m.Created.In(Local)
		return m, err
	})
}

func (p *Portal) handleMessages(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	return messages(r.Context(), tx, c.PersonID)
}

func addMessage(ctx context.Context, tx pgx.Tx, tenant, person int64, pr *auth.Principal, fromClinic bool, body string) error {
	body = strings.TrimSpace(body)
	if body == "" || len(body) > 4000 {
		return web.E(web.Invalid, "a message needs 1 to 4000 characters")
	}
	if !storable(body) {
		return web.E(web.Invalid, "the message contains characters that are not allowed")
	}
	_, err := tx.Exec(ctx, `INSERT INTO portal.message (tenant_id, person_id, author_user, author_name, from_clinic, body) VALUES ($1, $2, $3, $4, $5, $6)`,
		tenant, person, pr.UserID, pr.DisplayName, fromClinic, body)
	if err != nil {
		return fmt.Errorf("portal: add message: %w", err)
	}
	return nil
}

// storable reports whether PostgreSQL can store s as text: UTF-8 without
// NUL (a form can send both; the database would refuse them as an error).
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func (p *Portal) handlePostMessage(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	if err := addMessage(r.Context(), tx, pr.TenantID, c.PersonID, pr, false, r.PostFormValue("body")); err != nil {
		return nil, err
	}
	return redirectTo("/portal/c/" + c.Ref + "/messages?ok=sent"), nil
}

// UpdateRequest is information a family sent in.
type UpdateRequest struct {
	ID           int64
	PersonID     int64
	Kind         string
	Body         string
	Created      time.Time
	Acknowledged *time.Time
}

var updateKinds = map[string]bool{"allergy": true, "medicine": true, "condition": true, "contact": true, "other": true}

type healthPage struct {
	Record  *Record
	Updates []UpdateRequest
}

func (p *Portal) handleHealth(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	var hp healthPage
	if p.Journal != nil {
		rec, err := p.Journal.Record(r.Context(), pr.TenantID, c.PersonID)
		if err != nil {
			return nil, err
		}
		hp.Record = &rec
	}
	rows, err := tx.Query(r.Context(), `SELECT id, person_id, kind, body, created, acknowledged FROM portal.update_request WHERE person_id = $1 ORDER BY created DESC LIMIT 50`, c.PersonID)
	if err != nil {
		return nil, fmt.Errorf("portal: updates: %w", err)
	}
	hp.Updates, err = pgx.CollectRows(rows, scanUpdate)
	return hp, err
}

func scanUpdate(r pgx.CollectableRow) (UpdateRequest, error) {
	var u UpdateRequest
	err := r.Scan(&u.ID, &u.PersonID, &u.Kind, &u.Body, &u.Created, &u.Acknowledged)
	u.Created = u.Created.In(Local)
	return u, err
}

func (p *Portal) handlePostHealth(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	kind, body := r.PostFormValue("kind"), strings.TrimSpace(r.PostFormValue("body"))
	if !updateKinds[kind] || body == "" || len(body) > 2000 {
		return nil, web.E(web.Invalid, "choose what it is about and write 1 to 2000 characters")
	}
	if !storable(body) {
		return nil, web.E(web.Invalid, "the text contains characters that are not allowed")
	}
	if _, err := tx.Exec(r.Context(), `INSERT INTO portal.update_request (tenant_id, person_id, author_user, kind, body) VALUES ($1, $2, $3, $4, $5)`,
		pr.TenantID, c.PersonID, pr.UserID, kind, body); err != nil {
		return nil, fmt.Errorf("portal: update request: %w", err)
	}
	if p.Journal != nil {
		if err := p.Journal.ParentInformation(r.Context(), pr.TenantID, c.PersonID, pr.UserID, kind, body); err != nil {
			return nil, err
		}
	}
	return redirectTo("/portal/c/" + c.Ref + "/health?ok=sent"), nil
}

// LogEntry is one line of the access log as the family sees it.
type LogEntry struct {
	At     time.Time
	Name   string
	Role   string
	Action string
	What   string
	Flag   bool // access outside the care relation (break the glass)
	You    bool
}

// logPage is the access log: by default only other people's look-ups
// (the family's own use of the portal is in it too, on request).
type logPage struct {
	Entries  []LogEntry
	ShowMine bool
	Hidden   int
}

// whatOf turns an audit object type into a message key for families.
func whatOf(object string) string {
	kind := object
	if i := strings.IndexByte(kind, '/'); i > 0 {
		kind = kind[:i]
	}
	switch {
	case strings.HasPrefix(kind, "journal."):
		return "portal.what.journal"
	case strings.HasPrefix(kind, "booking."):
		return "portal.what.booking"
	case strings.HasPrefix(kind, "dicom."), strings.HasPrefix(kind, "viewer."):
		return "portal.what.images"
	case strings.HasPrefix(kind, "portal.thread"), strings.HasPrefix(kind, "portal.inbox"), strings.HasPrefix(kind, "portal.message"), strings.HasPrefix(kind, "portal.update"):
		return "portal.what.messages"
	case strings.HasPrefix(kind, "portal."):
		return "portal.what.portal"
	case strings.HasPrefix(kind, "auth."), strings.HasPrefix(kind, "person"):
		return "portal.what.person"
	}
	return "portal.what.other"
}

func (p *Portal) handleLog(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	showMine := r.URL.Query().Get("mine") == "1"
	entries, err := audit.AccessLog(r.Context(), tx, c.PersonID, 500)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	var out []LogEntry
	hidden := 0
	for _, e := range entries {
		name, ok := names[e.Username]
		if !ok {
			if ae, isAE := strings.CutPrefix(e.Username, "dicom:"); isAE {
				name = ae // a DICOM device's AE title (e.g. the panoramic unit)
			} else if u, err := auth.UserByUsername(r.Context(), tx, e.Username); err == nil && u.DisplayName != "" {
				name = u.DisplayName
			} else {
				name = e.Username
			}
			names[e.Username] = name
		}
		you := e.Username == pr.Username
		if you && !showMine {
			hidden++
			continue
		}
		out = append(out, LogEntry{At: e.At.In(Local), Name: name, Role: e.Role, Action: string(e.Action), What: whatOf(e.Object), Flag: e.BreakGlass, You: you})
	}
	return logPage{Entries: out, ShowMine: showMine, Hidden: hidden}, nil
}

// --- clinic side ---

type inboxItem struct {
	PersonID int64
	Name     string
	Latest   time.Time
	Messages int
	Updates  int
}

// GET /portal/clinic/: threads and open updates of persons the staff
// member's units care for.
func (p *Portal) handleClinicInbox(w http.ResponseWriter, r *http.Request) {
	pr := auth.PrincipalFrom(r.Context())
	var items []inboxItem
	err := postgres.InTenant(r.Context(), p.Pool, pr.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(), `
			SELECT person_id, max(at), sum(m), sum(u) FROM (
				SELECT person_id, created AS at, 1 AS m, 0 AS u FROM portal.message WHERE NOT from_clinic
				UNION ALL
				SELECT person_id, created, 0, 1 FROM portal.update_request WHERE acknowledged IS NULL
			) x GROUP BY person_id ORDER BY max(at) DESC LIMIT 200`)
		if err != nil {
			return err
		}
		type row struct {
			id   int64
			at   time.Time
			m, u int
		}
		var all []row
		for rows.Next() {
			var x row
			if err := rows.Scan(&x.id, &x.at, &x.m, &x.u); err != nil {
				return err
			}
			all = append(all, x)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, x := range all {
			d, err := p.Auth.Access(r.Context(), tx, pr, x.id)
			if err != nil {
				return err
			}
			if !d.Allowed || d.Basis != auth.BasisCare {
				continue // only the units' own patients appear in the inbox
			}
			per, err := auth.GetPerson(r.Context(), tx, x.id)
			if err != nil {
				return err
			}
			if err := audit.Record(r.Context(), tx, audit.Event{Action: audit.ActionRead, PersonID: x.id, Object: fmt.Sprintf("portal.inbox/%d", x.id)}); err != nil {
				return err
			}
			items = append(items, inboxItem{PersonID: x.id, Name: per.GivenName + " " + per.FamilyName, Latest: x.at.In(Local), Messages: x.m, Updates: x.u})
		}
		return nil
	})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].Latest.After(items[j].Latest) })
	p.Shell.Render(w, r, http.StatusOK, "portal_clinic_inbox", items)
}

type clinicThread struct {
	PersonID int64
	Name     string
	Messages []Message
	Updates  []UpdateRequest
}

func (p *Portal) staffPerson(r *http.Request, tx pgx.Tx, pr *auth.Principal, write bool) (auth.Person, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "person"), 10, 64)
	if err != nil || id <= 0 {
		return auth.Person{}, web.E(web.NotFound, "")
	}
	d, err := p.Auth.RequireAccess(r.Context(), tx, pr, id)
	if err != nil {
		return auth.Person{}, err
	}
	action := audit.ActionRead
	if write {
		action = audit.ActionUpdate
	}
	if err := audit.Record(r.Context(), tx, audit.Event{Action: action, PersonID: id, Object: fmt.Sprintf("portal.thread/%d", id), BreakGlassReason: d.Reason}); err != nil {
		return auth.Person{}, err
	}
	return auth.GetPerson(r.Context(), tx, id)
}

func (p *Portal) handleClinicThread(w http.ResponseWriter, r *http.Request) {
	pr := auth.PrincipalFrom(r.Context())
	var th clinicThread
	err := postgres.InTenant(r.Context(), p.Pool, pr.TenantID, func(tx pgx.Tx) error {
		per, err := p.staffPerson(r, tx, pr, false)
		if err != nil {
			return err
		}
		th.PersonID, th.Name = per.ID, per.GivenName+" "+per.FamilyName
		if th.Messages, err = messages(r.Context(), tx, per.ID); err != nil {
			return err
		}
		rows, err := tx.Query(r.Context(), `SELECT id, person_id, kind, body, created, acknowledged FROM portal.update_request WHERE person_id = $1 ORDER BY created DESC LIMIT 50`, per.ID)
		if err != nil {
			return err
		}
		th.Updates, err = pgx.CollectRows(rows, scanUpdate)
		return err
	})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.Shell.Render(w, r, http.StatusOK, "portal_clinic_thread", th)
}

func (p *Portal) handleClinicReply(w http.ResponseWriter, r *http.Request) {
	pr := auth.PrincipalFrom(r.Context())
	var id int64
	err := postgres.InTenant(r.Context(), p.Pool, pr.TenantID, func(tx pgx.Tx) error {
		per, err := p.staffPerson(r, tx, pr, true)
		if err != nil {
			return err
		}
		id = per.ID
		return addMessage(r.Context(), tx, pr.TenantID, per.ID, pr, true, r.PostFormValue("body"))
	})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/portal/clinic/c/%d", id), http.StatusSeeOther)
}

func (p *Portal) handleClinicAck(w http.ResponseWriter, r *http.Request) {
	pr := auth.PrincipalFrom(r.Context())
	uid, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		p.fail(w, r, web.E(web.NotFound, ""))
		return
	}
	var person int64
	err = postgres.InTenant(r.Context(), p.Pool, pr.TenantID, func(tx pgx.Tx) error {
		if err := tx.QueryRow(r.Context(), `SELECT person_id FROM portal.update_request WHERE id = $1`, uid).Scan(&person); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return web.E(web.NotFound, "")
			}
			return err
		}
		d, err := p.Auth.RequireAccess(r.Context(), tx, pr, person)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(r.Context(), `UPDATE portal.update_request SET acknowledged = now(), acknowledged_by = $2 WHERE id = $1 AND acknowledged IS NULL`, uid, pr.UserID); err != nil {
			return err
		}
		return audit.Record(r.Context(), tx, audit.Event{Action: audit.ActionUpdate, PersonID: person, Object: fmt.Sprintf("portal.update_request/%d", uid), BreakGlassReason: d.Reason})
	})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/portal/clinic/c/%d", person), http.StatusSeeOther)
}

func (p *Portal) imagesOn() bool { return p.ShowImages && p.Images != nil }

func (p *Portal) handleImages(w http.ResponseWriter, r *http.Request, tx pgx.Tx, pr *auth.Principal, c Child) (any, error) {
	if !p.imagesOn() {
		return nil, ErrNoChild
	}
	return p.Images.Images(r.Context(), pr.TenantID, c.PersonID)
}

// GET /portal/c/{ref}/images/{img}: one thumbnail, checked and audited like
// every page about the child.
func (p *Portal) handleImage(w http.ResponseWriter, r *http.Request) {
	if !p.imagesOn() {
		p.fail(w, r, ErrNoChild)
		return
	}
	pr := auth.PrincipalFrom(r.Context())
	var buf bytes.Buffer
	err := postgres.InTenant(r.Context(), p.Pool, pr.TenantID, func(tx pgx.Tx) error {
		c, err := p.resolve(r.Context(), tx, pr, chi.URLParam(r, "ref"))
		if err != nil {
			return err
		}
		if err := audit.Record(r.Context(), tx, audit.Event{Action: audit.ActionRead, PersonID: c.PersonID, Object: fmt.Sprintf("portal.image/%d", c.PersonID)}); err != nil {
			return err
		}
		return p.Images.Thumbnail(r.Context(), pr.TenantID, c.PersonID, chi.URLParam(r, "img"), &buf)
	})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	_, _ = w.Write(buf.Bytes())
}
