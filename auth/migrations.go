package auth

import (
	"embed"
	"io/fs"

	"github.com/molar-health/molar/storage/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Namespace is the migration namespace and PostgreSQL schema of this package.
const Namespace = "auth"

// Migrations returns the package's migrations for postgres.Migrate.
func Migrations() postgres.Source {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	return postgres.Source{Namespace: Namespace, FS: sub}
}
