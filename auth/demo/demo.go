// Package demo seeds the demo municipality that `make run` and `molar demo`
// show: a municipality, a dental clinic and a home-care group, staff of every
// role, 20 children with parents and custody, and a few young people aged 15
// to 21. All people are fictitious; their CPR numbers are made up from a
// birth date and a sequence number and are not checked against any register.
//
// Modules and the journal add their own demo data (appointments, images,
// journal entries) through modules.Seeder, given the Result.
package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/storage/postgres"
)

// TenantCode is the demo municipality's code (a made-up municipality number).
const TenantCode = "0999"

// Password is every demo account's password. Demo only: `make run` binds to
// loopback by default.
const Password = "molar-demo-2026"

// Login is one demo account.
type Login struct {
	Username string
	Role     string
	Name     string
	PersonID int64 // citizens
}

// Child is a demo child with its custody holders.
type Child struct {
	PersonID  int64
	Name      string
	BirthDate time.Time
	Parents   []int64 // person ids
}

// Result is what was seeded.
type Result struct {
	TenantID   int64
	ClinicID   int64
	HomeCareID int64
	Logins     []Login
	Children   []Child
	Youths     []Child // 15–21 years old, own access
	Created    bool    // false when the demo already existed
}

var givenNames = []string{"Emma", "Noah", "Ida", "William", "Clara", "Oscar", "Freja", "Lucas", "Alma", "Carl",
	"Ella", "Alfred", "Agnes", "Victor", "Sofia", "Aksel", "Karla", "Malthe", "Olivia", "Emil",
	"Asta", "Valdemar", "Luna", "Magnus", "Ellen", "Anton"}
var familyNames = []string{"Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
	"Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Christiansen", "Poulsen",
	"Johansen", "Møller", "Mortensen"}
var parentGiven = []string{"Mette", "Anders", "Louise", "Thomas", "Camilla", "Martin", "Signe", "Jesper",
	"Maria", "Rasmus", "Line", "Søren", "Katrine", "Mikkel", "Sara", "Kasper", "Julie", "Jakob", "Anne", "Peter"}

// staff lists one account per staff role.
var staff = []Login{
	{"tandlaege", auth.RoleDentist, "Tove Tandlæge", 0},
	{"klinikassistent", auth.RoleDentalAssistant, "Kim Klinikassistent", 0},
	{"klinikadmin", auth.RoleClinicAdmin, "Karen Klinikadmin", 0},
	{"hjemmehjaelper", auth.RoleHomeCarer, "Hanne Hjemmehjælper", 0},
	{"sygeplejerske", auth.RoleNurse, "Sofie Sygeplejerske", 0},
	{"terapeut", auth.RoleTherapist, "Torben Terapeut", 0},
	{"sundhedsplejerske", auth.RoleHealthVisitor, "Sanne Sundhedsplejerske", 0},
	{"sagsbehandler", auth.RoleCaseWorker, "Sebastian Sagsbehandler", 0},
	{"leder", auth.RoleManager, "Lene Leder", 0},
	{"admin", auth.RoleSystemAdmin, "Adam Administrator", 0},
}

// citizenLogins are the demo's citizen accounts: two parents and a 15-year-old.
var citizenLogins = []string{"foraelder1", "foraelder2", "ung15"}

// existing fills in the units of a demo seeded earlier.
func existing(ctx context.Context, pool *pgxpool.Pool, res *Result) error {
	units, err := auth.OrgUnits(ctx, pool, res.TenantID)
	if err != nil {
		return err
	}
	for _, u := range units {
		switch u.Kind {
		case "dental_clinic":
			res.ClinicID = u.ID
		case "home_care":
			res.HomeCareID = u.ID
		}
	}
	return nil
}

// cpr builds a fictitious CPR number for a birth date and sequence.
func cpr(birth time.Time, seq int, male bool) auth.CPR {
	year := birth.Year()
	// Digit 7 with the two-digit year gives the century (DOMAIN.md):
	// 4 covers 2000–2036 and 1937–1999, 0–3 cover 1900–1999.
	d7 := 4
	if year < 1937 {
		d7 = 0
	}
	last := seq % 10
	if male != (last%2 == 1) {
		last = (last + 1) % 10
	}
	s := fmt.Sprintf("%02d%02d%02d%d%02d%d", birth.Day(), int(birth.Month()), year%100, d7, (seq/10)%100, last)
	c, err := auth.ParseCPR(s)
	if err != nil {
		panic(fmt.Sprintf("demo: built an invalid CPR: %v", err))
	}
	return c
}

// Seed creates the demo municipality unless it exists. now fixes ages.
func Seed(ctx context.Context, pool *pgxpool.Pool, now time.Time) (Result, error) {
	var res Result
	err := postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
		t, err := auth.TenantByCode(ctx, tx, TenantCode)
		if err == nil {
			res.TenantID = t.ID
			return nil
		}
		if !errors.Is(err, auth.ErrNotFound) {
			return err
		}
		t, err = auth.CreateTenant(ctx, tx, TenantCode, "Molarby Kommune")
		if err != nil {
			return err
		}
		res.TenantID = t.ID
		res.Created = true
		return nil
	})
	if err != nil || !res.Created {
		if err == nil {
			res.Logins = append(res.Logins, staff...)
			for _, c := range citizenLogins {
				res.Logins = append(res.Logins, Login{Username: c, Role: auth.RoleCitizen})
			}
			err = existing(ctx, pool, &res)
		}
		return res, err
	}
	err = postgres.InTenant(ctx, pool, res.TenantID, func(tx pgx.Tx) error { return seedTenant(ctx, tx, &res, now) })
	if err != nil {
		return Result{}, fmt.Errorf("demo: %w", err)
	}
	return res, nil
}

func seedTenant(ctx context.Context, tx pgx.Tx, res *Result, now time.Time) error {
	clinic, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: res.TenantID, Kind: "dental_clinic", Name: "Tandplejen Molarby Skole"})
	if err != nil {
		return err
	}
	home, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: res.TenantID, Kind: "home_care", Name: "Hjemmeplejen Nord"})
	if err != nil {
		return err
	}
	res.ClinicID, res.HomeCareID = clinic.ID, home.ID
	for _, s := range staff {
		u, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: res.TenantID, Username: s.Username, DisplayName: s.Name, Role: s.Role, Password: Password}, nil)
		if err != nil {
			return err
		}
		unit := clinic.ID
		if s.Role == auth.RoleHomeCarer || s.Role == auth.RoleNurse || s.Role == auth.RoleTherapist {
			unit = home.ID
		}
		if err := auth.AddUserUnit(ctx, tx, u.ID, unit); err != nil {
			return err
		}
		res.Logins = append(res.Logins, s)
	}

	seq := 10
	mkPerson := func(given, family string, birth time.Time, male bool) (auth.Person, error) {
		seq++
		return auth.CreatePerson(ctx, tx, auth.Person{
			TenantID: res.TenantID, CPR: cpr(birth, seq, male), GivenName: given, FamilyName: family,
			Address: fmt.Sprintf("Skolevej %d, 9999 Molarby", seq), Phone: fmt.Sprintf("+45 20 %02d %02d %02d", seq%100, (seq*7)%100, (seq*13)%100),
		})
	}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	// 20 children aged 1 to 14, in 10 families of two parents.
	for i := 0; i < 20; i++ {
		family := familyNames[i%len(familyNames)]
		ageMonths := 12 + i*8 // 1 year to about 13.7 years
		birth := today.AddDate(0, -ageMonths, -(i * 3))
		child, err := mkPerson(givenNames[i], family, birth, i%2 == 1)
		if err != nil {
			return err
		}
		c := Child{PersonID: child.ID, Name: child.GivenName + " " + child.FamilyName, BirthDate: child.BirthDate}
		// Two parents per child; siblings share parents every third child.
		for j := 0; j < 2; j++ {
			pbirth := birth.AddDate(-30-j*2, -j*5, 0)
			parent, err := mkPerson(parentGiven[(i*2+j)%len(parentGiven)], family, pbirth, j == 1)
			if err != nil {
				return err
			}
			if err := auth.AddCustody(ctx, tx, res.TenantID, parent.ID, child.ID); err != nil {
				return err
			}
			c.Parents = append(c.Parents, parent.ID)
		}
		if _, err := auth.AddCareRelation(ctx, tx, auth.CareRelation{TenantID: res.TenantID, OrgUnitID: clinic.ID, PersonID: child.ID, Kind: "dental"}); err != nil {
			return err
		}
		res.Children = append(res.Children, c)
	}
	// Young people aged 15, 16, 17 and 19: own access; the younger ones still
	// have custody holders, who are informed but do not see the record.
	for i, age := range []int{15, 16, 17, 19} {
		birth := today.AddDate(-age, -(i + 1), 0)
		y, err := mkPerson(givenNames[20+i], familyNames[(20+i)%len(familyNames)], birth, i%2 == 0)
		if err != nil {
			return err
		}
		c := Child{PersonID: y.ID, Name: y.GivenName + " " + y.FamilyName, BirthDate: y.BirthDate}
		if age < 18 {
			parent, err := mkPerson(parentGiven[(i+5)%len(parentGiven)], y.FamilyName, birth.AddDate(-32, 0, 0), false)
			if err != nil {
				return err
			}
			if err := auth.AddCustody(ctx, tx, res.TenantID, parent.ID, y.ID); err != nil {
				return err
			}
			c.Parents = append(c.Parents, parent.ID)
		}
		if _, err := auth.AddCareRelation(ctx, tx, auth.CareRelation{TenantID: res.TenantID, OrgUnitID: clinic.ID, PersonID: y.ID, Kind: "dental"}); err != nil {
			return err
		}
		res.Youths = append(res.Youths, c)
	}
	// Citizen logins: the parents of the first two children, and the 15-year-old.
	citizens := []struct {
		username string
		person   int64
	}{
		{citizenLogins[0], res.Children[0].Parents[0]},
		{citizenLogins[1], res.Children[1].Parents[0]},
		{citizenLogins[2], res.Youths[0].PersonID},
	}
	for _, c := range citizens {
		p, err := auth.GetPerson(ctx, tx, c.person)
		if err != nil {
			return err
		}
		name := p.GivenName + " " + p.FamilyName
		if _, err := auth.CreateUser(ctx, tx, auth.NewUser{TenantID: res.TenantID, Username: c.username, DisplayName: name, Role: auth.RoleCitizen, Password: Password, PersonID: c.person}, nil); err != nil {
			return err
		}
		res.Logins = append(res.Logins, Login{Username: c.username, Role: auth.RoleCitizen, Name: name, PersonID: c.person})
	}
	return nil
}
