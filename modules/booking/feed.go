package booking

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

// Feed is a citizen's calendar feed link.
type Feed struct {
	ID      int64
	Created time.Time
}

func feedHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateFeed gives the citizen a new secret calendar link (revoking any
// earlier one) and returns its token; only its hash is kept, so the link is
// shown once.
func (m *Module) CreateFeed(ctx context.Context, p *auth.Principal) (string, error) {
	if !p.IsCitizen() || p.PersonID == 0 {
		return "", fmt.Errorf("booking: feed: %w", ErrForbidden)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("booking: feed: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	err := postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		now := m.now()
		if _, err := tx.Exec(ctx, `UPDATE booking.feed SET revoked = $2 WHERE person_id = $1 AND revoked IS NULL`, p.PersonID, now); err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO booking.feed (tenant_id, person_id, token_hash, created) VALUES ($1, $2, $3, $4) RETURNING id`,
			p.TenantID, p.PersonID, feedHash(token), now).Scan(&id); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionCreate, PersonID: p.PersonID, Object: fmt.Sprintf("booking.feed/%d", id)})
	})
	if err != nil {
		return "", fmt.Errorf("booking: feed: %w", err)
	}
	return token, nil
}

// RevokeFeed ends the citizen's calendar link; it answers 404 from then on.
func (m *Module) RevokeFeed(ctx context.Context, p *auth.Principal) error {
	if !p.IsCitizen() || p.PersonID == 0 {
		return fmt.Errorf("booking: feed: %w", ErrForbidden)
	}
	return postgres.InTenant(ctx, m.Pool, p.TenantID, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `UPDATE booking.feed SET revoked = $2 WHERE person_id = $1 AND revoked IS NULL RETURNING id`, p.PersonID, m.now()).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("booking: revoke feed: %w", err)
		}
		return audit.Record(ctx, tx, audit.Event{Action: audit.ActionUpdate, PersonID: p.PersonID, Object: fmt.Sprintf("booking.feed/%d", id),
			Detail: map[string]any{"change": "revoke"}})
	})
}

// HasFeed reports whether the citizen has an active calendar link.
func (m *Module) HasFeed(ctx context.Context, p *auth.Principal) (bool, error) {
	var ok bool
	err := postgres.InTenant(ctx, m.Pool, tenantOf(p), func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM booking.feed WHERE person_id = $1 AND revoked IS NULL)`, p.PersonID).Scan(&ok)
	})
	return ok, err
}

// FeedURL is the address of a feed token.
func (m *Module) FeedURL(token string) string {
	return strings.TrimSuffix(m.BaseURL, "/") + "/m/booking/feed/" + url.PathEscape(token) + ".ics"
}

// FeedCalendar returns the iCalendar of a feed token: the appointments of
// the citizen and of the children in their custody under 15, from 30 days
// back, with times and places only (no names, no types, no health data).
// An unknown or revoked token is ErrNotFound.
func (m *Module) FeedCalendar(ctx context.Context, token string) ([]byte, error) {
	token = strings.TrimSuffix(token, ".ics")
	if len(token) < 20 || len(token) > 100 {
		return nil, fmt.Errorf("booking: feed: %w", ErrNotFound)
	}
	var tenantID, personID *int64
	if err := m.Pool.QueryRow(ctx, `SELECT tenant_id, person_id FROM booking.feed_owner($1)`, feedHash(token)).Scan(&tenantID, &personID); err != nil {
		return nil, fmt.Errorf("booking: feed: %w", err)
	}
	if tenantID == nil || personID == nil {
		return nil, fmt.Errorf("booking: feed: %w", ErrNotFound)
	}
	now := m.now()
	ctx = audit.WithActor(ctx, audit.Actor{Username: "system:calendar-feed", Role: "system", TenantID: *tenantID})
	var events []Event
	err := postgres.InTenant(ctx, m.Pool, *tenantID, func(tx pgx.Tx) error {
		persons := []int64{*personID}
		children, err := auth.ChildrenInCustody(ctx, tx, *personID)
		if err != nil {
			return err
		}
		for _, c := range children {
			if !c.BirthDate.IsZero() && auth.AgeAt(c.BirthDate, auth.DateIn(now, Loc)) < auth.CustodyAgeLimit {
				persons = append(persons, c.ID)
			}
		}
		as, err := queryAppts(ctx, tx, `WHERE a.person_id = ANY($1) AND upper(a.during) > $2 ORDER BY lower(a.during), a.id`,
			persons, now.AddDate(0, 0, -30))
		if err != nil {
			return err
		}
		res, err := m.decorate(ctx, tx, *tenantID, as)
		if err != nil {
			return err
		}
		host := ""
		if u, err := url.Parse(m.BaseURL); err == nil {
			host = u.Hostname()
		}
		for _, a := range as {
			events = append(events, Event{UID: eventUID(a.ID, host), Sequence: a.Version, Start: a.Start, End: a.End,
				Summary: "Aftale – " + a.UnitName, Location: a.Place(res), Cancelled: !a.Active(),
				Tentative: a.Status == StatusProposed})
		}
		// The feed shows the parent's appointments and those of the
		// children in their custody: the access log of each person whose
		// appointments it shows says so (the parent's always).
		count := map[int64]int{}
		for _, a := range as {
			count[a.PersonID]++
		}
		for i, id := range persons {
			if i > 0 && count[id] == 0 {
				continue // a child without appointments: nothing of theirs was shown
			}
			if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionRead, PersonID: id, Object: "booking.feed",
				Detail: map[string]any{"count": count[id]}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("booking: feed: %w", err)
	}
	return ICS("Aftaler", now, events...), nil
}
