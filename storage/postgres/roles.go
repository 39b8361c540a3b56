package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PrepareRoles does what Migrate does first, on the database at url: it
// creates OwnerRole and AppRole when missing (with CREATEROLE or as a
// superuser) and makes the connecting role a member of OwnerRole. A restore
// needs it before the dump: its objects belong to OwnerRole and grant to
// AppRole, and a new server has neither.
func PrepareRoles(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = prepareRoles(ctx, conn)
	return err
}
