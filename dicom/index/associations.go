package index

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Association is one line of the association log.
type Association struct {
	ID             int64
	Association    string
	CallingAE      string
	CalledAE       string
	Peer           string
	KnownAE        bool
	Opened, Closed time.Time
	Outcome        string
	Requests       int
	Stored, Failed int
	BytesIn        int64
	BytesOut       int64
	Implementation string
	// TenantID is the municipality the association worked for; 0 when
	// none (a rejected association).
	TenantID int64
	// UserID is the account that signed the association (User Identity
	// Negotiation); 0 when none. Username is read back with it.
	UserID   int64
	Username string
}

// LogAssociation appends to the association log.
func LogAssociation(ctx context.Context, q Querier, a Association) error {
	var closed *time.Time
	if !a.Closed.IsZero() {
		closed = &a.Closed
	}
	_, err := q.Exec(ctx, `INSERT INTO dicom.association_log (association, calling_ae, called_ae, peer, known_ae, opened, closed,
		outcome, requests, stored, failed, bytes_in, bytes_out, implementation, tenant_id, user_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULLIF($15, 0), NULLIF($16, 0))`,
		a.Association, a.CallingAE, a.CalledAE, a.Peer, a.KnownAE, a.Opened, closed, a.Outcome, a.Requests, a.Stored,
		a.Failed, a.BytesIn, a.BytesOut, a.Implementation, a.TenantID, a.UserID)
	if err != nil {
		return fmt.Errorf("dicom: association log: %w", err)
	}
	return nil
}

// AssociationsOf lists the newest entries of one municipality's
// association log (with, on a single-municipality installation, the
// rejected ones).
func AssociationsOf(ctx context.Context, q Querier, tenant int64, limit int) ([]Association, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	rows, err := q.Query(ctx, `SELECT l.id, association, calling_ae, called_ae, peer, known_ae, opened, closed, outcome,
		requests, stored, failed, bytes_in, bytes_out, implementation, coalesce(l.tenant_id, 0), coalesce(l.user_id, 0), coalesce(u.username, '')
		FROM dicom.association_log l LEFT JOIN auth.users u ON u.id = l.user_id
		WHERE `+strings.ReplaceAll(inTenant, "tenant_id", "l.tenant_id")+` ORDER BY opened DESC, l.id DESC LIMIT $2`, tenant, limit)
	if err != nil {
		return nil, fmt.Errorf("dicom: association log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Association, error) {
		var a Association
		var closed *time.Time
		err := r.Scan(&a.ID, &a.Association, &a.CallingAE, &a.CalledAE, &a.Peer, &a.KnownAE, &a.Opened, &closed, &a.Outcome,
			&a.Requests, &a.Stored, &a.Failed, &a.BytesIn, &a.BytesOut, &a.Implementation, &a.TenantID, &a.UserID, &a.Username)
		if closed != nil {
			a.Closed = *closed
		}
		return a, err
	})
}
