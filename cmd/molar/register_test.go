package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/storage/postgres"
)

// TestRegisterAndUnitCommands: a municipality without the demo sets up a
// clinic, loads citizens with custody and care from a spreadsheet extract
// (semicolons, BOM), and gives a dentist access by making them work in the
// clinic; re-importing changes nothing, a bad file changes nothing and
// names the line, not the CPR number.
func TestRegisterAndUnitCommands(t *testing.T) {
	env, db := adminEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("en-lang-adgangskode\n"), 0o600))
	code, _, errs := runCmd(t, env, "user", "add", "--username", "kim", "--role", "dentist", "--password-file", pw, "--tenant", "0751", "--tenant-name", "Aarhus Kommune")
	require.Equal(t, 0, code, errs)

	code, out, errs := runCmd(t, env, "unit", "add", "--name", "Tandplejen Nord", "--kind", "dental_clinic")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "created unit Tandplejen Nord")
	code, _, errs = runCmd(t, env, "unit", "add", "--name", "tandplejen nord", "--kind", "dental_clinic")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "already exists")

	const parent, child, other = "1203801234", "0505154321", "0707124322"
	csvFile := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("\ufeff"+body), 0o600))
		return p
	}
	good := csvFile("register.csv", "cpr;given_name;family_name;address;phone;custody_holders;care_unit\n"+
		parent+";Mette;Sørensen;Åboulevarden 1, 8000 Aarhus C;+4520202020;;\n"+
		child+";Emil;Sørensen;Åboulevarden 1, 8000 Aarhus C;;"+parent+";Tandplejen Nord\n"+
		"070712-4322;Ida;Østergaard;;;;tandplejen nord\n")

	code, out, errs = runCmd(t, env, "register", "import", "--file", good, "--dry-run")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "would import (dry run, nothing changed) 3 rows into Aarhus Kommune: 3 persons created, 0 updated, 1 custody relations and 2 care relations added")
	var n int
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM auth.person`).Scan(&n))
	require.Zero(t, n, "a dry run changes nothing")

	code, out, errs = runCmd(t, env, "register", "import", "--file", good)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "imported 3 rows into Aarhus Kommune: 3 persons created, 0 updated, 1 custody relations and 2 care relations added")
	code, out, errs = runCmd(t, env, "register", "import", "--file", good)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "0 persons created, 0 updated, 0 custody relations and 0 care relations added", "importing again changes nothing")
	changed := csvFile("changed.csv", "cpr,phone\n"+child+",+4530303030\n")
	code, out, errs = runCmd(t, env, "register", "import", "--file", changed)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "0 persons created, 1 updated")

	for _, bad := range []struct{ body, want string }{
		{"cpr;given_name\n" + parent + ";A\n31129-1234;B\n", "line 3: not a valid CPR number"},
		{"cpr;shoe_size\n" + parent + ";42\n", `unknown column "shoe_size"`},
		{"cpr;care_unit\n" + parent + ";Tandplejen Syd\n", "line 2: care_unit names no unit of this municipality"},
		{"cpr;care_unit\n" + parent + ";" + other + "\n", "line 2: care_unit names no unit of this municipality"},
		{"cpr,address,phone\n\n" + parent + ",Åboulevarden 1, 8000 Aarhus C,+4520202020\n", "line 3: more fields than the header"},
		{"cpr;given_name\n" + parent + ";\xe6ble\n", "line 2: not UTF-8 text"},
		{"cpr;address;given_name\n" + parent + ";\"Åboulevarden 1\n8000 Aarhus C\";A\n31129-1234;;B\n", "line 4: not a valid CPR number"},
		{"cpr;custody_holders\n" + other + ";0101011234\n", "line 2: custody holder not in the register or the file"},
		{"cpr\n" + parent + "\n" + parent + "\n", "line 3: the same CPR number as line 2"},
	} {
		code, _, errs = runCmd(t, env, "register", "import", "--file", csvFile("bad.csv", bad.body))
		require.Equal(t, 1, code, bad.want)
		require.Contains(t, errs, bad.want)
		require.NotContains(t, errs, parent)
		require.NotContains(t, errs, other)
	}
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM auth.person`).Scan(&n))
	require.Equal(t, 3, n, "a refused file changes nothing")
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'create' AND object LIKE 'auth.register/%'`).Scan(&n))
	require.Equal(t, 3, n, "every import is in the audit log")
	var childID int64
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT id FROM auth.person WHERE cpr = $1`, child).Scan(&childID))
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE person_id = $1 AND detail->>'source' = 'register import'`, childID).Scan(&n))
	require.Equal(t, 4, n, "the child's access log shows its creation, custody, care relation and update")

	// The dentist reaches the children once they work in the clinic.
	kim, err := auth.UserByUsername(ctx, db.Admin, "kim")
	require.NoError(t, err)
	p := &auth.Principal{UserID: kim.ID, TenantID: kim.TenantID, Username: kim.Username, Role: kim.Role}
	access := func() bool {
		var d auth.Decision
		require.NoError(t, postgres.InTenant(ctx, db.App, kim.TenantID, func(tx pgx.Tx) error {
			c, _ := auth.ParseCPR(child)
			person, err := auth.FindPersonByCPR(ctx, tx, c)
			if err != nil {
				return err
			}
			d, err = auth.Access(ctx, tx, p, person.ID)
			return err
		}))
		return d.Allowed && d.Basis == auth.BasisCare
	}
	require.False(t, access())
	code, out, errs = runCmd(t, env, "unit", "member", "--username", "kim", "--unit", "TANDPLEJEN NORD")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "kim works in Tandplejen Nord")
	require.True(t, access())
	code, out, errs = runCmd(t, env, "unit", "list")
	require.Equal(t, 0, code, errs)
	require.Regexp(t, `dental_clinic\s+Tandplejen Nord\s+1\s+2\n`, out) // no SOR id; staff 1, cared for 2
	code, _, errs = runCmd(t, env, "unit", "member", "--username", "kim", "--unit", "Tandplejen Nord", "--remove")
	require.Equal(t, 0, code, errs)
	require.False(t, access())
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE object = $1 AND action IN ('create', 'delete')`,
		"auth.user_unit/"+strconv.FormatInt(kim.ID, 10)).Scan(&n))
	require.Equal(t, 2, n, "membership given and taken, both audited")
}
