package booking

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// maxAttempts is how often a notification is tried before it is given up
// (it stays in the outbox with its last error).
const maxAttempts = 8

func enqueue(ctx context.Context, tx pgx.Tx, tenantID int64, kind string, apptID int64, due time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO booking.outbox (tenant_id, kind, appointment_id, due) VALUES ($1, $2, $3, $4)`,
		tenantID, kind, apptID, due); err != nil {
		return fmt.Errorf("booking: queue notification: %w", err)
	}
	return nil
}

// Run implements modules.Runner: every PollEvery it schedules reminders,
// follows up unanswered invitations and sends due notifications. Several
// servers may run it at once (rows are taken with SKIP LOCKED).
func (m *Module) Run(ctx context.Context) error {
	every := m.PollEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.Tick(ctx); err != nil && ctx.Err() == nil {
			m.log().Warn("booking: background round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick does one round of the background work for every tenant.
func (m *Module) Tick(ctx context.Context) error {
	rows, err := m.Pool.Query(ctx, `SELECT booking.tenants()`)
	if err != nil {
		return fmt.Errorf("booking: tenants: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("booking: tenants: %w", err)
	}
	var errs []error
	for _, t := range tenants {
		sctx := audit.WithActor(ctx, audit.Actor{Username: "system:booking", Role: "system", TenantID: t})
		if err := m.remind(sctx, t); err != nil {
			errs = append(errs, err)
		}
		if err := m.followUp(sctx, t); err != nil {
			errs = append(errs, err)
		}
		if err := m.send(sctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remind queues the reminder of every booked appointment whose reminder
// time (the unit's ReminderHours before the start) has come, unless it was
// booked or moved after that time (its confirmation said it all).
func (m *Module) remind(ctx context.Context, tenantID int64) error {
	now := m.now()
	return postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			WITH due AS (
				SELECT a.id, lower(a.during) - make_interval(hours => COALESCE(
					(SELECT r.reminder_hours FROM booking.rule r WHERE r.unit_id IN (a.unit_id, 0) ORDER BY r.unit_id DESC LIMIT 1), $2)) AS at
				FROM booking.appointment a
				WHERE a.status = 'booked' AND a.reminded IS NULL AND lower(a.during) > $1),
			marked AS (
				UPDATE booking.appointment a SET reminded = $1 FROM due
				WHERE a.id = due.id AND due.at <= $1 AND a.updated < due.at
				RETURNING a.id, a.tenant_id)
			INSERT INTO booking.outbox (tenant_id, kind, appointment_id, due) SELECT tenant_id, 'reminder', id, $1 FROM marked`,
			now, DefaultRules.ReminderHours)
		if err != nil {
			return fmt.Errorf("booking: reminders: %w", err)
		}
		return nil
	})
}

// followUp sends a follow-up for invitations not answered by their time,
// up to the unit's MaxFollowups, then marks them unanswered for the clinic
// to call.
func (m *Module) followUp(ctx context.Context, tenantID int64) error {
	now := m.now()
	return postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT i.id, i.unit_id, i.person_id, i.followups, a.id FROM booking.invitation i
			JOIN booking.appointment a ON a.invitation_id = i.id AND a.status = 'proposed'
			WHERE i.status = 'sent' AND i.next_followup <= $1 ORDER BY i.id FOR UPDATE OF i SKIP LOCKED`, now)
		if err != nil {
			return fmt.Errorf("booking: follow-ups: %w", err)
		}
		type inv struct {
			id, unit, person int64
			n                int
			appt             int64
		}
		var list []inv
		var x inv
		if _, err := pgx.ForEachRow(rows, []any{&x.id, &x.unit, &x.person, &x.n, &x.appt}, func() error { list = append(list, x); return nil }); err != nil {
			return fmt.Errorf("booking: follow-ups: %w", err)
		}
		for _, i := range list {
			r, err := rulesOf(ctx, tx, i.unit)
			if err != nil {
				return err
			}
			change := "followup"
			if i.n >= r.MaxFollowups {
				change = "unanswered"
				_, err = tx.Exec(ctx, `UPDATE booking.invitation SET status = 'unanswered', next_followup = NULL WHERE id = $1`, i.id)
			} else {
				_, err = tx.Exec(ctx, `UPDATE booking.invitation SET followups = followups + 1, next_followup = $2 WHERE id = $1`,
					i.id, now.AddDate(0, 0, r.FollowupDays))
				if err == nil {
					err = enqueue(ctx, tx, tenantID, "followup", i.appt, now)
				}
			}
			if err != nil {
				return fmt.Errorf("booking: follow-up: %w", err)
			}
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionUpdate, PersonID: i.person,
				Object: fmt.Sprintf("booking.invitation/%d", i.id), Detail: map[string]any{"change": change}}); err != nil {
				return fmt.Errorf("booking: audit: %w", err)
			}
		}
		return nil
	})
}

// send delivers due notifications, a batch per transaction.
func (m *Module) send(ctx context.Context, tenantID int64) error {
	if m.Notifier == nil {
		return nil
	}
	for {
		n, err := m.sendBatch(ctx, tenantID, 20)
		if err != nil || n < 20 {
			return err
		}
	}
}

func (m *Module) sendBatch(ctx context.Context, tenantID int64, limit int) (int, error) {
	now := m.now()
	count := 0
	err := postgres.InTenant(ctx, m.Pool, tenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, kind, appointment_id, attempts, delivered FROM booking.outbox
			WHERE sent IS NULL AND due <= $1 AND attempts < $2 ORDER BY due, id LIMIT $3 FOR UPDATE SKIP LOCKED`, now, maxAttempts, limit)
		if err != nil {
			return fmt.Errorf("booking: outbox: %w", err)
		}
		type item struct {
			id        int64
			kind      string
			appt      int64
			attempts  int
			delivered []string
		}
		var items []item
		var it item
		if _, err := pgx.ForEachRow(rows, []any{&it.id, &it.kind, &it.appt, &it.attempts, &it.delivered}, func() error {
			items = append(items, it)
			return nil
		}); err != nil {
			return fmt.Errorf("booking: outbox: %w", err)
		}
		count = len(items)
		for _, it := range items {
			msgs, skip, err := m.compose(ctx, tx, tenantID, it.kind, it.appt, now)
			delivered := it.delivered
			if err == nil && !skip {
				delivered, err = m.deliver(ctx, msgs, it.delivered)
			}
			if err != nil {
				next := now.Add(time.Duration(1<<it.attempts) * time.Minute)
				m.log().Warn("booking: notification not sent", "outbox_id", it.id, "kind", it.kind, "attempt", it.attempts+1)
				// The recipients reached are kept: the next attempt is for the others only.
				if _, err := tx.Exec(ctx, `UPDATE booking.outbox SET attempts = attempts + 1, last_error = left($2, 500), due = $3, delivered = $4
					WHERE id = $1`, it.id, err.Error(), next, delivered); err != nil {
					return fmt.Errorf("booking: outbox: %w", err)
				}
				continue
			}
			note := ""
			if skip {
				note = "skipped: no longer current"
			}
			if _, err := tx.Exec(ctx, `UPDATE booking.outbox SET sent = $2, attempts = attempts + 1, last_error = $3 WHERE id = $1`, it.id, now, note); err != nil {
				return fmt.Errorf("booking: outbox: %w", err)
			}
		}
		return nil
	})
	return count, err
}

// deliver sends the messages of one outbox row to the recipients not among
// done (recipientKey) and returns done with those it reached added: when
// one recipient fails, the others are not sent the message again with the
// retry.
func (m *Module) deliver(ctx context.Context, msgs []Message, done []string) ([]string, error) {
	done = slices.Clone(done)
	var errs []error
	for _, msg := range msgs {
		key := recipientKey(msg)
		if slices.Contains(done, key) {
			continue
		}
		if err := m.Notifier.Notify(ctx, msg); err != nil && !errors.Is(err, ErrNoAddress) {
			errs = append(errs, err)
			continue
		}
		done = append(done, key)
	}
	return done, errors.Join(errs...)
}

// recipientKey names a message's recipient (its addresses) in the outbox
// without keeping the addresses themselves.
func recipientKey(msg Message) string {
	h := sha256.Sum256([]byte(msg.Email + "\x00" + msg.Phone))
	return hex.EncodeToString(h[:8])
}

// recipient is who gets a person's notifications. informed: a custody
// holder of a young person of 15–17, told but not the one to act (the
// young person answers and books themselves).
type recipient struct {
	email, phone string
	informed     bool
}

// recipients are the custody holders of a child under 18 (Health Act §17:
// they are informed also after 15) and the person from 15 on.
func recipients(ctx context.Context, tx pgx.Tx, person auth.Person, today time.Time) ([]recipient, error) {
	age := 99
	if !person.BirthDate.IsZero() {
		age = auth.AgeAt(person.BirthDate, today)
	}
	var out []recipient
	if age < 18 {
		holders, err := auth.CustodyHolders(ctx, tx, person.ID)
		if err != nil {
			return nil, err
		}
		for _, h := range holders {
			hp, err := auth.GetPerson(ctx, tx, h)
			if err != nil {
				return nil, err
			}
			out = append(out, recipient{hp.Email, hp.Phone, age >= auth.CustodyAgeLimit})
		}
	}
	if age >= auth.CustodyAgeLimit || len(out) == 0 {
		out = append(out, recipient{person.Email, person.Phone, false})
	}
	return out, nil
}

// compose renders the messages of one outbox row. skip: the appointment
// changed so that the message is no longer current (a reminder of a
// cancelled appointment).
func (m *Module) compose(ctx context.Context, tx pgx.Tx, tenantID int64, kind string, apptID int64, now time.Time) ([]Message, bool, error) {
	as, err := queryAppts(ctx, tx, `WHERE a.id = $1`, apptID)
	if err != nil {
		return nil, false, err
	}
	if len(as) == 0 {
		return nil, true, nil
	}
	a := as[0]
	if kind != "cancelled" && !a.Active() {
		return nil, true, nil
	}
	if (kind == "invitation" || kind == "followup") && a.Status != StatusProposed {
		return nil, true, nil
	}
	res, err := m.decorate(ctx, tx, tenantID, as)
	if err != nil {
		return nil, false, err
	}
	a = as[0]
	person, err := auth.GetPerson(ctx, tx, a.PersonID)
	if err != nil {
		return nil, false, err
	}
	rcpts, err := recipients(ctx, tx, person, auth.DateIn(now, Loc))
	if err != nil {
		return nil, false, err
	}
	r, err := rulesOf(ctx, tx, a.UnitID)
	if err != nil {
		return nil, false, err
	}
	host := ""
	if u, err := url.Parse(m.BaseURL); err == nil {
		host = u.Hostname()
	}
	cal := ICS("", now, Event{UID: eventUID(a.ID, host), Sequence: a.Version, Start: a.Start, End: a.End,
		Summary: summary(a), Location: a.Place(res), Cancelled: !a.Active(), Tentative: a.Status == StatusProposed})
	var out []Message
	for _, rc := range rcpts {
		subject, text, short := m.render(kind, a, person.GivenName, a.Place(res), r, rc.informed)
		out = append(out, Message{Kind: kind, Email: rc.email, Phone: rc.phone, Subject: subject, Text: text, Short: short, Calendar: cal})
	}
	return out, false, nil
}

// summary is what calendars show: the neutral public name and the unit.
func summary(a Appointment) string {
	name := a.PublicName
	if name == "" {
		name = "Aftale"
	}
	if a.UnitName != "" {
		return name + " – " + a.UnitName
	}
	return name
}

var daWeekdays = []string{"søndag", "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag"}
var daMonths = []string{"januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober", "november", "december"}

// DanishDate formats a time as "torsdag 12. marts 2026 kl. 10.00" in Loc.
func DanishDate(t time.Time) string {
	t = t.In(Loc)
	return fmt.Sprintf("%s %d. %s %d kl. %02d.%02d", daWeekdays[t.Weekday()], t.Day(), daMonths[t.Month()-1], t.Year(), t.Hour(), t.Minute())
}

// EnglishDate formats a time as "Thursday 12 March 2026, 10:00" in Loc.
func EnglishDate(t time.Time) string { return t.In(Loc).Format("Monday 2 January 2006, 15:04") }

// changeText says what the family may do about the appointment, as the
// booking rules allow it (Rules.CitizenMay without the clock: the message
// is read before the notice runs out): move and cancel, move only, or
// neither (the clinic does it).
func changeText(a Appointment, r Rules, firstName, link string, informed bool) (da, en string) {
	switch {
	case !a.FamilyChanges():
		return "Kontakt klinikken, hvis tiden skal flyttes eller aflyses.", "Contact the clinic to move or cancel it."
	case informed && r.CancelAllowed:
		return fmt.Sprintf("%s kan selv flytte eller aflyse tiden.", firstName), fmt.Sprintf("%s can move or cancel it themselves.", firstName)
	case informed:
		return fmt.Sprintf("%s kan selv flytte tiden; skal den aflyses, kontaktes klinikken.", firstName),
			fmt.Sprintf("%s can move it themselves; to cancel it, contact the clinic.", firstName)
	case r.CancelAllowed:
		return fmt.Sprintf("Du kan flytte eller aflyse tiden på %s senest %d timer før.", link, r.MinNoticeHours),
			fmt.Sprintf("You can move or cancel it at %s up to %d hours before.", link, r.MinNoticeHours)
	}
	return fmt.Sprintf("Du kan flytte tiden på %s senest %d timer før; skal den aflyses, kontakt klinikken.", link, r.MinNoticeHours),
		fmt.Sprintf("You can move it at %s up to %d hours before; to cancel it, contact the clinic.", link, r.MinNoticeHours)
}

// render writes one message; informed (a parent of a young person of
// 15–17) gets the news without the calls to act, which are the young
// person's.
func (m *Module) render(kind string, a Appointment, firstName, place string, r Rules, informed bool) (subject, text, short string) {
	link := strings.TrimSuffix(m.BaseURL, "/") + "/m/booking/my"
	when := DanishDate(a.Start)
	end := a.End.In(Loc).Format("15.04")
	whenEN := EnglishDate(a.Start)
	endEN := a.End.In(Loc).Format("15:04")
	var da, en, head string
	switch kind {
	case "confirmation":
		head = "Bekræftelse"
		da = fmt.Sprintf("Tiden for %s er booket.", firstName)
		en = fmt.Sprintf("The appointment for %s is booked.", firstName)
	case "reminder":
		head = "Påmindelse"
		da = fmt.Sprintf("Husk tiden for %s.", firstName)
		en = fmt.Sprintf("A reminder of the appointment for %s.", firstName)
	case "moved":
		head = "Ny tid"
		da = fmt.Sprintf("Tiden for %s er flyttet.", firstName)
		en = fmt.Sprintf("The appointment for %s has been moved.", firstName)
	case "cancelled":
		head = "Aflyst"
		da = fmt.Sprintf("Tiden for %s er aflyst.", firstName)
		en = fmt.Sprintf("The appointment for %s has been cancelled.", firstName)
	case "invitation":
		head = "Indkaldelse"
		da = fmt.Sprintf("%s er indkaldt. Bekræft tiden, eller vælg en anden, på %s.", firstName, link)
		en = fmt.Sprintf("%s is called in. Confirm the time, or choose another, at %s.", firstName, link)
	case "followup":
		head = "Husk at svare"
		da = fmt.Sprintf("Vi mangler dit svar på indkaldelsen af %s. Bekræft tiden, eller vælg en anden, på %s.", firstName, link)
		en = fmt.Sprintf("We have not had your answer to the call-in of %s. Confirm the time, or choose another, at %s.", firstName, link)
	}
	if informed {
		switch kind {
		case "invitation":
			da = fmt.Sprintf("%s er indkaldt. %s svarer selv på indkaldelsen.", firstName, firstName)
			en = fmt.Sprintf("%s is called in. %s answers the call-in themselves.", firstName, firstName)
		case "followup":
			head = "Indkaldelse ikke besvaret"
			da = fmt.Sprintf("%s har endnu ikke svaret på indkaldelsen og svarer selv.", firstName)
			en = fmt.Sprintf("%s has not yet answered the call-in and answers it themselves.", firstName)
		}
	}
	subject = fmt.Sprintf("%s: %s %s", head, a.UnitName, when)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nTid: %s–%s\nSted: %s\n", da, when, end, place)
	daAct, enAct := "", ""
	if kind != "cancelled" {
		daAct, enAct = changeText(a, r, firstName, link, informed)
	}
	if daAct != "" {
		fmt.Fprintf(&b, "\n%s\n", daAct)
	}
	fmt.Fprintf(&b, "\n--\n%s\nWhen: %s–%s\nWhere: %s\n", en, whenEN, endEN, place)
	if enAct != "" {
		fmt.Fprintf(&b, "%s\n", enAct)
	}
	text = b.String()
	short = fmt.Sprintf("%s: %s %s, %s. %s", head, firstName, when, a.UnitName, link)
	if informed {
		short = fmt.Sprintf("%s: %s %s, %s.", head, firstName, when, a.UnitName)
	}
	return subject, text, short
}
