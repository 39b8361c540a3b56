package booking_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/modules/booking"
	"github.com/molar-health/molar/storage/postgres"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type units map[int64][]booking.Unit

func (u units) Units(_ context.Context, tenant int64) ([]booking.Unit, error) { return u[tenant], nil }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// fixture is a municipality with one clinic: a chair, an X-ray room, a
// dentist; a parent with two children (8 and 15 years old), another family's
// child, and appointment types.
type fixture struct {
	t      *testing.T
	m      *booking.Module
	db     *pgtest.DB
	clock  *clock
	tenant int64
	clinic int64

	dentist *auth.Principal
	parent  *auth.Principal // citizen, custody of child and teen
	teen    *auth.Principal // the 15-year-old, own login
	other   *auth.Principal // citizen without custody of child

	parentPerson, child, teen15, otherChild int64

	chair, xrayRoom, staff int64
	exam, xray, staffOnly  booking.Type
}

// local returns a wall-clock time in Copenhagen.
func local(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, booking.Loc)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	m := &booking.Module{}
	db := pgtest.Open(t, audit.Migrations(), auth.Migrations(), postgres.Source{Namespace: m.Name(), FS: m.Migrations()})
	f := &fixture{t: t, m: m, db: db, clock: &clock{t: local(2026, 3, 2, 9, 0)}}
	m.Pool = db.App
	m.Now = f.clock.Now
	m.BaseURL = "https://molar.example"
	ctx := context.Background()
	today := auth.DateIn(f.clock.Now(), auth.Copenhagen)
	require.NoError(t, postgres.InTx(ctx, db.App, func(tx pgx.Tx) error {
		tn, err := auth.CreateTenant(ctx, tx, "0101", "Testby")
		f.tenant = tn.ID
		return err
	}))
	require.NoError(t, postgres.InTenant(ctx, db.App, f.tenant, func(tx pgx.Tx) error {
		clinic, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: f.tenant, Kind: "dental_clinic", Name: "Tandplejen Testby"})
		if err != nil {
			return err
		}
		f.clinic = clinic.ID
		person := func(given string, birth time.Time, email, phone string) int64 {
			p, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: f.tenant, GivenName: given, FamilyName: "Testesen", BirthDate: birth, Email: email, Phone: phone})
			require.NoError(t, err)
			return p.ID
		}
		f.parentPerson = person("Mette", today.AddDate(-38, 0, 0), "mette@example.org", "+4520000001")
		f.child = person("Emma", today.AddDate(-8, -2, 0), "", "")
		f.teen15 = person("Asta", today.AddDate(-15, 0, -10), "asta@example.org", "")
		otherParent := person("Jens", today.AddDate(-40, 0, 0), "jens@example.org", "")
		f.otherChild = person("Noah", today.AddDate(-6, 0, 0), "", "")
		for _, c := range [][2]int64{{f.parentPerson, f.child}, {f.parentPerson, f.teen15}, {otherParent, f.otherChild}} {
			require.NoError(t, auth.AddCustody(ctx, tx, f.tenant, c[0], c[1]))
		}
		for _, c := range []int64{f.child, f.teen15, f.otherChild} {
			_, err := auth.AddCareRelation(ctx, tx, auth.CareRelation{TenantID: f.tenant, OrgUnitID: f.clinic, PersonID: c, Kind: "dental", ValidFrom: today.AddDate(-1, 0, 0)})
			require.NoError(t, err)
		}
		user := func(name, role string, person int64) *auth.Principal {
			u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: f.tenant, Username: name, DisplayName: name, Role: role, PersonID: person}, nil)
			require.NoError(t, err)
			if role != auth.RoleCitizen {
				require.NoError(t, auth.AddUserUnit(ctx, tx, u.ID, f.clinic))
			}
			return &auth.Principal{UserID: u.ID, TenantID: f.tenant, Username: name, Role: role, PersonID: person}
		}
		f.dentist = user("tandlaege", auth.RoleDentist, 0)
		f.parent = user("mette", auth.RoleCitizen, f.parentPerson)
		f.teen = user("asta", auth.RoleCitizen, f.teen15)
		f.other = user("jens", auth.RoleCitizen, otherParent)
		return nil
	}))
	for _, p := range m.Permissions() {
		for _, r := range p.Roles {
			auth.RegisterPermissions(r, p.Name)
		}
	}
	m.Units = units{f.tenant: {{ID: f.clinic, Kind: "dental_clinic", Name: "Tandplejen Testby"}}}

	var err error
	f.chair = f.resource(booking.KindChair, "Stol 1", "")
	f.xrayRoom = f.resource(booking.KindRoom, "Røntgen", "PANO1")
	f.staff = f.resource(booking.KindStaff, "Tove Tandlæge", "")
	var hours []booking.Hours
	for wd := 1; wd <= 5; wd++ {
		hours = append(hours, booking.Hours{Weekday: wd, Opens: 8 * 60, Closes: 16 * 60})
	}
	require.NoError(t, m.SetHours(ctx, f.tenant, f.clinic, hours))
	f.exam, err = m.SaveType(ctx, f.tenant, booking.Type{Code: "exam", Name: "Undersøgelse", PublicName: "Tandpleje", Minutes: 30, SelfService: true, Kinds: []string{booking.KindChair}})
	require.NoError(t, err)
	f.xray, err = m.SaveType(ctx, f.tenant, booking.Type{Code: "pano", Name: "Panoramarøntgen", PublicName: "Tandpleje", Minutes: 15,
		Kinds: []string{booking.KindRoom}, Imaging: true, StationAE: "PANO1", Modality: "PX", ProcedureCode: "PANO", ProcedureDescription: "Panoramic X-ray"})
	require.NoError(t, err)
	f.staffOnly, err = m.SaveType(ctx, f.tenant, booking.Type{Code: "treat", Name: "Behandling", Minutes: 60, Kinds: []string{booking.KindChair, booking.KindStaff}})
	require.NoError(t, err)
	return f
}

func (f *fixture) resource(kind, name, ae string) int64 {
	r, err := f.m.SaveResource(context.Background(), f.tenant, booking.Resource{UnitID: f.clinic, Kind: kind, Name: name, StationAE: ae})
	require.NoError(f.t, err)
	return r.ID
}

// ctx returns a context acting as p (audit actor included).
func (f *fixture) ctx(p *auth.Principal) context.Context {
	return auth.WithPrincipal(context.Background(), p)
}

// addChildren adds n children in the clinic's care (for load tests).
func (f *fixture) addChildren(n int) []int64 {
	ctx := context.Background()
	var ids []int64
	today := auth.DateIn(f.clock.Now(), auth.Copenhagen)
	require.NoError(f.t, postgres.InTenant(ctx, f.db.App, f.tenant, func(tx pgx.Tx) error {
		for i := 0; i < n; i++ {
			p, err := auth.CreatePerson(ctx, tx, auth.Person{TenantID: f.tenant, GivenName: fmt.Sprintf("Barn%d", i), BirthDate: today.AddDate(-5, 0, -i)})
			if err != nil {
				return err
			}
			if _, err := auth.AddCareRelation(ctx, tx, auth.CareRelation{TenantID: f.tenant, OrgUnitID: f.clinic, PersonID: p.ID, Kind: "dental", ValidFrom: today}); err != nil {
				return err
			}
			ids = append(ids, p.ID)
		}
		return nil
	}))
	return ids
}

// auditRows counts audit rows for a person and object prefix.
func (f *fixture) auditRows(person int64, action audit.Action, objectPrefix string) int {
	var n int
	require.NoError(f.t, f.db.Admin.QueryRow(context.Background(),
		`SELECT count(*) FROM audit.event WHERE person_id = $1 AND action = $2 AND object LIKE $3`, person, string(action), objectPrefix+"%").Scan(&n))
	return n
}
