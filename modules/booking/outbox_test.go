package booking_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/storage/postgres"
)

// flakyNotifier delivers to every address but one, which always fails.
type flakyNotifier struct {
	mu   sync.Mutex
	bad  string
	sent map[string]int // address → messages delivered
}

func (n *flakyNotifier) Notify(_ context.Context, m booking.Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.Email == "" {
		return booking.ErrNoAddress
	}
	if m.Email == n.bad {
		return errors.New("mailbox unavailable")
	}
	n.sent[m.Email]++
	return nil
}

func (n *flakyNotifier) count(addr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent[addr]
}

// A notification goes to every custody holder; when one of them cannot be
// reached, the retries go to that one only: the others got it and do not
// get it again with every attempt.
func TestNotificationRetryOnlyToRecipientsNotReached(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, postgres.InTenant(ctx, f.db.App, f.tenant, func(tx pgx.Tx) error {
		far, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: f.tenant, GivenName: "Anders", FamilyName: "Testesen",
			BirthDate: time.Date(1985, 5, 5, 0, 0, 0, 0, time.UTC), Email: "anders@example.org"})
		if err != nil {
			return err
		}
		return auth.AddCustody(ctx, tx, f.tenant, far.ID, f.child)
	}))
	n := &flakyNotifier{bad: "anders@example.org", sent: map[string]int{}}
	f.m.Notifier = n
	_, err := f.m.Book(f.ctx(f.parent), f.parent, booking.BookRequest{PersonID: f.child, UnitID: f.clinic, TypeID: f.exam.ID, Start: local(2026, 3, 4, 8, 0)})
	require.NoError(t, err)
	require.NoError(t, f.m.Tick(ctx))
	require.Equal(t, 1, n.count("mette@example.org"))
	for i := 0; i < 4; i++ {
		f.clock.Add(time.Hour)
		require.NoError(t, f.m.Tick(ctx))
	}
	require.Equal(t, 1, n.count("mette@example.org"), "the reached custody holder gets the confirmation once")
	var attempts int
	require.NoError(t, f.db.Admin.QueryRow(ctx, `SELECT attempts FROM booking.outbox`).Scan(&attempts))
	require.Equal(t, 5, attempts, "the other custody holder is still tried")

	// Once the address works, the message reaches that holder, and the row is done.
	n.mu.Lock()
	n.bad = ""
	n.mu.Unlock()
	f.clock.Add(time.Hour)
	require.NoError(t, f.m.Tick(ctx))
	require.Equal(t, 1, n.count("anders@example.org"))
	require.Equal(t, 1, n.count("mette@example.org"))
	var unsent int
	require.NoError(t, f.db.Admin.QueryRow(ctx, `SELECT count(*) FROM booking.outbox WHERE sent IS NULL`).Scan(&unsent))
	require.Zero(t, unsent)
}
