package booking_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/dicom/worklist"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/modules/booking/bookingtest"
)

type smsLog struct {
	mu   sync.Mutex
	sent []string
}

func (s *smsLog) SendSMS(_ context.Context, to, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, to+": "+text)
	return nil
}

func (s *smsLog) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

func withNotifier(t *testing.T, f *fixture) (*bookingtest.SMTPSink, *smsLog) {
	sink := bookingtest.StartSMTP(t)
	sms := &smsLog{}
	f.m.Notifier = booking.Channels{&booking.SMTP{Addr: sink.Addr, From: "Tandplejen <tandpleje@testby.example>", TLS: "off"}, booking.SMS{Gateway: sms}}
	return sink, sms
}

func mailsTo(t *testing.T, sink *bookingtest.SMTPSink, addr string) []bookingtest.Parsed {
	var out []bookingtest.Parsed
	for _, m := range sink.Messages() {
		for _, to := range m.To {
			if to == addr {
				p, err := bookingtest.Parse(m.Data)
				require.NoError(t, err)
				out = append(out, p)
			}
		}
	}
	return out
}

// Confirmation and reminder e-mails reach a real SMTP server with a valid
// .ics; SMS goes through the same interface; no health data in either.
func TestConfirmationAndReminderByMailAndSMS(t *testing.T) {
	f := newFixture(t)
	sink, sms := withNotifier(t, f)
	ctx := context.Background()
	a, err := f.m.Book(f.ctx(f.parent), f.parent, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 30, 8, 0)})
	require.NoError(t, err)
	require.NoError(t, f.m.Tick(ctx))
	got := mailsTo(t, sink, "mette@example.org")
	require.Len(t, got, 1, "the custody holder gets the confirmation")
	require.True(t, strings.HasPrefix(got[0].Subject, "Bekræftelse: Tandplejen Testby mandag 30. marts 2026 kl. 08.00"), got[0].Subject)
	require.Contains(t, got[0].Text, "Tiden for Emma er booket.")
	require.Contains(t, got[0].Text, "https://molar.example/m/booking/my")
	require.Contains(t, got[0].Text, "Du kan flytte eller aflyse tiden på https://molar.example/m/booking/my senest 24 timer før.")
	require.NotContains(t, got[0].Text, "Undersøgelse", "the staff name of the type is not sent")
	require.Len(t, got[0].Calendars, 1)
	cal, err := bookingtest.CheckICS(got[0].Calendars[0])
	require.NoError(t, err)
	require.Len(t, cal.Events, 1)
	ev := cal.Events[0]
	require.Equal(t, time.Date(2026, 3, 30, 6, 0, 0, 0, time.UTC), ev.Start, "08:00 summer time")
	require.Equal(t, 30*time.Minute, ev.End.Sub(ev.Start))
	require.Equal(t, "Tandplejen Testby\\, Stol 1", ev.Props["LOCATION"])
	require.Contains(t, ev.Props["UID"], "booking-")
	require.Len(t, sms.all(), 1)
	require.True(t, strings.HasPrefix(sms.all()[0], "+4520000001: Bekræftelse: Emma"))

	// Nothing more until the reminder time (48 hours before).
	require.NoError(t, f.m.Tick(ctx))
	require.Len(t, sink.Messages(), 1)
	// 48 real hours before Monday 30 March 08:00 summer time (06:00 UTC) is
	// Saturday 28 March 07:00 winter time: the DST change falls in between.
	f.clock.Set(local(2026, 3, 28, 6, 59))
	require.NoError(t, f.m.Tick(ctx))
	require.Equal(t, 1, len(sink.Messages()), "not yet")
	f.clock.Set(local(2026, 3, 28, 7, 1))
	require.NoError(t, f.m.Tick(ctx))
	require.NoError(t, f.m.Tick(ctx))
	rem := mailsTo(t, sink, "mette@example.org")
	require.Len(t, rem, 2, "one reminder")
	require.True(t, strings.HasPrefix(rem[1].Subject, "Påmindelse:"), rem[1].Subject)
	_, err = bookingtest.CheckICS(rem[1].Calendars[0])
	require.NoError(t, err)

	// A cancellation is sent with the event cancelled (same UID, higher sequence).
	f.clock.Set(local(2026, 3, 2, 9, 0))
	require.NoError(t, f.m.Cancel(f.ctx(f.dentist), f.dentist, a.ID, "Klinikken lukket"))
	require.NoError(t, f.m.Tick(ctx))
	msgs := mailsTo(t, sink, "mette@example.org")
	require.Len(t, msgs, 3)
	c, err := bookingtest.CheckICS(msgs[2].Calendars[0])
	require.NoError(t, err)
	require.Equal(t, "CANCELLED", c.Events[0].Props["STATUS"])
	require.Equal(t, ev.Props["UID"], c.Events[0].Props["UID"])
	require.Equal(t, "2", c.Events[0].Props["SEQUENCE"])

	// The 15-year-old's own appointment goes to her and to the custody holder (§17).
	_, err = f.m.Book(f.ctx(f.teen), f.teen, booking.BookRequest{PersonID: f.teen15, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 31, 8, 0)})
	require.NoError(t, err)
	require.NoError(t, f.m.Tick(ctx))
	require.Len(t, mailsTo(t, sink, "asta@example.org"), 1)
	require.Len(t, mailsTo(t, sink, "mette@example.org"), 4)

	// The message offers what the rules allow: a type only the clinic
	// books is changed by the clinic; with cancelling switched off the
	// family may move the time only.
	_, err = f.m.Book(f.ctx(f.dentist), f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.staffOnly.ID, Start: local(2026, 3, 5, 13, 0)})
	require.NoError(t, err)
	require.NoError(t, f.m.Tick(ctx))
	got = mailsTo(t, sink, "mette@example.org")
	require.Len(t, got, 5)
	require.Contains(t, got[4].Text, "Kontakt klinikken, hvis tiden skal flyttes eller aflyses.")
	require.Contains(t, got[4].Text, "Contact the clinic to move or cancel it.")
	require.NotContains(t, got[4].Text, "Du kan")
	r := booking.DefaultRules
	r.CancelAllowed = false
	require.NoError(t, f.m.SetRules(ctx, f.tenant, f.clinic, r))
	_, err = f.m.Book(f.ctx(f.parent), f.parent, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 6, 8, 0)})
	require.NoError(t, err)
	require.NoError(t, f.m.Tick(ctx))
	got = mailsTo(t, sink, "mette@example.org")
	require.Len(t, got, 6)
	require.Contains(t, got[5].Text, "Du kan flytte tiden på https://molar.example/m/booking/my senest 24 timer før; skal den aflyses, kontakt klinikken.")
	require.NotContains(t, got[5].Text, "aflyse tiden på")
}

// A failing channel is retried later; the row keeps its error.
func TestNotificationRetry(t *testing.T) {
	f := newFixture(t)
	f.m.Notifier = booking.Channels{&booking.SMTP{Addr: "127.0.0.1:1", From: "x@testby.example", TLS: "off", Timeout: time.Second}}
	_, err := f.m.Book(f.ctx(f.parent), f.parent, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 8, 0)})
	require.NoError(t, err)
	require.NoError(t, f.m.Tick(context.Background()))
	var attempts int
	var lastErr string
	require.NoError(t, f.db.Admin.QueryRow(context.Background(), `SELECT attempts, last_error FROM booking.outbox`).Scan(&attempts, &lastErr))
	require.Equal(t, 1, attempts)
	require.Contains(t, lastErr, "connect")
	sink, _ := withNotifier(t, f)
	require.NoError(t, f.m.Tick(context.Background()))
	require.Equal(t, 0, len(sink.Messages()), "backing off")
	f.clock.Add(2 * time.Minute)
	require.NoError(t, f.m.Tick(context.Background()))
	require.Equal(t, 1, len(sink.Messages()))
}

type recalls []booking.Due

func (r recalls) Due(_ context.Context, _, _ int64, until time.Time) ([]booking.Due, error) {
	var out []booking.Due
	for _, d := range r {
		if !d.DueDate.After(until) {
			out = append(out, d)
		}
	}
	return out, nil
}

// Call-ins: the recall list → invitations with a proposed time; the parent
// accepts or changes; unanswered ones are followed up, then flagged.
func TestInvitationsFromRecallList(t *testing.T) {
	f := newFixture(t)
	sink, _ := withNotifier(t, f)
	ctx := context.Background()
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	// Without a recall source the list is empty (nil-safe default).
	list, err := f.m.DueRecalls(f.ctx(f.dentist), f.dentist, f.clinic, day(2026, 6, 1))
	require.NoError(t, err)
	require.Empty(t, list)
	f.m.Recalls = recalls{{PersonID: f.child, DueDate: day(2026, 3, 20), Reason: "recall"}, {PersonID: f.otherChild, DueDate: day(2026, 3, 1), Reason: "recall"},
		{PersonID: f.teen15, DueDate: day(2026, 9, 1), Reason: "recall"}}
	list, err = f.m.DueRecalls(f.ctx(f.dentist), f.dentist, f.clinic, day(2026, 4, 1))
	require.NoError(t, err)
	require.Len(t, list, 2)
	// Each child listed is in their access log; the one not due yet is not.
	require.Equal(t, 1, f.auditRows(f.child, audit.ActionSearch, "booking.recall"))
	require.Equal(t, 1, f.auditRows(f.otherChild, audit.ActionSearch, "booking.recall"))
	require.Zero(t, f.auditRows(f.teen15, audit.ActionSearch, "booking.recall"))
	_, err = f.m.DueRecalls(f.ctx(f.parent), f.parent, f.clinic, day(2026, 4, 1))
	require.ErrorIs(t, err, booking.ErrForbidden)

	inv, err := f.m.Invite(f.ctx(f.dentist), f.dentist, booking.InviteRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, DueDate: day(2026, 3, 20)})
	require.NoError(t, err)
	require.Equal(t, booking.StatusProposed, inv.Appointment.Status)
	require.True(t, inv.Appointment.Start.Equal(local(2026, 3, 20, 8, 0)), "first free time from the due date: %v", inv.Appointment.Start)
	inv2, err := f.m.Invite(f.ctx(f.dentist), f.dentist, booking.InviteRequest{PersonID: f.otherChild, UnitID: f.clinic, TypeID: f.exam.ID, DueDate: day(2026, 3, 1)})
	require.NoError(t, err)
	require.True(t, inv2.Appointment.Start.Equal(local(2026, 3, 10, 9, 0)), "not before the answer time (7 days) + notice (24 h): %v", inv2.Appointment.Start)
	list, err = f.m.DueRecalls(f.ctx(f.dentist), f.dentist, f.clinic, day(2026, 4, 1))
	require.NoError(t, err)
	require.True(t, list[0].Invited && list[1].Invited)

	require.NoError(t, f.m.Tick(ctx))
	got := mailsTo(t, sink, "mette@example.org")
	require.Len(t, got, 1)
	require.True(t, strings.HasPrefix(got[0].Subject, "Indkaldelse:"), got[0].Subject)
	require.Contains(t, got[0].Text, "Emma er indkaldt")

	// The parent sees the open invitation and accepts it.
	open, err := f.m.Invitations(f.ctx(f.parent), f.parent, f.child, true)
	require.NoError(t, err)
	require.Len(t, open, 1)
	_, err = f.m.AcceptInvitation(f.ctx(f.other), f.other, inv.ID)
	require.ErrorIs(t, err, booking.ErrForbidden, "not the other family's")
	a, err := f.m.AcceptInvitation(f.ctx(f.parent), f.parent, inv.ID)
	require.NoError(t, err)
	require.Equal(t, booking.StatusBooked, a.Status)
	_, err = f.m.AcceptInvitation(f.ctx(f.parent), f.parent, inv.ID)
	require.ErrorIs(t, err, booking.ErrStatus)
	open, err = f.m.Invitations(f.ctx(f.parent), f.parent, f.child, true)
	require.NoError(t, err)
	require.Empty(t, open)

	// The other family changes the time instead (a staff-only type would be allowed too: it is their invitation).
	b, err := f.m.ChangeInvitation(f.ctx(f.other), f.other, inv2.ID, local(2026, 3, 11, 14, 0))
	require.NoError(t, err)
	require.Equal(t, booking.StatusBooked, b.Status)
	require.True(t, b.Start.Equal(local(2026, 3, 11, 14, 0)))

	// An unanswered invitation: followed up after the answer time, then flagged.
	inv3, err := f.m.Invite(f.ctx(f.dentist), f.dentist, booking.InviteRequest{PersonID: f.teen15, UnitID: f.clinic, TypeID: f.exam.ID, DueDate: day(2026, 4, 20)})
	require.NoError(t, err)
	require.NoError(t, f.m.Tick(ctx))
	before := len(mailsTo(t, sink, "asta@example.org"))
	f.clock.Add(7*24*time.Hour + time.Minute)
	require.NoError(t, f.m.Tick(ctx))
	fu := mailsTo(t, sink, "asta@example.org")
	require.Len(t, fu, before+1)
	require.True(t, strings.HasPrefix(fu[len(fu)-1].Subject, "Husk at svare:"), fu[len(fu)-1].Subject)
	f.clock.Add(3 * 24 * time.Hour)
	require.NoError(t, f.m.Tick(ctx))
	f.clock.Add(3 * 24 * time.Hour)
	require.NoError(t, f.m.Tick(ctx))
	require.Len(t, mailsTo(t, sink, "asta@example.org"), before+2, "two follow-ups (MaxFollowups)")
	// The 15-year-old answers herself: she is asked, her parent only told.
	require.Contains(t, mailsTo(t, sink, "asta@example.org")[before-1].Text, "Bekræft tiden")
	var toParent []bookingtest.Parsed
	for _, m := range mailsTo(t, sink, "mette@example.org") {
		if strings.Contains(m.Text, "Asta") {
			toParent = append(toParent, m)
		}
	}
	require.Len(t, toParent, 3, "the invitation and two follow-ups")
	require.Contains(t, toParent[0].Text, "Asta svarer selv på indkaldelsen")
	require.Contains(t, toParent[1].Subject, "Indkaldelse ikke besvaret")
	for _, m := range toParent {
		require.NotContains(t, m.Text, "Bekræft", "nothing the parent cannot do")
		require.NotContains(t, m.Text, "Du kan flytte")
		require.Contains(t, m.Text, "Asta kan selv flytte eller aflyse tiden")
	}
	unanswered, err := f.m.UnitInvitations(f.ctx(f.dentist), f.dentist, f.clinic, booking.InvitationUnanswered)
	require.NoError(t, err)
	require.Len(t, unanswered, 1)
	require.Equal(t, inv3.ID, unanswered[0].ID)
	require.Equal(t, booking.StatusProposed, unanswered[0].Appointment.Status, "the proposed time is still held")
	require.Equal(t, 3, f.auditRows(f.teen15, audit.ActionUpdate, "booking.invitation/"), "follow-ups and the flag are audited")
}

// The calendar feed: a secret, revocable link with times and places only.
func TestCalendarFeed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.m.Book(f.ctx(f.parent), f.parent, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 8, 0)})
	require.NoError(t, err)
	_, err = f.m.Book(f.ctx(f.teen), f.teen, booking.BookRequest{PersonID: f.teen15, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 9, 0)})
	require.NoError(t, err)
	_, err = f.m.CreateFeed(f.ctx(f.dentist), f.dentist)
	require.ErrorIs(t, err, booking.ErrForbidden, "feeds are for citizens")
	token, err := f.m.CreateFeed(f.ctx(f.parent), f.parent)
	require.NoError(t, err)
	require.Contains(t, f.m.FeedURL(token), "https://molar.example/m/booking/feed/")
	body, err := f.m.FeedCalendar(ctx, token+".ics")
	require.NoError(t, err)
	cal, err := bookingtest.CheckICS(body)
	require.NoError(t, err)
	require.Len(t, cal.Events, 1, "the child under 15, not the 15-year-old")
	for _, bad := range []string{"Emma", "Asta", "Testesen", "Undersøgelse", "Tandpleje –"} {
		require.NotContains(t, string(body), bad, "times and places only")
	}
	require.Contains(t, string(body), "LOCATION:Tandplejen Testby\\, Stol 1")
	// The child's access log shows the feed that showed their appointment;
	// the 15-year-old's (not in the feed) does not.
	require.Equal(t, 1, f.auditRows(f.child, audit.ActionRead, "booking.feed"))
	require.Equal(t, 1, f.auditRows(f.parent.PersonID, audit.ActionRead, "booking.feed"))
	require.Zero(t, f.auditRows(f.teen15, audit.ActionRead, "booking.feed"))

	// A new link revokes the old one; revoking ends it.
	token2, err := f.m.CreateFeed(f.ctx(f.parent), f.parent)
	require.NoError(t, err)
	_, err = f.m.FeedCalendar(ctx, token)
	require.ErrorIs(t, err, booking.ErrNotFound)
	_, err = f.m.FeedCalendar(ctx, token2)
	require.NoError(t, err)
	require.NoError(t, f.m.RevokeFeed(f.ctx(f.parent), f.parent))
	_, err = f.m.FeedCalendar(ctx, token2)
	require.ErrorIs(t, err, booking.ErrNotFound)
	_, err = f.m.FeedCalendar(ctx, "not-a-token-but-long-enough")
	require.ErrorIs(t, err, booking.ErrNotFound)
}

// Imaging appointments are worklist items with the patient, accession
// number and station AE; moving updates, cancelling removes.
func TestWorklistSource(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var cpr auth.CPR
	// Give the child a CPR number (the worklist's Patient ID).
	var err error
	cpr, err = auth.ParseCPR("0102181234")
	require.NoError(t, err)
	_, err = f.db.Admin.Exec(ctx, `UPDATE auth.person SET cpr = $2, sex = 'female' WHERE id = $1`, f.child, cpr.Digits())
	require.NoError(t, err)
	src := f.m.WorklistSource()
	items, err := src.Items(ctx, worklist.Query{})
	require.NoError(t, err)
	require.Empty(t, items)

	a, err := f.m.Book(f.ctx(f.dentist), f.dentist, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.xray.ID, Start: local(2026, 3, 4, 10, 0)})
	require.NoError(t, err)
	_, err = f.m.Book(f.ctx(f.dentist), f.dentist, booking.BookRequest{PersonID: f.otherChild, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 10, 0)})
	require.NoError(t, err, "not an imaging type: no worklist item")
	items, err = src.Items(ctx, worklist.Query{StationAETitle: "PANO1"})
	require.NoError(t, err)
	require.Len(t, items, 1)
	it := items[0]
	require.Equal(t, "0102181234", it.PatientID)
	require.Equal(t, "Emma", it.PatientGiven)
	require.Equal(t, "Testesen", it.PatientFamily)
	require.Equal(t, "F", it.PatientSex)
	require.Equal(t, a.AccessionNumber, it.AccessionNumber)
	require.LessOrEqual(t, len(it.AccessionNumber), 16)
	require.Equal(t, "PANO1", it.ScheduledStationAETitle)
	require.Equal(t, "PX", it.Modality)
	require.Equal(t, "Panoramic X-ray", it.RequestedProcedureDescription)
	require.True(t, strings.HasPrefix(it.StudyInstanceUID, "2.25."))
	require.Equal(t, "Røntgen", it.Location)
	require.True(t, it.ScheduledStart.Equal(local(2026, 3, 4, 10, 0)))
	require.Equal(t, booking.Loc, it.ScheduledStart.Location())

	for _, q := range []worklist.Query{{StationAETitle: "OTHER"}, {Modality: "IO"}, {From: local(2026, 3, 5, 0, 0)}, {To: local(2026, 3, 4, 9, 0)},
		{PatientID: "0101010000"}, {AccessionNumber: "BK99999999"}} {
		items, err = src.Items(ctx, q)
		require.NoError(t, err)
		require.Empty(t, items, "%+v", q)
	}
	for _, q := range []worklist.Query{{PatientID: "0102181234"}, {AccessionNumber: a.AccessionNumber}, {Modality: "PX", From: local(2026, 3, 4, 0, 0), To: local(2026, 3, 5, 0, 0)}} {
		items, err = src.Items(ctx, q)
		require.NoError(t, err)
		require.Len(t, items, 1, "%+v", q)
	}

	_, err = f.m.Move(f.ctx(f.dentist), f.dentist, a.ID, booking.MoveRequest{Start: local(2026, 3, 5, 13, 0), Reason: "Apparatet er til service"})
	require.NoError(t, err)
	items, err = src.Items(ctx, worklist.Query{})
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.True(t, items[0].ScheduledStart.Equal(local(2026, 3, 5, 13, 0)))
	require.Equal(t, it.AccessionNumber, items[0].AccessionNumber, "moving keeps the accession number")
	require.Equal(t, it.StudyInstanceUID, items[0].StudyInstanceUID)

	require.NoError(t, f.m.Cancel(f.ctx(f.dentist), f.dentist, a.ID, "Aflyst af forældre"))
	items, err = src.Items(ctx, worklist.Query{})
	require.NoError(t, err)
	require.Empty(t, items)
}
