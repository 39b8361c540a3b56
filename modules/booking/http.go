package booking

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/viewer/web"
)

// Routes implements modules.Module. Mounted at /m/booking behind
// authentication; /feed/ is public (PublicPaths), its secret link being the
// credential.
func (m *Module) Routes(r chi.Router) {
	r.Use(web.NoStore)
	r.Get("/", m.handleHome)
	r.Get("/assets/booking.css", m.handleCSS)
	r.Get("/feed/{token}", m.handleFeed)

	r.Get("/calendar", m.staff(PermRead, m.handleCalendar))
	r.Get("/book", m.staff(PermBook, m.handleBookForm))
	r.Post("/book", m.staff(PermBook, m.handleBook))
	r.Get("/appointments/{id}", m.staff(PermRead, m.handleAppointment))
	r.Post("/appointments/{id}/move", m.staff(PermBook, m.handleMove))
	r.Post("/appointments/{id}/cancel", m.staff(PermBook, m.handleCancel))
	r.Get("/recalls", m.staff(PermInvite, m.handleRecalls))
	r.Post("/invitations", m.staff(PermInvite, m.handleInvite))
	r.Get("/admin", m.staff(PermAdmin, m.handleAdmin))
	r.Post("/admin/{what}", m.staff(PermAdmin, m.handleAdminPost))

	r.Get("/my", m.citizen(m.handleMy))
	r.Get("/my/{person}/slots", m.citizen(m.handleSlots))
	r.Post("/my/{person}/book", m.citizen(m.handleSelfBook))
	r.Post("/my/appointments/{id}/move", m.citizen(m.handleSelfMove))
	r.Post("/my/appointments/{id}/cancel", m.citizen(m.handleSelfCancel))
	r.Post("/my/invitations/{id}/accept", m.citizen(m.handleAccept))
	r.Post("/my/invitations/{id}/change", m.citizen(m.handleChange))
	r.Post("/my/feed", m.citizen(m.handleFeedCreate))
	r.Post("/my/feed/revoke", m.citizen(m.handleFeedRevoke))
}

type handler func(w http.ResponseWriter, r *http.Request, p *auth.Principal)

// staff lets through staff holding perm.
func (m *Module) staff(perm string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := auth.PrincipalFrom(r.Context())
		if p == nil {
			m.Shell.Error(w, r, web.E(web.Unauthorized, ""))
			return
		}
		if p.IsCitizen() || !p.Can(perm) {
			m.Shell.Error(w, r, web.E(web.Forbidden, ""))
			return
		}
		h(w, r, p)
	}
}

// citizen lets through portal users.
func (m *Module) citizen(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := auth.PrincipalFrom(r.Context())
		if p == nil {
			m.Shell.Error(w, r, web.E(web.Unauthorized, ""))
			return
		}
		if !p.IsCitizen() || !p.Can(auth.PermPortalUse) || p.PersonID == 0 {
			m.Shell.Error(w, r, web.E(web.Forbidden, ""))
			return
		}
		h(w, r, p)
	}
}

// fail answers with err; a person or appointment the user may not reach
// is answered as not found (its existence is not revealed).
func (m *Module) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrForbidden) {
		err = web.E(web.NotFound, "")
	}
	m.Shell.Error(w, r, err)
}

// errKey names an error for the pages' messages.
func errKey(err error) string {
	switch {
	case errors.Is(err, ErrSlotTaken):
		return "booking.err.taken"
	case errors.Is(err, ErrClosed):
		return "booking.err.closed"
	case errors.Is(err, ErrRule):
		return "booking.err.rule"
	case errors.Is(err, ErrStatus):
		return "booking.err.status"
	case errors.Is(err, ErrInvalid):
		return "booking.err.invalid"
	}
	return ""
}

func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, name), 10, 64)
	if err != nil || id <= 0 {
		return 0, web.E(web.NotFound, "")
	}
	return id, nil
}

func formInt(r *http.Request, name string) int64 {
	v, _ := strconv.ParseInt(strings.TrimSpace(r.FormValue(name)), 10, 64)
	return v
}

func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 32<<10)
	if err := r.ParseForm(); err != nil {
		return web.E(web.Invalid, "", err)
	}
	return nil
}

// parseLocal reads "2006-01-02T15:04" (datetime-local) as Copenhagen time,
// or an RFC 3339 instant.
func parseLocal(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04", s, Loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: a time such as 2026-03-02T09:30", ErrInvalid)
	}
	return t, nil
}

func parseDay(s string, def time.Time) time.Time {
	if t, err := time.ParseInLocation("2006-01-02", strings.TrimSpace(s), Loc); err == nil {
		return t
	}
	return def
}

func (m *Module) handleCSS(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(assets, "assets/booking.css")
	if err != nil {
		m.Shell.Error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=300")
	_, _ = w.Write(b)
}

// GET /m/booking/ → the calendar (staff) or the citizen's page.
func (m *Module) handleHome(w http.ResponseWriter, r *http.Request) {
	p := auth.PrincipalFrom(r.Context())
	switch {
	case p == nil:
		m.Shell.Error(w, r, web.E(web.Unauthorized, ""))
	case p.IsCitizen():
		http.Redirect(w, r, "/m/booking/my", http.StatusSeeOther)
	case p.Can(PermRead):
		http.Redirect(w, r, "/m/booking/calendar", http.StatusSeeOther)
	default:
		m.Shell.Render(w, r, http.StatusOK, "booking_none", nil)
	}
}

// GET /m/booking/feed/{token}: the calendar feed (public; the token is the secret).
func (m *Module) handleFeed(w http.ResponseWriter, r *http.Request) {
	body, err := m.FeedCalendar(r.Context(), chi.URLParam(r, "token"))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		m.log().Error("booking: calendar feed failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/calendar; charset=utf-8")
	w.Header().Set("Content-Disposition", `inline; filename="aftaler.ics"`)
	_, _ = w.Write(body)
}

// ---- staff ----

// defaultUnit is the unit of the request (?unit=) or the tenant's first dental clinic.
func (m *Module) defaultUnit(ctx context.Context, p *auth.Principal, r *http.Request) (int64, []Unit, error) {
	units, err := m.UnitList(ctx, p.TenantID)
	if err != nil {
		return 0, nil, err
	}
	id, err := chooseUnit(units, r)
	return id, units, err
}

// chooseUnit is the unit a page is about: the one asked for (?unit=, one
// of units), else the first dental clinic, else the first unit.
func chooseUnit(units []Unit, r *http.Request) (int64, error) {
	if id := formInt(r, "unit"); id != 0 {
		if !slices.ContainsFunc(units, func(u Unit) bool { return u.ID == id }) {
			return 0, web.E(web.NotFound, "")
		}
		return id, nil
	}
	for _, u := range units {
		if u.Kind == "dental_clinic" {
			return u.ID, nil
		}
	}
	if len(units) > 0 {
		return units[0].ID, nil
	}
	return 0, web.E(web.NotFound, "no units")
}

// adminUnit is defaultUnit for the set-up pages: a clinic administrator
// sets up the units they belong to (auth.user_unit), not every unit of the
// municipality. Appointment types stay municipality-wide.
func (m *Module) adminUnit(ctx context.Context, p *auth.Principal, r *http.Request) (int64, []Unit, error) {
	all, err := m.UnitList(ctx, p.TenantID)
	if err != nil {
		return 0, nil, err
	}
	mine, err := auth.UserUnits(ctx, m.Pool, p.UserID)
	if err != nil {
		return 0, nil, err
	}
	var units []Unit
	for _, u := range all {
		if slices.Contains(mine, u.ID) {
			units = append(units, u)
		}
	}
	if len(units) == 0 {
		return 0, nil, fmt.Errorf("booking: set-up: not a member of any unit: %w", ErrForbidden)
	}
	id, err := chooseUnit(units, r) // another unit than one's own: not found
	return id, units, err
}

// gridRow is one quarter-hour row of the day view.
type gridRow struct {
	Time  time.Time
	Cells []gridCell
}

type gridCell struct {
	Skip     bool // covered by an entry above (rowspan)
	Entry    *Entry
	Rowspan  int
	Resource int64
}

func dayGrid(day CalendarDay, res []Resource) []gridRow {
	open, closeAt := 8*60, 16*60
	for i, h := range day.Hours {
		if i == 0 || h.Opens < open {
			open = h.Opens
		}
		if i == 0 || h.Closes > closeAt {
			closeAt = h.Closes
		}
	}
	var rows []gridRow
	for min := open; min < closeAt; min += 15 {
		rows = append(rows, gridRow{Time: wall(day.Date, min)})
	}
	for ri := range rows {
		rows[ri].Cells = make([]gridCell, len(res))
		for ci, rs := range res {
			rows[ri].Cells[ci].Resource = rs.ID
		}
	}
	for ci, rs := range res {
		for ei := range day.Entries {
			e := &day.Entries[ei]
			if !slices.Contains(e.ResourceIDs, rs.ID) {
				continue
			}
			for ri := range rows {
				rowEnd := rows[ri].Time.Add(15 * time.Minute)
				if e.Start.Before(rowEnd) && !e.Start.Before(rows[ri].Time) || (ri == 0 && e.Start.Before(rows[0].Time) && e.End.After(rows[0].Time)) {
					if rows[ri].Cells[ci].Skip || rows[ri].Cells[ci].Entry != nil {
						break
					}
					n := int((e.End.Sub(rows[ri].Time) + 15*time.Minute - 1) / (15 * time.Minute))
					if n < 1 {
						n = 1
					}
					if ri+n > len(rows) {
						n = len(rows) - ri
					}
					ok := true
					for k := ri + 1; k < ri+n; k++ {
						if rows[k].Cells[ci].Entry != nil || rows[k].Cells[ci].Skip {
							ok = false
						}
					}
					if !ok {
						break
					}
					rows[ri].Cells[ci].Entry = e
					rows[ri].Cells[ci].Rowspan = n
					for k := ri + 1; k < ri+n; k++ {
						rows[k].Cells[ci].Skip = true
					}
					break
				}
			}
		}
	}
	return rows
}

type calendarView struct {
	Cal       Calendar
	Units     []Unit
	UnitID    int64
	Resource  int64
	View      string
	Day       time.Time
	Prev      string
	Next      string
	Today     string
	Columns   []Resource
	Grid      []gridRow
	CanBook   bool
	CanInvite bool
	CanAdmin  bool
	Notice    string
}

// GET /m/booking/calendar?unit=&resource=&view=day|week&date=YYYY-MM-DD
func (m *Module) handleCalendar(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	ctx := r.Context()
	unitID, units, err := m.defaultUnit(ctx, p, r)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	view := r.FormValue("view")
	if view != "week" {
		view = "day"
	}
	day := parseDay(r.FormValue("date"), m.now().In(Loc))
	days := 1
	if view == "week" {
		days = 7
	}
	cal, err := m.Calendar(ctx, p, CalendarQuery{UnitID: unitID, ResourceID: formInt(r, "resource"), Day: day, Days: days})
	if err != nil {
		m.fail(w, r, err)
		return
	}
	v := calendarView{Cal: cal, Units: units, UnitID: unitID, Resource: formInt(r, "resource"), View: view, Day: cal.Days[0].Date,
		CanBook: p.Can(PermBook), CanInvite: p.Can(PermInvite), CanAdmin: p.Can(PermAdmin), Notice: r.FormValue("done")}
	v.Prev = cal.Days[0].Date.AddDate(0, 0, -days).Format("2006-01-02")
	v.Next = cal.Days[0].Date.AddDate(0, 0, days).Format("2006-01-02")
	v.Today = m.now().In(Loc).Format("2006-01-02")
	for _, rs := range cal.Resources {
		if rs.Active && (v.Resource == 0 || rs.ID == v.Resource) {
			v.Columns = append(v.Columns, rs)
		}
	}
	if view == "day" {
		v.Grid = dayGrid(cal.Days[0], v.Columns)
	}
	m.Shell.Render(w, r, http.StatusOK, "booking_calendar", v)
}

type bookView struct {
	UnitID    int64
	Units     []Unit
	Types     []Type
	Resources []Resource
	Start     string
	CPR       string
	TypeID    int64
	Resource  int64
	Error     string
}

// GET /m/booking/book?unit=&start=&resource=
func (m *Module) handleBookForm(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	v, err := m.bookView(r, p)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	m.Shell.Render(w, r, http.StatusOK, "booking_book", v)
}

func (m *Module) bookView(r *http.Request, p *auth.Principal) (bookView, error) {
	ctx := r.Context()
	unitID, units, err := m.defaultUnit(ctx, p, r)
	if err != nil {
		return bookView{}, err
	}
	types, err := m.Types(ctx, p.TenantID, false)
	if err != nil {
		return bookView{}, err
	}
	res, err := m.Resources(ctx, p.TenantID, unitID)
	if err != nil {
		return bookView{}, err
	}
	start := r.FormValue("start")
	if t, err := parseLocal(start); err == nil {
		start = t.In(Loc).Format("2006-01-02T15:04")
	}
	return bookView{UnitID: unitID, Units: units, Types: types, Resources: res, Start: start, TypeID: formInt(r, "type"), Resource: formInt(r, "resource")}, nil
}

// FindPerson looks a person up by CPR number for staff booking (audited as
// a search; the number itself is never logged).
func (m *Module) FindPerson(ctx context.Context, p *auth.Principal, cpr string) (auth.Person, error) {
	c, err := auth.ParseCPR(cpr)
	if err != nil {
		return auth.Person{}, fmt.Errorf("%w: CPR number", ErrInvalid)
	}
	var out auth.Person
	err = postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		person, err := auth.FindPersonByCPR(ctx, tx, c)
		if errors.Is(err, auth.ErrNotFound) {
			return fmt.Errorf("booking: person: %w", ErrNotFound)
		}
		if err != nil {
			return err
		}
		out = person
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionSearch, PersonID: person.ID, Object: "auth.person"})
	})
	return out, err
}

// POST /m/booking/book
func (m *Module) handleBook(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if err := parseForm(w, r); err != nil {
		m.Shell.Error(w, r, err)
		return
	}
	v, err := m.bookView(r, p)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	again := func(err error) {
		key := errKey(err)
		if key == "" {
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden) {
				key = "booking.err.person"
			} else {
				m.Shell.Error(w, r, err)
				return
			}
		}
		v.Error = key
		v.CPR = ""
		m.Shell.Render(w, r, http.StatusUnprocessableEntity, "booking_book", v)
	}
	start, err := parseLocal(r.FormValue("start"))
	if err != nil {
		again(err)
		return
	}
	person, err := m.FindPerson(r.Context(), p, r.FormValue("cpr"))
	if err != nil {
		again(err)
		return
	}
	req := BookRequest{PersonID: person.ID, UnitID: v.UnitID, TypeID: formInt(r, "type"), Start: start}
	if rid := formInt(r, "resource"); rid != 0 {
		req.ResourceIDs = []int64{rid}
	}
	a, err := m.Book(r.Context(), p, req)
	if err != nil {
		again(err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/m/booking/appointments/%d?done=booked", a.ID), http.StatusSeeOther)
}

type apptView struct {
	A         Appointment
	Person    auth.Person
	Age       int
	Start     string
	CanBook   bool
	Error     string
	Done      string
	Cancelled bool
}

// GET /m/booking/appointments/{id}
func (m *Module) handleAppointment(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	m.renderAppt(w, r, p, http.StatusOK, "")
}

func (m *Module) renderAppt(w http.ResponseWriter, r *http.Request, p *auth.Principal, status int, errMsg string) {
	id, err := pathID(r, "id")
	if err != nil {
		m.fail(w, r, err)
		return
	}
	a, err := m.Get(r.Context(), p, id)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	var person auth.Person
	err = postgres.InTenant(r.Context(), m.Pool, p.TenantID, func(tx pgx.Tx) error {
		var err error
		person, err = auth.GetPerson(r.Context(), tx, a.PersonID)
		return err
	})
	if err != nil {
		m.fail(w, r, err)
		return
	}
	v := apptView{A: a, Person: person, Start: a.Local().Format("2006-01-02T15:04"), CanBook: p.Can(PermBook), Error: errMsg,
		Done: r.URL.Query().Get("done"), Cancelled: !a.Active()}
	if !person.BirthDate.IsZero() {
		v.Age = auth.AgeAt(person.BirthDate, auth.DateIn(m.now(), Loc))
	}
	m.Shell.Render(w, r, status, "booking_appointment", v)
}

// POST /m/booking/appointments/{id}/move
func (m *Module) handleMove(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := pathID(r, "id")
	if err == nil {
		err = parseForm(w, r)
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	start, err := parseLocal(r.FormValue("start"))
	if err == nil {
		req := MoveRequest{Start: start, Reason: r.FormValue("reason")}
		if rid := formInt(r, "resource"); rid != 0 {
			req.ResourceIDs = []int64{rid}
		}
		_, err = m.Move(r.Context(), p, id, req)
	}
	if err != nil {
		if key := errKey(err); key != "" {
			m.renderAppt(w, r, p, http.StatusUnprocessableEntity, key)
			return
		}
		m.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/m/booking/appointments/%d?done=moved", id), http.StatusSeeOther)
}

// POST /m/booking/appointments/{id}/cancel
func (m *Module) handleCancel(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := pathID(r, "id")
	if err == nil {
		err = parseForm(w, r)
	}
	if err == nil {
		err = m.Cancel(r.Context(), p, id, r.FormValue("reason"))
	}
	if err != nil {
		if key := errKey(err); key != "" {
			m.renderAppt(w, r, p, http.StatusUnprocessableEntity, key)
			return
		}
		m.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/m/booking/appointments/%d?done=cancelled", id), http.StatusSeeOther)
}

type recallsView struct {
	UnitID     int64
	Units      []Unit
	Until      string
	Due        []RecallEntry
	Types      []Type
	Unanswered []Invitation
	Sent       []Invitation
	Names      map[int64]string
	Done       string
}

// GET /m/booking/recalls?unit=&until=
func (m *Module) handleRecalls(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	ctx := r.Context()
	unitID, units, err := m.defaultUnit(ctx, p, r)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	until := parseDay(r.FormValue("until"), m.now().In(Loc).AddDate(0, 2, 0))
	due, err := m.DueRecalls(ctx, p, unitID, localDate(until))
	if err != nil {
		m.fail(w, r, err)
		return
	}
	types, err := m.Types(ctx, p.TenantID, false)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	v := recallsView{UnitID: unitID, Units: units, Until: until.Format("2006-01-02"), Due: due, Types: types, Names: map[int64]string{}, Done: r.FormValue("done")}
	if v.Unanswered, err = m.UnitInvitations(ctx, p, unitID, InvitationUnanswered); err == nil {
		v.Sent, err = m.UnitInvitations(ctx, p, unitID, InvitationSent)
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	ids := map[int64]bool{}
	for _, l := range [][]Invitation{v.Unanswered, v.Sent} {
		for _, i := range l {
			ids[i.PersonID] = true
		}
	}
	err = postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		for id := range ids {
			person, err := auth.GetPerson(ctx, tx, id)
			if err != nil {
				return err
			}
			v.Names[id] = person.GivenName + " " + person.FamilyName
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: id, Object: "booking.invitation"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.fail(w, r, err)
		return
	}
	m.Shell.Render(w, r, http.StatusOK, "booking_recalls", v)
}

// POST /m/booking/invitations (unit, type, person=ID:YYYY-MM-DD …)
func (m *Module) handleInvite(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if err := parseForm(w, r); err != nil {
		m.Shell.Error(w, r, err)
		return
	}
	unitID, _, err := m.defaultUnit(r.Context(), p, r)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	typeID := formInt(r, "type")
	if typeID == 0 || len(r.PostForm["person"]) == 0 {
		m.Shell.Error(w, r, web.E(web.Invalid, ""))
		return
	}
	sent, failed := 0, 0
	for _, v := range r.PostForm["person"] {
		idS, dueS, _ := strings.Cut(v, ":")
		id, _ := strconv.ParseInt(idS, 10, 64)
		due, err := time.Parse("2006-01-02", dueS)
		if id <= 0 || err != nil {
			failed++
			continue
		}
		if _, err := m.Invite(r.Context(), p, InviteRequest{PersonID: id, UnitID: unitID, TypeID: typeID, DueDate: due}); err != nil {
			if web.KindOf(err) == web.Internal {
				m.Shell.Error(w, r, err)
				return
			}
			failed++
			continue
		}
		sent++
	}
	http.Redirect(w, r, fmt.Sprintf("/m/booking/recalls?unit=%d&done=%d-%d", unitID, sent, failed), http.StatusSeeOther)
}

type adminView struct {
	UnitID    int64
	Units     []Unit
	Resources []Resource
	Types     []Type
	Hours     []Hours
	Closed    []ClosedDay
	Absences  []Absence
	Rules     Rules
	Weekdays  []int
	Done      string
}

// GET /m/booking/admin?unit=
func (m *Module) handleAdmin(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	ctx := r.Context()
	unitID, units, err := m.adminUnit(ctx, p, r)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	v := adminView{UnitID: unitID, Units: units, Weekdays: []int{1, 2, 3, 4, 5, 6, 7}, Done: r.FormValue("done")}
	now := m.now()
	if v.Resources, err = m.Resources(ctx, p.TenantID, unitID); err == nil {
		if v.Types, err = m.Types(ctx, p.TenantID, true); err == nil {
			if v.Hours, err = m.Hours(ctx, p.TenantID, unitID); err == nil {
				if v.Closed, err = m.ClosedDays(ctx, p.TenantID, unitID, now); err == nil {
					if v.Absences, err = m.Absences(ctx, p.TenantID, unitID, now, now.AddDate(1, 0, 0)); err == nil {
						v.Rules, err = m.RulesFor(ctx, p.TenantID, unitID)
					}
				}
			}
		}
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	m.Shell.Render(w, r, http.StatusOK, "booking_admin", v)
}

func parseClock(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "24:00" {
		return 24 * 60, nil
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%w: a time such as 08:00", ErrInvalid)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// POST /m/booking/admin/{resources|types|hours|closed|absence|rules}
func (m *Module) handleAdminPost(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if err := parseForm(w, r); err != nil {
		m.Shell.Error(w, r, err)
		return
	}
	ctx := r.Context()
	unitID, _, err := m.adminUnit(ctx, p, r)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	f := r.FormValue
	switch chi.URLParam(r, "what") {
	case "resources":
		if id := formInt(r, "id"); id != 0 { // out of service or back in
			err = m.SetResourceActive(ctx, p.TenantID, unitID, id, f("active") == "true")
			break
		}
		_, err = m.SaveResource(ctx, p.TenantID, Resource{UnitID: unitID, Kind: f("kind"), Name: f("name"), StationAE: f("station_ae")})
	case "types":
		if id := formInt(r, "id"); id != 0 {
			err = m.SetTypeActive(ctx, p.TenantID, id, f("active") == "true")
			break
		}
		minutes, _ := strconv.Atoi(f("minutes"))
		_, err = m.SaveType(ctx, p.TenantID, Type{Code: f("code"), Name: f("name"), NameEN: f("name_en"), PublicName: f("public_name"),
			Minutes: minutes, SelfService: f("self_service") == "on", Kinds: r.PostForm["kinds"], Imaging: f("imaging") == "on",
			StationAE: f("station_ae"), ProcedureCode: f("procedure_code"), ProcedureDescription: f("procedure_description"),
			Modality: f("modality"), Video: f("video") == "on"})
	case "hours":
		var hours []Hours
		for wd := 1; wd <= 7; wd++ {
			o, c := f(fmt.Sprintf("opens%d", wd)), f(fmt.Sprintf("closes%d", wd))
			if strings.TrimSpace(o) == "" && strings.TrimSpace(c) == "" {
				continue
			}
			om, err1 := parseClock(o)
			cm, err2 := parseClock(c)
			if err = errors.Join(err1, err2); err != nil {
				break
			}
			hours = append(hours, Hours{Weekday: wd, Opens: om, Closes: cm})
		}
		if err == nil {
			err = m.SetHours(ctx, p.TenantID, unitID, hours)
		}
	case "closed":
		var day time.Time
		if day, err = time.Parse("2006-01-02", f("day")); err != nil {
			err = fmt.Errorf("%w: date", ErrInvalid)
		} else {
			err = m.AddClosedDay(ctx, p.TenantID, unitID, day, f("reason"))
		}
	case "absence":
		from, err1 := parseLocal(f("from"))
		until, err2 := parseLocal(f("until"))
		if err = errors.Join(err1, err2); err == nil {
			_, err = m.AddAbsence(ctx, p.TenantID, unitID, Absence{ResourceID: formInt(r, "resource"), From: from, Until: until, Reason: f("reason")})
		}
	case "rules":
		// A field that is not a whole number is refused, not taken as 0
		// (no notice, no reminders, no follow-ups).
		var bad []error
		atoi := func(k string) int {
			n, err := strconv.Atoi(strings.TrimSpace(f(k)))
			if err != nil {
				bad = append(bad, fmt.Errorf("%w: %s must be a whole number", ErrInvalid, k))
			}
			return n
		}
		rules := Rules{MinNoticeHours: atoi("min_notice_hours"), HorizonDays: atoi("horizon_days"),
			CancelAllowed: f("cancel_allowed") == "on", ReminderHours: atoi("reminder_hours"), AnswerDays: atoi("answer_days"),
			FollowupDays: atoi("followup_days"), MaxFollowups: atoi("max_followups")}
		if err = errors.Join(bad...); err == nil {
			err = m.SetRules(ctx, p.TenantID, unitID, rules)
		}
	default:
		err = web.E(web.NotFound, "")
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/m/booking/admin?unit=%d&done=saved", unitID), http.StatusSeeOther)
}

// ---- citizens ----

// Person is a person the citizen books for.
type Person struct {
	ID          int64
	Name        string
	Self        bool
	Upcoming    []Appointment
	Invitations []Invitation
}

type myView struct {
	Persons []Person
	Types   []Type
	Units   []Unit
	UnitID  int64
	HasFeed bool
	FeedURL string
	Done    string
	Error   string
}

// persons lists the citizen and the children they book for (custody, under 15).
func (m *Module) persons(ctx context.Context, p *auth.Principal) ([]Person, error) {
	var out []Person
	err := postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		self, err := auth.GetPerson(ctx, tx, p.PersonID)
		if err != nil {
			return err
		}
		out = append(out, Person{ID: self.ID, Name: self.GivenName, Self: true})
		children, err := auth.ChildrenInCustody(ctx, tx, p.PersonID)
		if err != nil {
			return err
		}
		today := auth.DateIn(m.now(), Loc)
		for _, c := range children {
			if !c.BirthDate.IsZero() && auth.AgeAt(c.BirthDate, today) < auth.CustodyAgeLimit {
				out = append(out, Person{ID: c.ID, Name: c.GivenName})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("booking: persons: %w", err)
	}
	return out, nil
}

// GET /m/booking/my
func (m *Module) handleMy(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	m.renderMy(w, r, p, http.StatusOK, "", "")
}

func (m *Module) renderMy(w http.ResponseWriter, r *http.Request, p *auth.Principal, status int, feedURL, errKey string) {
	ctx := r.Context()
	persons, err := m.persons(ctx, p)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	now := m.now()
	for i := range persons {
		if persons[i].Upcoming, err = m.Appointments(ctx, p, persons[i].ID, ListFilter{From: now}); err != nil {
			m.fail(w, r, err)
			return
		}
		if persons[i].Invitations, err = m.Invitations(ctx, p, persons[i].ID, true); err != nil {
			m.fail(w, r, err)
			return
		}
		// Proposed appointments are shown as invitations.
		persons[i].Upcoming = slices.DeleteFunc(persons[i].Upcoming, func(a Appointment) bool { return a.Status == StatusProposed })
	}
	types, err := m.Types(ctx, p.TenantID, false)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	types = slices.DeleteFunc(types, func(t Type) bool { return !t.SelfService })
	units, err := m.UnitList(ctx, p.TenantID)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	units = slices.DeleteFunc(units, func(u Unit) bool { return u.Kind != "dental_clinic" })
	v := myView{Persons: persons, Types: types, Units: units, FeedURL: feedURL, Done: r.URL.Query().Get("done"), Error: errKey}
	if len(units) > 0 {
		v.UnitID = units[0].ID
	}
	if v.HasFeed, err = m.HasFeed(ctx, p); err != nil {
		m.fail(w, r, err)
		return
	}
	m.Shell.Render(w, r, status, "booking_my", v)
}

type slotDay struct {
	Date  time.Time
	Slots []Slot
}

type slotsView struct {
	Person  Person
	Type    Type
	Types   []Type
	UnitID  int64
	Units   []Unit
	Moving  *Appointment
	Invite  int64
	Days    []slotDay
	Week    time.Time
	Prev    string
	Next    string
	Action  string
	Error   string
	Earlier bool
}

// GET /m/booking/my/{person}/slots?type=&unit=&appt=&inv=&week=YYYY-MM-DD
func (m *Module) handleSlots(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	m.renderSlots(w, r, p, http.StatusOK, "")
}

func (m *Module) renderSlots(w http.ResponseWriter, r *http.Request, p *auth.Principal, status int, errKey string) {
	ctx := r.Context()
	personID, err := pathID(r, "person")
	if err != nil {
		m.fail(w, r, err)
		return
	}
	persons, err := m.persons(ctx, p)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	i := slices.IndexFunc(persons, func(x Person) bool { return x.ID == personID })
	if i < 0 {
		m.fail(w, r, web.E(web.NotFound, ""))
		return
	}
	v := slotsView{Person: persons[i], Error: errKey, Invite: formInt(r, "inv")}
	v.UnitID, v.Units, err = m.defaultUnit(ctx, p, r)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	typeID := formInt(r, "type")
	if apptID := formInt(r, "appt"); apptID != 0 {
		a, err := m.Get(ctx, p, apptID)
		if err != nil || a.PersonID != personID || !a.Active() {
			m.fail(w, r, web.E(web.NotFound, ""))
			return
		}
		v.Moving, typeID, v.UnitID = &a, a.TypeID, a.UnitID
		v.Action = fmt.Sprintf("/m/booking/my/appointments/%d/move", a.ID)
		if v.Invite != 0 {
			v.Action = fmt.Sprintf("/m/booking/my/invitations/%d/change", v.Invite)
		}
	} else {
		v.Action = fmt.Sprintf("/m/booking/my/%d/book", personID)
	}
	types, err := m.Types(ctx, p.TenantID, false)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	for _, t := range types {
		if t.SelfService {
			v.Types = append(v.Types, t)
		}
		if t.ID == typeID {
			v.Type = t
		}
	}
	if v.Type.ID == 0 {
		m.Shell.Render(w, r, status, "booking_slots", v)
		return
	}
	now := m.now()
	week := parseDay(r.FormValue("week"), now.In(Loc))
	first := localDate(week)
	first = first.AddDate(0, 0, 1-isoWeekday(first))
	v.Week = first
	v.Prev = first.AddDate(0, 0, -7).Format("2006-01-02")
	v.Next = first.AddDate(0, 0, 7).Format("2006-01-02")
	v.Earlier = wall(first, 0).After(now)
	q := SlotQuery{PersonID: personID, UnitID: v.UnitID, TypeID: typeID, From: wall(first, 0), To: wall(first.AddDate(0, 0, 7), 0), Limit: 500}
	if v.Moving != nil {
		q.Moving = v.Moving.ID
	}
	slots, err := m.FreeSlots(ctx, p, q)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	for _, s := range slots {
		d := localDate(s.Start)
		if len(v.Days) == 0 || !v.Days[len(v.Days)-1].Date.Equal(d) {
			v.Days = append(v.Days, slotDay{Date: d})
		}
		v.Days[len(v.Days)-1].Slots = append(v.Days[len(v.Days)-1].Slots, s)
	}
	m.Shell.Render(w, r, status, "booking_slots", v)
}

func (m *Module) selfDone(w http.ResponseWriter, r *http.Request, p *auth.Principal, err error, done string) {
	if err != nil {
		if key := errKey(err); key != "" {
			if chi.URLParam(r, "person") != "" {
				m.renderSlots(w, r, p, http.StatusUnprocessableEntity, key)
			} else {
				m.renderMy(w, r, p, http.StatusUnprocessableEntity, "", key)
			}
			return
		}
		m.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/m/booking/my?done="+url.QueryEscape(done), http.StatusSeeOther)
}

// POST /m/booking/my/{person}/book (type, unit, start)
func (m *Module) handleSelfBook(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	personID, err := pathID(r, "person")
	if err == nil {
		err = parseForm(w, r)
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	start, err := parseLocal(r.FormValue("start"))
	if err == nil {
		_, err = m.Book(r.Context(), p, BookRequest{PersonID: personID, UnitID: formInt(r, "unit"), TypeID: formInt(r, "type"), Start: start})
	}
	m.selfDone(w, r, p, err, "booked")
}

// POST /m/booking/my/appointments/{id}/move (start)
func (m *Module) handleSelfMove(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := pathID(r, "id")
	if err == nil {
		err = parseForm(w, r)
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	start, err := parseLocal(r.FormValue("start"))
	if err == nil {
		_, err = m.Move(r.Context(), p, id, MoveRequest{Start: start})
	}
	m.selfDone(w, r, p, err, "moved")
}

// POST /m/booking/my/appointments/{id}/cancel
func (m *Module) handleSelfCancel(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := pathID(r, "id")
	if err == nil {
		err = parseForm(w, r)
	}
	if err == nil {
		err = m.Cancel(r.Context(), p, id, r.FormValue("reason"))
	}
	m.selfDone(w, r, p, err, "cancelled")
}

// POST /m/booking/my/invitations/{id}/accept
func (m *Module) handleAccept(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := pathID(r, "id")
	if err == nil {
		_, err = m.AcceptInvitation(r.Context(), p, id)
	}
	m.selfDone(w, r, p, err, "accepted")
}

// POST /m/booking/my/invitations/{id}/change (start)
func (m *Module) handleChange(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, err := pathID(r, "id")
	if err == nil {
		err = parseForm(w, r)
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	start, err := parseLocal(r.FormValue("start"))
	if err == nil {
		_, err = m.ChangeInvitation(r.Context(), p, id, start)
	}
	m.selfDone(w, r, p, err, "moved")
}

// POST /m/booking/my/feed: a new calendar link, shown once.
func (m *Module) handleFeedCreate(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	token, err := m.CreateFeed(r.Context(), p)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	m.renderMy(w, r, p, http.StatusOK, m.FeedURL(token), "")
}

// POST /m/booking/my/feed/revoke
func (m *Module) handleFeedRevoke(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if err := m.RevokeFeed(r.Context(), p); err != nil {
		m.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/m/booking/my?done=feed_revoked", http.StatusSeeOther)
}
