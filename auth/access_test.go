package auth

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

func TestAccessDecisions(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	today := DateIn(e.clock.Now(), Copenhagen)
	years := func(n int) time.Time { return today.AddDate(-n, 0, 0) }

	var clinic, otherClinic, homeCare OrgUnit
	var child, turns15Today, turns15Tomorrow, teen, parent, stranger, formerPatient, homeCitizen Person
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		clinic, err = CreateOrgUnit(ctx, tx, OrgUnit{TenantID: e.tenant.ID, Kind: "dental_clinic", Name: "Tandplejen Nord", SORID: "123456789012345"})
		require.NoError(t, err)
		otherClinic, err = CreateOrgUnit(ctx, tx, OrgUnit{TenantID: e.tenant.ID, Kind: "dental_clinic", Name: "Tandplejen Syd"})
		require.NoError(t, err)
		homeCare, err = CreateOrgUnit(ctx, tx, OrgUnit{TenantID: e.tenant.ID, Kind: "home_care_group", Name: "Hjemmeplejen Øst"})
		require.NoError(t, err)
		return nil
	})
	child = e.person("Barn", years(10))
	turns15Today = e.person("Femten", years(15))
	turns15Tomorrow = e.person("Næsten", years(15).AddDate(0, 0, 1))
	teen = e.person("Teenager", years(16))
	parent = e.person("Forælder", years(40))
	stranger = e.person("Fremmed", years(8))
	formerPatient = e.person("Tidligere", years(9))
	homeCitizen = e.person("Ældre", years(85))
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		for _, p := range []Person{child, turns15Today, turns15Tomorrow, teen} {
			_, err := AddCareRelation(ctx, tx, CareRelation{TenantID: e.tenant.ID, OrgUnitID: clinic.ID, PersonID: p.ID, Kind: "dental"})
			require.NoError(t, err)
			require.NoError(t, AddCustody(ctx, tx, e.tenant.ID, parent.ID, p.ID))
		}
		_, err := AddCareRelation(ctx, tx, CareRelation{TenantID: e.tenant.ID, OrgUnitID: clinic.ID, PersonID: formerPatient.ID,
			ValidFrom: today.AddDate(-2, 0, 0), ValidTo: today.AddDate(0, 0, -1)})
		require.NoError(t, err)
		_, err = AddCareRelation(ctx, tx, CareRelation{TenantID: e.tenant.ID, OrgUnitID: homeCare.ID, PersonID: homeCitizen.ID, Kind: "home_care",
			ValidFrom: today.AddDate(0, 0, 1)})
		require.NoError(t, err)
		return nil
	})

	dentist := e.user("tandlaege", RoleDentist, goodPassword, 0)
	otherDentist := e.user("tandlaege-syd", RoleDentist, goodPassword, 0)
	carer := e.user("hjemmehjaelper", RoleHomeCarer, goodPassword, 0)
	admin := e.user("sysadmin", RoleSystemAdmin, goodPassword, 0)
	parentUser := e.user("forælder", RoleCitizen, goodPassword, parent.ID)
	teenUser := e.user("teenager", RoleCitizen, goodPassword, teen.ID)
	childUser := e.user("barn", RoleCitizen, goodPassword, child.ID)
	require.NoError(t, AddUserUnit(ctx, e.db.App, dentist.ID, clinic.ID))
	require.NoError(t, AddUserUnit(ctx, e.db.App, otherDentist.ID, otherClinic.ID))
	require.NoError(t, AddUserUnit(ctx, e.db.App, carer.ID, homeCare.ID))

	pr := func(u User) *Principal { return u.Principal(MethodSession) }
	cases := []struct {
		name   string
		who    *Principal
		person Person
		basis  string // "" = refused
	}{
		{"dentist of the child's clinic", pr(dentist), child, BasisCare},
		{"dentist, 16-year-old patient", pr(dentist), teen, BasisCare},
		{"dentist of another clinic", pr(otherDentist), child, ""},
		{"care relation ended yesterday", pr(dentist), formerPatient, ""},
		{"care relation starts tomorrow", pr(carer), homeCitizen, ""},
		{"home carer, not their citizen", pr(carer), child, ""},
		{"system admin has no care relation", pr(admin), child, ""},
		{"parent, child of 10 in custody", pr(parentUser), child, BasisCustody},
		{"parent, child turning 15 tomorrow", pr(parentUser), turns15Tomorrow, BasisCustody},
		{"parent, child turning 15 today", pr(parentUser), turns15Today, ""},
		{"parent, 16-year-old in custody", pr(parentUser), teen, ""},
		{"parent, child not in custody", pr(parentUser), stranger, ""},
		{"parent, own record", pr(parentUser), parent, BasisSelf},
		{"16-year-old, own record", pr(teenUser), teen, BasisSelf},
		{"16-year-old, parent's record", pr(teenUser), parent, ""},
		{"child of 10, own record", pr(childUser), child, BasisSelf},
	}
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		for _, tc := range cases {
			d, err := e.svc.Access(ctx, tx, tc.who, tc.person.ID)
			require.NoError(t, err, tc.name)
			require.Equal(t, tc.basis != "", d.Allowed, tc.name)
			require.Equal(t, tc.basis, d.Basis, tc.name)
			_, err = RequireAccess(ctx, tx, tc.who, tc.person.ID)
			if tc.basis == "" {
				require.ErrorIs(t, err, ErrForbidden, tc.name)
			} else {
				require.NoError(t, err, tc.name)
			}
		}
		return nil
	})

	// Break the glass: a reason is needed, citizens and admins cannot, and
	// the grant is for this session only and for a limited time.
	sess := pr(otherDentist)
	sess.sessionHash = hashToken("session-a")
	otherSess := pr(otherDentist)
	otherSess.sessionHash = hashToken("session-b")
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		_, err := e.svc.BreakGlass(ctx, tx, sess, child.ID, "  ")
		require.ErrorIs(t, err, ErrInvalidInput)
		_, err = e.svc.BreakGlass(ctx, tx, pr(parentUser), stranger.ID, "I want to see it")
		require.ErrorIs(t, err, ErrForbidden)
		_, err = e.svc.BreakGlass(ctx, tx, pr(admin), child.ID, "I want to see it")
		require.ErrorIs(t, err, ErrForbidden)
		return nil
	})
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		d, err := e.svc.BreakGlass(ctx, tx, sess, child.ID, "Akut tandpine, vagtklinik")
		require.NoError(t, err)
		require.Equal(t, Decision{Allowed: true, Basis: BasisBreakGlass, Reason: "Akut tandpine, vagtklinik"}, d)
		return nil
	})
	access := func(p *Principal, person Person) Decision {
		var d Decision
		e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
			var err error
			d, err = e.svc.Access(ctx, tx, p, person.ID)
			return err
		})
		return d
	}
	require.Equal(t, Decision{Allowed: true, Basis: BasisBreakGlass, Reason: "Akut tandpine, vagtklinik"}, access(sess, child))
	require.False(t, access(otherSess, child).Allowed, "another session of the same user")
	require.False(t, access(sess, stranger).Allowed, "another person")
	e.clock.Advance(DefaultBreakGlassDuration - time.Minute)
	require.True(t, access(sess, child).Allowed)
	e.clock.Advance(2 * time.Minute)
	require.False(t, access(sess, child).Allowed, "the grant expires")

	// The grant is in the audit log, flagged with the reason, on the child.
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		log, err := audit.AccessLog(ctx, tx, child.ID, 10)
		require.NoError(t, err)
		require.Len(t, log, 1)
		require.Equal(t, audit.ActionBreakGlass, log[0].Action)
		require.True(t, log[0].BreakGlass)
		require.Equal(t, "Akut tandpine, vagtklinik", log[0].BreakGlassReason)
		require.Equal(t, "tandlaege-syd", log[0].Username)
		return nil
	})
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	other, err := CreateTenant(ctx, e.db.App, "0202", "Andenkommune")
	require.NoError(t, err)
	cpr, err := ParseCPR("010115-4321")
	require.NoError(t, err)

	var mine, theirs Person
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		mine, err = CreatePerson(ctx, tx, Person{TenantID: e.tenant.ID, CPR: cpr, GivenName: "Min"})
		return err
	})
	require.Equal(t, date(2015, 1, 1), mine.BirthDate, "birth date from the CPR number")
	require.Equal(t, SexMale, mine.Sex)
	require.NoError(t, postgres.InTenant(ctx, e.db.App, other.ID, func(tx pgx.Tx) error {
		// The same CPR number may be in two municipalities' registers.
		theirs, err = CreatePerson(ctx, tx, Person{TenantID: other.ID, CPR: cpr, GivenName: "Deres"})
		return err
	}))

	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM auth.person`).Scan(&n))
		require.Equal(t, 1, n)
		_, err := GetPerson(ctx, tx, theirs.ID)
		require.ErrorIs(t, err, ErrNotFound)
		found, err := FindPersonByCPR(ctx, tx, cpr)
		require.NoError(t, err)
		require.Equal(t, mine.ID, found.ID)
		require.Equal(t, "Min", found.GivenName)
		_, err = e.svc.Access(ctx, tx, &Principal{UserID: 1, TenantID: e.tenant.ID, Role: RoleDentist}, theirs.ID)
		require.ErrorIs(t, err, ErrNotFound)
		return nil
	})
	// Writing a person into another tenant is refused by the policy.
	err = postgres.InTenant(ctx, e.db.App, e.tenant.ID, func(tx pgx.Tx) error {
		_, err := CreatePerson(ctx, tx, Person{TenantID: other.ID, GivenName: "Snig"})
		return err
	})
	require.ErrorIs(t, err, ErrForbidden)
	// Custody across tenants is refused (the other tenant's person is not visible to the key check either way).
	err = postgres.InTenant(ctx, e.db.App, e.tenant.ID, func(tx pgx.Tx) error {
		return AddCustody(ctx, tx, e.tenant.ID, mine.ID, theirs.ID)
	})
	require.Error(t, err)
	// Without a tenant, nothing is visible.
	var n int
	require.NoError(t, e.db.App.QueryRow(ctx, `SELECT count(*) FROM auth.person`).Scan(&n))
	require.Zero(t, n)
	// The admin sees both: the rows exist.
	require.NoError(t, e.db.Admin.QueryRow(ctx, `SELECT count(*) FROM auth.person`).Scan(&n))
	require.Equal(t, 2, n)
	// The runtime role cannot switch row-level security off or change the schema.
	_, err = e.db.App.Exec(ctx, `ALTER TABLE auth.person DISABLE ROW LEVEL SECURITY`)
	require.Error(t, err)
	_, err = e.db.App.Exec(ctx, `DROP POLICY tenant_isolation ON auth.person`)
	require.Error(t, err)
}

func TestRegisterHelpers(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	parent := e.person("Forælder", date(1980, 1, 1))
	kid := e.person("Barn", date(2015, 1, 1))
	e.inTenant(func(ctx context.Context, tx pgx.Tx) error {
		require.NoError(t, AddCustody(ctx, tx, e.tenant.ID, parent.ID, kid.ID))
		kids, err := ChildrenInCustody(ctx, tx, parent.ID)
		require.NoError(t, err)
		require.Len(t, kids, 1)
		require.Equal(t, kid.ID, kids[0].ID)
		holders, err := CustodyHolders(ctx, tx, kid.ID)
		require.NoError(t, err)
		require.Equal(t, []int64{parent.ID}, holders)
		require.NoError(t, UpdatePersonContact(ctx, tx, parent.ID, "Vej 1", "+4512345678", "a@example.dk"))
		p, err := GetPerson(ctx, tx, parent.ID)
		require.NoError(t, err)
		require.Equal(t, "+4512345678", p.Phone)
		return nil
	})
	_, err := CreateOrgUnit(ctx, e.db.App, OrgUnit{TenantID: e.tenant.ID, Kind: "dental_clinic", Name: "X", SORID: "123"})
	require.ErrorIs(t, err, ErrInvalidInput, "SOR ids have at least 15 digits")
	err = postgres.InTenant(ctx, e.db.App, e.tenant.ID, func(tx pgx.Tx) error {
		return AddCustody(ctx, tx, e.tenant.ID, parent.ID, kid.ID)
	})
	require.ErrorIs(t, err, ErrConflict)
	_, err = CreateTenant(ctx, e.db.App, "0101", "Igen")
	require.ErrorIs(t, err, ErrConflict)
	tn, err := TenantByCode(ctx, e.db.App, "0101")
	require.NoError(t, err)
	require.Equal(t, e.tenant.ID, tn.ID)
}
