package portal_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/journal/portal"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// Ages are counted on the Danish date: at 23:30 UTC on 9 March 2025 it is
// already 10 March in Copenhagen, so a child born 10 March 2010 is 15 and
// their record is their own (Health Act §17), although the server's UTC
// date is still the 9th.
func TestChildrenAgesOnTheDanishDate(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t, audit.Migrations(), auth.Migrations(), portal.Migrations())
	now := time.Date(2025, 3, 9, 23, 30, 0, 0, time.UTC)
	p := &portal.Portal{Pool: db.App, Now: func() time.Time { return now }}

	tn, err := auth.CreateTenant(ctx, db.App, "0101", "Testby Kommune")
	require.NoError(t, err)
	ids := map[string]int64{}
	require.NoError(t, postgres.InTenant(ctx, db.App, tn.ID, func(tx pgx.Tx) error {
		for _, per := range []struct {
			given string
			birth time.Time
		}{
			{"Forælder", day(1980, 1, 1)},
			{"Femten", day(2010, 3, 10)},   // 15 today in Denmark
			{"Fjorten", day(2010, 3, 11)},  // 15 tomorrow
			{"Ung", day(2010, 3, 10)},      // signs in themself
			{"Toogtyve", day(2003, 3, 10)}, // 22 today in Denmark
		} {
			got, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: tn.ID, GivenName: per.given, FamilyName: "Testesen", BirthDate: per.birth})
			require.NoError(t, err)
			ids[per.given] = got.ID
		}
		for _, k := range []string{"Femten", "Fjorten"} {
			require.NoError(t, auth.AddCustody(ctx, tx, tn.ID, ids["Forælder"], ids[k]))
		}
		return nil
	}))
	citizen := func(userID int64, person string) *auth.Principal {
		return &auth.Principal{UserID: userID, TenantID: tn.ID, Role: auth.RoleCitizen, PersonID: ids[person]}
	}
	type seen struct {
		Name string
		Age  int
		Self bool
	}
	list := func(kids []portal.Child) []seen {
		out := []seen{}
		for _, k := range kids {
			out = append(out, seen{k.GivenName, k.Age, k.Self})
		}
		return out
	}

	parent := citizen(1, "Forælder")
	kids, err := p.Children(ctx, parent)
	require.NoError(t, err)
	require.Equal(t, []seen{{"Fjorten", 14, false}}, list(kids), "the 15-year-old is no longer the parent's to open")
	older, err := p.OlderChildren(ctx, parent)
	require.NoError(t, err)
	require.Equal(t, []seen{{"Femten", 15, false}}, list(older), "the parent is told instead")

	cases := []struct {
		person string
		want   []seen
	}{
		{"Ung", []seen{{"Ung", 15, true}}}, // from 15: their own record
		{"Toogtyve", []seen{}},             // 22: out of children's dental care
	}
	for i, c := range cases {
		got, err := p.Children(ctx, citizen(int64(10+i), c.person))
		require.NoError(t, err)
		require.Equal(t, c.want, list(got), c.person)
	}
}
