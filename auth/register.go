package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/molar-health/molar/storage/postgres"
)

// Tenant is a municipality.
type Tenant struct {
	ID   int64
	Code string // e.g. the municipality number "0101"
	Name string
}

// OrgUnit is an organisational unit of a municipality: a dental clinic, a
// home-care group, a health-visitor team …
type OrgUnit struct {
	ID       int64
	TenantID int64
	Kind     string // lower-case identifier, e.g. "dental_clinic"
	Name     string
	SORID    string // optional SOR id (urn:oid:1.2.208.176.1.1), 15–18 digits
}

// Person is a citizen in the shared register. Modules refer to persons by ID.
type Person struct {
	ID         int64
	TenantID   int64
	CPR        CPR // zero when the person has no CPR number
	GivenName  string
	FamilyName string
	BirthDate  time.Time // zero if unknown; derived from the CPR number when not given
	Sex        string    // SexMale, SexFemale, SexUnknown
	Address    string
	Phone      string
	Email      string
	Created    time.Time
}

// CareRelation says that an organisational unit cares for a person on the
// dates [ValidFrom, ValidTo] (ValidTo zero: open-ended).
type CareRelation struct {
	ID        int64
	TenantID  int64
	OrgUnitID int64
	PersonID  int64
	Kind      string // e.g. "dental", "home_care"; default "care"
	ValidFrom time.Time
	ValidTo   time.Time
}

// Querier is what the register functions need: a pgx.Tx (inside
// postgres.InTenant for tables under row-level security), a pool or a conn.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateTenant adds a municipality. The tenant table is not under row-level
// security; any transaction will do.
func CreateTenant(ctx context.Context, q Querier, code, name string) (Tenant, error) {
	code, name = strings.TrimSpace(code), strings.TrimSpace(name)
	if code == "" || name == "" {
		return Tenant{}, fmt.Errorf("%w: tenant needs a code and a name", ErrInvalidInput)
	}
	t := Tenant{Code: code, Name: name}
	err := q.QueryRow(ctx, `INSERT INTO auth.tenant (code, name) VALUES ($1, $2) RETURNING id`, code, name).Scan(&t.ID)
	if err != nil {
		return Tenant{}, dbErr("create tenant", err)
	}
	return t, nil
}

// EnsureTenant returns the municipality with code, creating it when missing
// (set-up, demo and `molar user add` on a fresh database).
func EnsureTenant(ctx context.Context, q Querier, code, name string) (Tenant, error) {
	t, err := TenantByCode(ctx, q, code)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return t, err
	}
	t, err = CreateTenant(ctx, q, code, name)
	if errors.Is(err, ErrConflict) { // created meanwhile
		return TenantByCode(ctx, q, code)
	}
	return t, err
}

// TenantByCode looks a municipality up by its code.
func TenantByCode(ctx context.Context, q Querier, code string) (Tenant, error) {
	t := Tenant{}
	err := q.QueryRow(ctx, `SELECT id, code, name FROM auth.tenant WHERE code = $1`, code).Scan(&t.ID, &t.Code, &t.Name)
	if err != nil {
		return Tenant{}, dbErr("tenant by code", err)
	}
	return t, nil
}

// CreateOrgUnit adds an organisational unit.
func CreateOrgUnit(ctx context.Context, q Querier, u OrgUnit) (OrgUnit, error) {
	u.Name = strings.TrimSpace(u.Name)
	if u.TenantID == 0 || u.Name == "" || u.Kind == "" {
		return OrgUnit{}, fmt.Errorf("%w: org unit needs tenant, kind and name", ErrInvalidInput)
	}
	err := q.QueryRow(ctx, `INSERT INTO auth.org_unit (tenant_id, kind, name, sor_id) VALUES ($1, $2, $3, NULLIF($4, '')) RETURNING id`,
		u.TenantID, u.Kind, u.Name, u.SORID).Scan(&u.ID)
	if err != nil {
		return OrgUnit{}, dbErr("create org unit", err)
	}
	return u, nil
}

// OrgUnits lists a tenant's units by name.
func OrgUnits(ctx context.Context, q Querier, tenantID int64) ([]OrgUnit, error) {
	rows, err := q.Query(ctx, `SELECT id, tenant_id, kind, name, COALESCE(sor_id, '') FROM auth.org_unit WHERE tenant_id = $1 ORDER BY name, id`, tenantID)
	if err != nil {
		return nil, dbErr("org units", err)
	}
	units, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OrgUnit, error) {
		var u OrgUnit
		return u, r.Scan(&u.ID, &u.TenantID, &u.Kind, &u.Name, &u.SORID)
	})
	return units, dbErr("org units", err)
}

// CreatePerson adds a person to the register. Run it inside
// postgres.InTenant(ctx, pool, p.TenantID, …): row-level security refuses a
// row of another tenant. The birth date and sex default to what the CPR
// number says.
func CreatePerson(ctx context.Context, q Querier, p Person) (Person, error) {
	if p.TenantID == 0 {
		return Person{}, fmt.Errorf("%w: person needs a tenant", ErrInvalidInput)
	}
	if !p.CPR.IsZero() {
		if p.BirthDate.IsZero() {
			p.BirthDate = p.CPR.BirthDate()
		}
		if p.Sex == "" {
			p.Sex = p.CPR.Sex()
		}
	}
	if p.Sex == "" {
		p.Sex = SexUnknown
	}
	err := q.QueryRow(ctx, `
		INSERT INTO auth.person (tenant_id, cpr, given_name, family_name, birth_date, sex, address, phone, email)
		VALUES ($1, NULLIF($2, ''), $3, $4, $5, $6, $7, $8, $9) RETURNING id, created`,
		p.TenantID, p.CPR.Digits(), p.GivenName, p.FamilyName, nullDate(p.BirthDate), p.Sex, p.Address, p.Phone, p.Email,
	).Scan(&p.ID, &p.Created)
	if err != nil {
		return Person{}, dbErr("create person", err)
	}
	return p, nil
}

const personColumns = `id, tenant_id, COALESCE(cpr, ''), given_name, family_name, birth_date, sex, address, phone, email, created`

// personColumnsP is personColumns for a query where person is aliased p.
const personColumnsP = `p.id, p.tenant_id, COALESCE(p.cpr, ''), p.given_name, p.family_name, p.birth_date, p.sex, p.address, p.phone, p.email, p.created`

func scanPerson(row pgx.Row) (Person, error) {
	var p Person
	var cpr string
	var birth *time.Time
	if err := row.Scan(&p.ID, &p.TenantID, &cpr, &p.GivenName, &p.FamilyName, &birth, &p.Sex, &p.Address, &p.Phone, &p.Email, &p.Created); err != nil {
		return Person{}, err
	}
	if cpr != "" {
		p.CPR = CPR{digits: cpr}
	}
	if birth != nil {
		p.BirthDate = *birth
	}
	return p, nil
}

// GetPerson reads a person of the transaction's tenant (ErrNotFound for a
// person of another tenant: row-level security hides it).
func GetPerson(ctx context.Context, q Querier, id int64) (Person, error) {
	p, err := scanPerson(q.QueryRow(ctx, `SELECT `+personColumns+` FROM auth.person WHERE id = $1`, id))
	if err != nil {
		return Person{}, dbErr("get person", err)
	}
	return p, nil
}

// FindPersonByCPR finds the transaction's tenant's person with this CPR number.
func FindPersonByCPR(ctx context.Context, q Querier, cpr CPR) (Person, error) {
	if cpr.IsZero() {
		return Person{}, fmt.Errorf("%w: empty CPR number", ErrInvalidCPR)
	}
	p, err := scanPerson(q.QueryRow(ctx, `SELECT `+personColumns+` FROM auth.person WHERE cpr = $1`, cpr.Digits()))
	if err != nil {
		return Person{}, dbErr("find person", err)
	}
	return p, nil
}

// UpdatePersonContact changes a person's address, phone and e-mail.
func UpdatePersonContact(ctx context.Context, q Querier, id int64, address, phone, email string) error {
	tag, err := q.Exec(ctx, `UPDATE auth.person SET address = $2, phone = $3, email = $4 WHERE id = $1`, id, address, phone, email)
	if err != nil {
		return dbErr("update person", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("auth: update person: %w", ErrNotFound)
	}
	return nil
}

// UpdatePersonName changes a person's given and family names (a register
// extract, a name change).
func UpdatePersonName(ctx context.Context, q Querier, id int64, given, family string) error {
	tag, err := q.Exec(ctx, `UPDATE auth.person SET given_name = $2, family_name = $3 WHERE id = $1`, id, given, family)
	if err != nil {
		return dbErr("update person", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("auth: update person: %w", ErrNotFound)
	}
	return nil
}

// AddCustody records that holder has custody of child (same tenant).
func AddCustody(ctx context.Context, q Querier, tenantID, holderPersonID, childPersonID int64) error {
	_, err := q.Exec(ctx, `INSERT INTO auth.custody (tenant_id, holder_person_id, child_person_id) VALUES ($1, $2, $3)`,
		tenantID, holderPersonID, childPersonID)
	if err != nil {
		return dbErr("add custody", err)
	}
	return nil
}

// RemoveCustody ends a custody relation (a court order, custody moved, the
// child of age): from then on the holder neither reaches the child's record
// through Access nor gets its notifications. ErrNotFound when holder has no
// custody of child. The caller records the audit event (the child's
// PersonID); the row itself is deleted, the audit log keeps the history.
func RemoveCustody(ctx context.Context, q Querier, holderPersonID, childPersonID int64) error {
	tag, err := q.Exec(ctx, `DELETE FROM auth.custody WHERE holder_person_id = $1 AND child_person_id = $2`, holderPersonID, childPersonID)
	if err != nil {
		return dbErr("remove custody", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("auth: remove custody: %w", ErrNotFound)
	}
	return nil
}

// ChildrenInCustody lists the persons holder has custody of (any age). The
// portal shows those for whom Access answers Basis "custody".
func ChildrenInCustody(ctx context.Context, q Querier, holderPersonID int64) ([]Person, error) {
	rows, err := q.Query(ctx, `SELECT `+personColumnsP+` FROM auth.custody c JOIN auth.person p ON p.id = c.child_person_id
		WHERE c.holder_person_id = $1 ORDER BY p.birth_date, p.id`, holderPersonID)
	if err != nil {
		return nil, dbErr("children in custody", err)
	}
	defer rows.Close()
	var out []Person
	for rows.Next() {
		p, err := scanPerson(rows)
		if err != nil {
			return nil, dbErr("children in custody", err)
		}
		out = append(out, p)
	}
	return out, dbErr("children in custody", rows.Err())
}

// CustodyHolders lists the persons with custody of child (to inform them,
// Health Act §17, also after the child turns 15).
func CustodyHolders(ctx context.Context, q Querier, childPersonID int64) ([]int64, error) {
	rows, err := q.Query(ctx, `SELECT holder_person_id FROM auth.custody WHERE child_person_id = $1 ORDER BY holder_person_id`, childPersonID)
	if err != nil {
		return nil, dbErr("custody holders", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, dbErr("custody holders", err)
}

// AddCareRelation records that a unit cares for a person.
func AddCareRelation(ctx context.Context, q Querier, c CareRelation) (CareRelation, error) {
	if c.Kind == "" {
		c.Kind = "care"
	}
	err := q.QueryRow(ctx, `
		INSERT INTO auth.care_relation (tenant_id, org_unit_id, person_id, kind, valid_from, valid_to)
		VALUES ($1, $2, $3, $4, COALESCE($5, current_date), $6) RETURNING id, valid_from`,
		c.TenantID, c.OrgUnitID, c.PersonID, c.Kind, nullDate(c.ValidFrom), nullDate(c.ValidTo)).Scan(&c.ID, &c.ValidFrom)
	if err != nil {
		return CareRelation{}, dbErr("add care relation", err)
	}
	return c, nil
}

// HasCareRelation reports whether the unit cares for the person today or
// later with a relation of this kind.
func HasCareRelation(ctx context.Context, q Querier, personID, orgUnitID int64, kind string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auth.care_relation WHERE person_id = $1 AND org_unit_id = $2
		AND kind = $3 AND (valid_to IS NULL OR valid_to >= current_date))`, personID, orgUnitID, kind).Scan(&ok)
	return ok, dbErr("care relation", err)
}

// EndCareRelation sets the last day of a care relation.
func EndCareRelation(ctx context.Context, q Querier, id int64, lastDay time.Time) error {
	tag, err := q.Exec(ctx, `UPDATE auth.care_relation SET valid_to = $2 WHERE id = $1`, id, lastDay)
	if err != nil {
		return dbErr("end care relation", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("auth: end care relation: %w", ErrNotFound)
	}
	return nil
}

// StaffMember is a staff account (not a citizen) and the units it works in.
type StaffMember struct {
	UserID      int64
	Username    string
	DisplayName string
	Role        string
	Units       []int64
}

// Staff lists a municipality's staff accounts with their units, by name.
func Staff(ctx context.Context, q Querier, tenantID int64) ([]StaffMember, error) {
	rows, err := q.Query(ctx, `SELECT u.id, u.username, u.display_name, u.role,
			coalesce(array_agg(uu.org_unit_id ORDER BY uu.org_unit_id) FILTER (WHERE uu.org_unit_id IS NOT NULL), '{}')
		FROM auth.users u LEFT JOIN auth.user_unit uu ON uu.user_id = u.id
		WHERE u.tenant_id = $1 AND u.role <> $2
		GROUP BY u.id ORDER BY u.display_name, u.username`, tenantID, RoleCitizen)
	if err != nil {
		return nil, dbErr("staff", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StaffMember, error) {
		var m StaffMember
		err := r.Scan(&m.UserID, &m.Username, &m.DisplayName, &m.Role, &m.Units)
		return m, err
	})
	return out, dbErr("staff", err)
}

// AddUserUnit makes a user a member of an organisational unit (same tenant).
func AddUserUnit(ctx context.Context, q Querier, userID, orgUnitID int64) error {
	tag, err := q.Exec(ctx, `INSERT INTO auth.user_unit (user_id, org_unit_id)
		SELECT u.id, o.id FROM auth.users u JOIN auth.org_unit o ON o.tenant_id = u.tenant_id
		WHERE u.id = $1 AND o.id = $2 ON CONFLICT DO NOTHING`, userID, orgUnitID)
	if err != nil {
		return dbErr("add user unit", err)
	}
	if tag.RowsAffected() == 0 {
		var n int
		_ = q.QueryRow(ctx, `SELECT count(*) FROM auth.user_unit WHERE user_id = $1 AND org_unit_id = $2`, userID, orgUnitID).Scan(&n)
		if n == 0 {
			return fmt.Errorf("auth: add user unit: %w (user and unit of one tenant)", ErrNotFound)
		}
	}
	return nil
}

// RemoveUserUnit ends a user's membership of a unit.
func RemoveUserUnit(ctx context.Context, q Querier, userID, orgUnitID int64) error {
	_, err := q.Exec(ctx, `DELETE FROM auth.user_unit WHERE user_id = $1 AND org_unit_id = $2`, userID, orgUnitID)
	return dbErr("remove user unit", err)
}

// UserUnits lists the units a user belongs to.
func UserUnits(ctx context.Context, q Querier, userID int64) ([]int64, error) {
	rows, err := q.Query(ctx, `SELECT org_unit_id FROM auth.user_unit WHERE user_id = $1 ORDER BY org_unit_id`, userID)
	if err != nil {
		return nil, dbErr("user units", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, dbErr("user units", err)
}

func nullDate(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return &d
}

// dbErr wraps a database error with the operation, mapping "no rows" to
// ErrNotFound and constraint violations to ErrConflict or ErrInvalidInput.
// The driver's detail text (which can quote values, e.g. a CPR number in a
// unique violation) is never included.
func dbErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("auth: %s: %w", op, ErrNotFound)
	case postgres.IsUniqueViolation(err):
		return fmt.Errorf("auth: %s: %w", op, ErrConflict)
	case isCode(err, "23503"): // foreign key: a referenced row is missing or of another tenant
		return fmt.Errorf("auth: %s: %w: a referenced row does not exist in this municipality", op, ErrNotFound)
	case isCode(err, "23514"), isCode(err, "22P02"), isCode(err, "23502"): // check, bad text, not null
		return fmt.Errorf("auth: %s: %w", op, ErrInvalidInput)
	case postgres.IsInsufficientPrivilege(err):
		return fmt.Errorf("auth: %s: %w (row-level security: wrong municipality?)", op, ErrForbidden)
	}
	return fmt.Errorf("auth: %s: %w", op, err)
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
