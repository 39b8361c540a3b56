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

// TestRegisterCustodyEnds: custody ends either by `molar register
// end-custody` (a decision applied now) or by an import with
// --sync-custody (the extract is authoritative for the children it lists).
// The former holder loses portal access (Access no longer answers
// BasisCustody), a co-parent with shared custody keeps it, a child the
// extract does not list keeps its holders, every removal is an audit event
// on the child, and nothing the commands print names anyone.
func TestRegisterCustodyEnds(t *testing.T) {
	env, db, ten := tenantEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	const (
		parent, coParent    = "1203801234", "0204821678"
		childA, childB      = "0505194321", "0606204322"
		childC, childD      = "0707214323", "0808224324"
		bothParents, notCPR = parent + "|" + coParent, "31129-1234"
	)
	csvFile := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	noNames := func(s string) {
		t.Helper()
		for _, c := range []string{parent, coParent, childA, childB, childC, childD, "Sørensen"} {
			require.NotContains(t, s, c)
		}
	}
	code, out, errs := runCmd(t, env, "register", "import", "--file", csvFile("all.csv", "cpr,family_name,custody_holders\n"+
		parent+",Sørensen,\n"+coParent+",Sørensen,\n"+
		childA+",Sørensen,"+bothParents+"\n"+childB+",Sørensen,"+bothParents+"\n"+
		childC+",Sørensen,"+coParent+"\n"+childD+",Sørensen,"+parent+"\n"))
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "6 custody relations")

	personID := func(cpr string) int64 {
		var id int64
		require.NoError(t, db.Admin.QueryRow(ctx, `SELECT id FROM auth.person WHERE cpr = $1`, cpr).Scan(&id))
		return id
	}
	citizen := func(cpr string) *auth.Principal {
		return &auth.Principal{UserID: personID(cpr), TenantID: ten.ID, Username: "borger", Role: auth.RoleCitizen, PersonID: personID(cpr)}
	}
	inCustody := func(holder, child string) bool {
		t.Helper()
		var d auth.Decision
		require.NoError(t, postgres.InTenant(ctx, db.App, ten.ID, func(tx pgx.Tx) error {
			var err error
			d, err = auth.Access(ctx, tx, citizen(holder), personID(child))
			return err
		}))
		return d.Allowed && d.Basis == auth.BasisCustody
	}
	removals := func(child, holder, source string) int {
		t.Helper()
		var n int
		require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM audit.event WHERE action = 'delete' AND person_id = $1
			AND object = $2 AND detail->>'holder_person_id' = $3 AND detail->>'source' = $4`,
			personID(child), "auth.custody/"+strconv.FormatInt(personID(child), 10), strconv.FormatInt(personID(holder), 10), source).Scan(&n))
		return n
	}
	for _, c := range []string{childA, childB, childD} {
		require.True(t, inCustody(parent, c))
	}

	// A court order ends one parent's custody of A; the co-parent keeps it.
	code, out, errs = runCmd(t, env, "register", "end-custody", "--child", childA, "--holder", parent)
	require.Equal(t, 0, code, errs)
	require.Equal(t, "ended 1 custody relation in Testkommune; the child has 1 custody holders left\n", out)
	require.False(t, inCustody(parent, childA), "custody ended: no portal access")
	require.True(t, inCustody(coParent, childA), "shared custody: the co-parent keeps access")
	require.True(t, inCustody(parent, childB), "only the named child")
	require.Equal(t, 1, removals(childA, parent, "molar register end-custody"))
	var actor string
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT username FROM audit.event WHERE action = 'delete' AND person_id = $1`, personID(childA)).Scan(&actor))
	require.Equal(t, "system:cli", actor)

	for _, bad := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--child", childA, "--holder", parent}, 1, "the holder has no custody of the child (nothing was changed)"},
		{[]string{"--child", notCPR, "--holder", parent}, 2, "--child: not a valid CPR number"},
		{[]string{"--child", childA}, 2, "--child and --holder are required"},
		{[]string{"--child", "0101011234", "--holder", parent}, 1, "the child is not in the register of Testkommune"},
		{[]string{"--child", childA, "--holder", childA}, 2, "the same person"},
	} {
		code, out, errs = runCmd(t, env, append([]string{"register", "end-custody"}, bad.args...)...)
		require.Equal(t, bad.code, code, bad.want)
		require.Contains(t, errs, bad.want)
		noNames(out + errs)
	}

	// A sync needs the custody_holders column: without it the extract says
	// nothing about custody.
	code, _, errs = runCmd(t, env, "register", "import", "--sync-custody", "--file", csvFile("phone.csv", "cpr,phone\n"+childB+",+4530303030\n"))
	require.Equal(t, 2, code)
	require.Contains(t, errs, "--sync-custody needs a custody_holders column")
	// Nor does a row cut short before its custody_holders field (exports
	// that drop trailing empty cells): refused, naming the line; nothing ends.
	code, _, errs = runCmd(t, env, "register", "import", "--sync-custody", "--file",
		csvFile("short.csv", "cpr;phone;custody_holders\n"+childB+";+4530303030;"+coParent+"\n"+childD+";+4530303031\n"))
	require.Equal(t, 2, code)
	require.Contains(t, errs, "short.csv: line 3: --sync-custody needs")
	require.True(t, inCustody(parent, childD))
	require.True(t, inCustody(parent, childB))

	// The extract lists B (now only with the co-parent) and C (nobody); A
	// and D are not listed and keep their holders.
	sync := csvFile("sync.csv", "cpr;custody_holders\n"+childB+";"+coParent+"\n"+childC+";\n")
	code, out, errs = runCmd(t, env, "register", "import", "--sync-custody", "--dry-run", "--file", sync)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "0 custody relations and 0 care relations added, 2 custody relations removed")
	require.True(t, inCustody(parent, childB), "a dry run changes nothing")
	code, out, errs = runCmd(t, env, "register", "import", "--sync-custody", "--file", sync)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "imported 2 rows into Testkommune: 0 persons created, 0 updated, 0 custody relations and 0 care relations added, 2 custody relations removed")
	noNames(out + errs)
	require.False(t, inCustody(parent, childB), "not in the extract's list: custody ended")
	require.True(t, inCustody(coParent, childB), "listed: custody kept")
	require.False(t, inCustody(coParent, childC), "an empty cell: nobody holds custody")
	require.True(t, inCustody(parent, childD), "a child the extract does not list keeps its holders")
	require.True(t, inCustody(coParent, childA))
	require.Equal(t, 1, removals(childB, parent, "register import"))
	require.Equal(t, 1, removals(childC, coParent, "register import"))
	require.Zero(t, removals(childB, coParent, "register import"))
	var n int
	require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM auth.custody`).Scan(&n))
	require.Equal(t, 3, n, "A: co-parent, B: co-parent, D: parent")

	code, out, errs = runCmd(t, env, "register", "import", "--sync-custody", "--file", sync)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, ", 0 custody relations removed", "syncing again changes nothing")
	// Without --sync-custody an import removes nothing, as before.
	code, out, errs = runCmd(t, env, "register", "import", "--file", csvFile("d.csv", "cpr;custody_holders\n"+childD+";\n"))
	require.Equal(t, 0, code, errs)
	require.NotContains(t, out, "removed")
	require.True(t, inCustody(parent, childD))
}
