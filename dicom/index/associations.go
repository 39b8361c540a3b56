package index

import (
	"context"
	"fmt"
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
}

// LogAssociation appends to the association log.
func LogAssociation(ctx context.Context, q Querier, a Association) error {
	var closed *time.Time
	if !a.Closed.IsZero() {
		closed = &a.Closed
	}
	_, err := q.Exec(ctx, `INSERT INTO dicom.association_log (association, calling_ae, called_ae, peer, known_ae, opened, closed,
		outcome, requests, stored, failed, bytes_in, bytes_out, implementation)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		a.Association, a.CallingAE, a.CalledAE, a.Peer, a.KnownAE, a.Opened, closed, a.Outcome, a.Requests, a.Stored,
		a.Failed, a.BytesIn, a.BytesOut, a.Implementation)
	if err != nil {
		return fmt.Errorf("dicom: association log: %w", err)
	}
	return nil
}

// Associations lists the newest entries of the association log.
func Associations(ctx context.Context, q Querier, limit int) ([]Association, error) {
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	rows, err := q.Query(ctx, `SELECT id, association, calling_ae, called_ae, peer, known_ae, opened, closed, outcome,
		requests, stored, failed, bytes_in, bytes_out, implementation FROM dicom.association_log ORDER BY opened DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("dicom: association log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Association, error) {
		var a Association
		var closed *time.Time
		err := r.Scan(&a.ID, &a.Association, &a.CallingAE, &a.CalledAE, &a.Peer, &a.KnownAE, &a.Opened, &closed, &a.Outcome,
			&a.Requests, &a.Stored, &a.Failed, &a.BytesIn, &a.BytesOut, &a.Implementation)
		if closed != nil {
			a.Closed = *closed
		}
		return a, err
	})
}
