package main

// Administration of the shared register from the command line: the
// municipality's organisational units and who works in them (`molar unit`),
// and citizens with custody and care relations loaded from a CSV extract
// (`molar register import`). Staff reach a person through a unit of theirs
// that cares for the person; without these commands only the demo had any.

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/auth"
	"github.com/molar-health/molar/auth/audit"
	"github.com/molar-health/molar/storage/postgres"
)

func cmdUnit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: molar unit add|list|member [flags] (see molar unit add --help)"
	verb, rest, err := sub(args, usage, "add", "list", "member")
	if err != nil {
		return err
	}
	var name, kind, sor, tenantCode, username string
	var remove bool
	flags := func(fs flagSet) {
		switch verb {
		case "add":
			fs.StringVar(&name, "name", "", "unit name, e.g. Tandplejen Nord")
			fs.StringVar(&kind, "kind", "", "kind: a lower-case identifier, e.g. dental_clinic, home_care")
			fs.StringVar(&sor, "sor", "", "SOR id of the unit (optional)")
			fs.StringVar(&tenantCode, "tenant", "", "municipality code (default: the only one)")
		case "list":
			fs.StringVar(&tenantCode, "tenant", "", "municipality code (default: the only one)")
		case "member":
			fs.StringVar(&username, "username", "", "staff user name")
			fs.StringVar(&name, "unit", "", "unit name")
			fs.BoolVar(&remove, "remove", false, "end the membership instead")
		}
	}
	db, _, err := adminDB(ctx, "unit "+verb, rest, getenv, stderr, flags)
	if err != nil {
		return err
	}
	defer db.close(ctx)
	switch verb {
	case "add":
		if strings.TrimSpace(name) == "" || kind == "" {
			return usageError{errors.New("--name and --kind are required")}
		}
		return postgres.InTx(ctx, db.pool, func(tx pgx.Tx) error {
			t, err := pickTenant(ctx, tx, tenantCode, "")
			if err != nil {
				return err
			}
			if _, err := unitByName(ctx, tx, t.ID, name); err == nil {
				return fmt.Errorf("unit %q already exists in %s", name, t.Name)
			}
			u, err := auth.CreateOrgUnit(ctx, tx, auth.OrgUnit{TenantID: t.ID, Kind: kind, Name: strings.TrimSpace(name), SORID: sor})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created unit %s (id %d, %s) in %s\n", u.Name, u.ID, u.Kind, t.Name)
			return nil
		})
	case "list":
		var units []auth.OrgUnit
		members, cared := map[int64]int{}, map[int64]int{}
		t, err := existingTenant(ctx, db, tenantCode)
		if err != nil {
			return err
		}
		err = postgres.InTenant(ctx, db.pool, t.ID, func(tx pgx.Tx) error {
			var err error
			if units, err = auth.OrgUnits(ctx, tx, t.ID); err != nil {
				return err
			}
			for _, q := range []struct {
				sql string
				m   map[int64]int
			}{
				{`SELECT uu.org_unit_id, count(*) FROM auth.user_unit uu JOIN auth.org_unit o ON o.id = uu.org_unit_id
					WHERE o.tenant_id = $1 GROUP BY 1`, members},
				{`SELECT org_unit_id, count(DISTINCT person_id) FROM auth.care_relation
					WHERE tenant_id = $1 AND valid_from <= current_date AND (valid_to IS NULL OR valid_to >= current_date) GROUP BY 1`, cared},
			} {
				rows, err := tx.Query(ctx, q.sql, t.ID)
				if err != nil {
					return err
				}
				for rows.Next() {
					var id int64
					var n int
					if err := rows.Scan(&id, &n); err != nil {
						rows.Close()
						return err
					}
					q.m[id] = n
				}
				if err := rows.Err(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "ID\tKIND\tNAME\tSOR\tSTAFF\tCARED FOR (%s)\n", t.Code)
		for _, u := range units {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\n", u.ID, u.Kind, u.Name, u.SORID, members[u.ID], cared[u.ID])
		}
		return tw.Flush()
	case "member":
		if username == "" || name == "" {
			return usageError{errors.New("--username and --unit are required")}
		}
		u, err := auth.UserByUsername(ctx, db.pool, username)
		if err != nil {
			return fmt.Errorf("user %q: %w", username, err)
		}
		if u.Role == auth.RoleCitizen {
			return fmt.Errorf("user %q is a citizen account, not staff", username)
		}
		actx := audit.WithActor(ctx, audit.Actor{Username: "system:cli", Role: "system", TenantID: u.TenantID})
		return postgres.InTenant(actx, db.pool, u.TenantID, func(tx pgx.Tx) error {
			unit, err := unitByName(ctx, tx, u.TenantID, name)
			if err != nil {
				return err
			}
			action, done := audit.ActionCreate, fmt.Sprintf("%s works in %s", u.Username, unit.Name)
			if remove {
				err, action, done = auth.RemoveUserUnit(ctx, tx, u.ID, unit.ID), audit.ActionDelete, fmt.Sprintf("%s is no longer in %s", u.Username, unit.Name)
			} else {
				err = auth.AddUserUnit(ctx, tx, u.ID, unit.ID)
			}
			if err != nil {
				return err
			}
			// Membership decides whose records the account reaches.
			if err := audit.Record(actx, tx, audit.Event{Action: action, Object: fmt.Sprintf("auth.user_unit/%d", u.ID),
				Detail: map[string]any{"org_unit_id": unit.ID, "source": "molar unit member"}}); err != nil {
				return err
			}
			fmt.Fprintln(stdout, done)
			return nil
		})
	}
	return nil
}

// unitByName finds a unit of a municipality by its name (case-insensitive).
func unitByName(ctx context.Context, q auth.Querier, tenantID int64, name string) (auth.OrgUnit, error) {
	units, err := auth.OrgUnits(ctx, q, tenantID)
	if err != nil {
		return auth.OrgUnit{}, err
	}
	for _, u := range units {
		if strings.EqualFold(strings.TrimSpace(u.Name), strings.TrimSpace(name)) {
			return u, nil
		}
	}
	return auth.OrgUnit{}, fmt.Errorf("no unit named %q (molar unit list shows them)", name)
}

func cmdRegister(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: molar register import --file FILE.csv [--sync-custody] [--dry-run] | end-custody --child CPR --holder CPR (see molar register import --help)"
	verb, rest, err := sub(args, usage, "import", "end-custody")
	if err != nil {
		return err
	}
	if verb == "end-custody" {
		return cmdEndCustody(ctx, rest, getenv, stdout, stderr)
	}
	var file, tenantCode string
	var dryRun, syncCustody bool
	db, _, err := adminDB(ctx, "register import", rest, getenv, stderr, func(fs flagSet) {
		fs.StringVar(&file, "file", "", "CSV file (header row: cpr, given_name, family_name, address, phone, email, custody_holders, care_unit, care_kind)")
		fs.StringVar(&tenantCode, "tenant", "", "municipality code (default: the only one)")
		fs.BoolVar(&dryRun, "dry-run", false, "check the file and report what would change, change nothing")
		fs.BoolVar(&syncCustody, "sync-custody", false, "the extract is authoritative for the persons it lists: custody holders not in a listed person's custody_holders cell lose custody (an empty cell: all of them)")
	})
	if err != nil {
		return err
	}
	defer db.close(ctx)
	if file == "" {
		return usageError{errors.New("--file is required")}
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := readRegisterCSV(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if syncCustody {
		// A row that does not state its custody holders (no column, or a
		// row cut short) says nothing about custody; syncing would end all
		// of that person's custody.
		for _, r := range rows {
			if !r.custodyListed {
				return usageError{fmt.Errorf("%s: line %d: --sync-custody needs a custody_holders column and the field on every row (empty when there are none)", file, r.line)}
			}
		}
	}
	t, err := existingTenant(ctx, db, tenantCode)
	if err != nil {
		return err
	}
	ctx = audit.WithActor(ctx, audit.Actor{Username: "system:register-import", Role: "system", TenantID: t.ID})
	var res registerResult
	errDryRun := errors.New("dry run")
	err = postgres.InTenant(ctx, db.pool, t.ID, func(tx pgx.Tx) error {
		var err error
		if res, err = importRegister(ctx, tx, t.ID, rows, syncCustody); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, audit.Event{Action: audit.ActionCreate, Object: fmt.Sprintf("auth.register/%d", t.ID),
			Detail: map[string]any{"source": "register import", "rows": len(rows), "created": res.created, "updated": res.updated,
				"custody_added": res.custody, "care_added": res.care, "sync_custody": syncCustody, "custody_removed": res.custodyRemoved}}); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return fmt.Errorf("%s: %w (nothing was changed)", file, err)
	}
	verbWord := "imported"
	if dryRun {
		verbWord = "would import (dry run, nothing changed)"
	}
	fmt.Fprintf(stdout, "%s %d rows into %s: %d persons created, %d updated, %d custody relations and %d care relations added",
		verbWord, len(rows), t.Name, res.created, res.updated, res.custody, res.care)
	if syncCustody {
		fmt.Fprintf(stdout, ", %d custody relations removed", res.custodyRemoved)
	}
	fmt.Fprintln(stdout)
	return nil
}

// cmdEndCustody ends one custody relation (`molar register end-custody`): a
// decision such as a court order that the next register extract will show,
// applied now. Audited on the child; the output names nobody.
func cmdEndCustody(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var childArg, holderArg, tenantCode string
	db, _, err := adminDB(ctx, "register end-custody", args, getenv, stderr, func(fs flagSet) {
		fs.StringVar(&childArg, "child", "", "CPR number of the child")
		fs.StringVar(&holderArg, "holder", "", "CPR number of the custody holder whose custody ends")
		fs.StringVar(&tenantCode, "tenant", "", "municipality code (default: the only one)")
	})
	if err != nil {
		return err
	}
	defer db.close(ctx)
	if childArg == "" || holderArg == "" {
		return usageError{errors.New("--child and --holder are required")}
	}
	// Errors never repeat the CPR numbers: they end up in shell logs and mails.
	childCPR, err := auth.ParseCPR(childArg)
	if err != nil {
		return usageError{errors.New("--child: not a valid CPR number")}
	}
	holderCPR, err := auth.ParseCPR(holderArg)
	if err != nil {
		return usageError{errors.New("--holder: not a valid CPR number")}
	}
	if childCPR == holderCPR {
		return usageError{errors.New("--child and --holder are the same person")}
	}
	t, err := existingTenant(ctx, db, tenantCode)
	if err != nil {
		return err
	}
	ctx = audit.WithActor(ctx, audit.Actor{Username: "system:cli", Role: "system", TenantID: t.ID})
	var left int
	err = postgres.InTenant(ctx, db.pool, t.ID, func(tx pgx.Tx) error {
		child, err := auth.FindPersonByCPR(ctx, tx, childCPR)
		if errors.Is(err, auth.ErrNotFound) {
			return fmt.Errorf("the child is not in the register of %s", t.Name)
		} else if err != nil {
			return err
		}
		holder, err := auth.FindPersonByCPR(ctx, tx, holderCPR)
		if errors.Is(err, auth.ErrNotFound) {
			return fmt.Errorf("the holder is not in the register of %s", t.Name)
		} else if err != nil {
			return err
		}
		err = endCustody(ctx, tx, holder.ID, child.ID, "molar register end-custody")
		if errors.Is(err, auth.ErrNotFound) {
			return errors.New("the holder has no custody of the child (nothing was changed)")
		} else if err != nil {
			return err
		}
		holders, err := auth.CustodyHolders(ctx, tx, child.ID)
		left = len(holders)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ended 1 custody relation in %s; the child has %d custody holders left\n", t.Name, left)
	return nil
}

// endCustody removes a custody relation and audits it on the child (it
// shows in the child's access log), in the tenant transaction tx.
func endCustody(ctx context.Context, tx pgx.Tx, holder, child int64, source string) error {
	if err := auth.RemoveCustody(ctx, tx, holder, child); err != nil {
		return err
	}
	return audit.Record(ctx, tx, audit.Event{Action: audit.ActionDelete, PersonID: child, Object: fmt.Sprintf("auth.custody/%d", child),
		Detail: map[string]any{"holder_person_id": holder, "source": source}})
}

// registerRow is one line of a register extract.
type registerRow struct {
	line                             int
	cpr                              auth.CPR
	given, family, addr, phone, mail string
	holders                          []auth.CPR
	custodyListed                    bool // the row has a custody_holders field: holders is the complete list
	careUnit, careKind               string
}

// registerColumns are the columns a register extract may have; cpr is
// required. custody_holders lists CPR numbers separated by spaces or |.
var registerColumns = []string{"cpr", "given_name", "family_name", "address", "phone", "email", "custody_holders", "care_unit", "care_kind"}

// readRegisterCSV reads a register extract: a header row naming columns
// (any order, case-insensitive), comma- or semicolon-separated (as Danish
// spreadsheets write it). Errors name the line, never the CPR number.
func readRegisterCSV(r io.Reader) ([]registerRow, error) {
	const maxSize = 256 << 20
	data, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("larger than %d MiB: split it", maxSize>>20)
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	first, _, _ := strings.Cut(text, "\n")
	cr := csv.NewReader(strings.NewReader(text))
	if strings.Count(first, ";") > strings.Count(first, ",") {
		cr.Comma = ';'
	}
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("no header row: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, c := range registerColumns {
			known = known || c == h
		}
		if !known {
			return nil, fmt.Errorf("line 1: unknown column %q (known: %s)", h, strings.Join(registerColumns, ", "))
		}
		col[h] = i
	}
	if _, ok := col["cpr"]; !ok {
		return nil, errors.New("line 1: the header has no cpr column")
	}
	var rows []registerRow
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: %w", pe.Line, pe.Err)
			}
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) > len(header) {
			return nil, fmt.Errorf("line %d: more fields than the header (a separator inside a field needs quotes)", line)
		}
		for _, f := range rec {
			if !utf8.ValidString(f) {
				return nil, fmt.Errorf("line %d: not UTF-8 text (save the file as \"CSV UTF-8\")", line)
			}
		}
		get := func(c string) string {
			if i, ok := col[c]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if strings.Join(rec, "") == "" {
			continue
		}
		// A row cut short before its custody_holders field (some exports
		// drop trailing empty cells) does not state its custody holders.
		ci, custodyListed := col["custody_holders"]
		custodyListed = custodyListed && ci < len(rec)
		row := registerRow{line: line, custodyListed: custodyListed, given: get("given_name"), family: get("family_name"), addr: get("address"),
			phone: get("phone"), mail: get("email"), careUnit: get("care_unit"), careKind: get("care_kind")}
		if row.cpr, err = auth.ParseCPR(get("cpr")); err != nil {
			return nil, fmt.Errorf("line %d: not a valid CPR number", line)
		}
		if prev, dup := seen[row.cpr.Digits()]; dup {
			return nil, fmt.Errorf("line %d: the same CPR number as line %d", line, prev)
		}
		seen[row.cpr.Digits()] = line
		for _, h := range strings.FieldsFunc(get("custody_holders"), func(r rune) bool { return r == ' ' || r == '|' }) {
			c, err := auth.ParseCPR(h)
			if err != nil {
				return nil, fmt.Errorf("line %d: custody_holders: not a valid CPR number", line)
			}
			if c == row.cpr {
				return nil, fmt.Errorf("line %d: a person cannot hold custody of themselves", line)
			}
			row.holders = append(row.holders, c)
		}
		if row.careKind != "" && row.careUnit == "" {
			return nil, fmt.Errorf("line %d: care_kind without care_unit", line)
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, errors.New("no rows after the header")
	}
	return rows, nil
}

type registerResult struct{ created, updated, custody, custodyRemoved, care int }

// importRegister applies rows in the tenant transaction tx: persons are
// created or their names and contact details updated (by CPR number), then
// custody and care relations are added where missing. Without syncCustody
// nothing is removed: an extract's silence ends neither custody nor care.
// With syncCustody the extract is authoritative for custody of the persons
// it lists (as the CPR register is): a listed person's custody holders that
// are not in its custody_holders cell lose custody. Persons not listed keep
// theirs; care relations are never ended here.
func importRegister(ctx context.Context, tx pgx.Tx, tenantID int64, rows []registerRow, syncCustody bool) (registerResult, error) {
	var res registerResult
	ids := map[string]int64{}
	for _, r := range rows {
		p, err := auth.FindPersonByCPR(ctx, tx, r.cpr)
		switch {
		case errors.Is(err, auth.ErrNotFound):
			p, err = auth.CreatePerson(ctx, tx, auth.Person{TenantID: tenantID, CPR: r.cpr, GivenName: r.given, FamilyName: r.family,
				Address: r.addr, Phone: r.phone, Email: r.mail})
			if err != nil {
				return res, fmt.Errorf("line %d: %w", r.line, err)
			}
			if err := recordRegister(ctx, tx, audit.ActionCreate, p.ID, fmt.Sprintf("auth.person/%d", p.ID), nil); err != nil {
				return res, err
			}
			res.created++
		case err != nil:
			return res, fmt.Errorf("line %d: %w", r.line, err)
		default:
			changed, err := updatePerson(ctx, tx, p, r)
			if err != nil {
				return res, fmt.Errorf("line %d: %w", r.line, err)
			}
			if changed {
				if err := recordRegister(ctx, tx, audit.ActionUpdate, p.ID, fmt.Sprintf("auth.person/%d", p.ID), nil); err != nil {
					return res, err
				}
				res.updated++
			}
		}
		ids[r.cpr.Digits()] = p.ID
	}
	units := map[string]auth.OrgUnit{}
	for _, r := range rows {
		child := ids[r.cpr.Digits()]
		if len(r.holders) > 0 || syncCustody {
			have, err := auth.CustodyHolders(ctx, tx, child)
			if err != nil {
				return res, fmt.Errorf("line %d: %w", r.line, err)
			}
			var listed []int64
			for _, h := range r.holders {
				holder, ok := ids[h.Digits()]
				if !ok {
					p, err := auth.FindPersonByCPR(ctx, tx, h)
					if err != nil {
						return res, fmt.Errorf("line %d: custody holder not in the register or the file: %w", r.line, err)
					}
					holder = p.ID
				}
				listed = append(listed, holder)
				if containsID(have, holder) {
					continue
				}
				if err := auth.AddCustody(ctx, tx, tenantID, holder, child); err != nil {
					return res, fmt.Errorf("line %d: %w", r.line, err)
				}
				if err := recordRegister(ctx, tx, audit.ActionCreate, child, fmt.Sprintf("auth.custody/%d", child),
					map[string]any{"holder_person_id": holder}); err != nil {
					return res, err
				}
				have = append(have, holder)
				res.custody++
			}
			if syncCustody {
				for _, holder := range have {
					if containsID(listed, holder) {
						continue
					}
					if err := endCustody(ctx, tx, holder, child, "register import"); err != nil {
						return res, fmt.Errorf("line %d: %w", r.line, err)
					}
					res.custodyRemoved++
				}
			}
		}
		if r.careUnit != "" {
			u, ok := units[strings.ToLower(r.careUnit)]
			if !ok {
				var err error
				if u, err = unitByName(ctx, tx, tenantID, r.careUnit); err != nil {
					// Not the cell itself: a shifted column could put a CPR number there.
					return res, fmt.Errorf("line %d: care_unit names no unit of this municipality (molar unit list shows them)", r.line)
				}
				units[strings.ToLower(r.careUnit)] = u
			}
			kind := r.careKind
			if kind == "" {
				kind = defaultCareKind(u.Kind)
			}
			active, err := auth.HasCareRelation(ctx, tx, child, u.ID, kind)
			if err != nil {
				return res, fmt.Errorf("line %d: %w", r.line, err)
			}
			if !active {
				c, err := auth.AddCareRelation(ctx, tx, auth.CareRelation{TenantID: tenantID, OrgUnitID: u.ID, PersonID: child, Kind: kind})
				if err != nil {
					return res, fmt.Errorf("line %d: %w", r.line, err)
				}
				if err := recordRegister(ctx, tx, audit.ActionCreate, child, fmt.Sprintf("auth.care_relation/%d", c.ID),
					map[string]any{"org_unit_id": u.ID, "kind": kind}); err != nil {
					return res, err
				}
				res.care++
			}
		}
	}
	return res, nil
}

// recordRegister audits one change of the import to a person (it shows in
// the person's access log).
func recordRegister(ctx context.Context, tx pgx.Tx, action audit.Action, personID int64, object string, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["source"] = "register import"
	return audit.Record(ctx, tx, audit.Event{Action: action, PersonID: personID, Object: object, Detail: detail})
}

// updatePerson brings a person's names and contact details up to date with
// the extract (empty cells leave a value alone).
func updatePerson(ctx context.Context, tx pgx.Tx, p auth.Person, r registerRow) (bool, error) {
	pick := func(cur, v string) string {
		if v == "" {
			return cur
		}
		return v
	}
	given, family := pick(p.GivenName, r.given), pick(p.FamilyName, r.family)
	addr, phone, mail := pick(p.Address, r.addr), pick(p.Phone, r.phone), pick(p.Email, r.mail)
	if given == p.GivenName && family == p.FamilyName && addr == p.Address && phone == p.Phone && mail == p.Email {
		return false, nil
	}
	if err := auth.UpdatePersonName(ctx, tx, p.ID, given, family); err != nil {
		return false, err
	}
	return true, auth.UpdatePersonContact(ctx, tx, p.ID, addr, phone, mail)
}

// defaultCareKind is the care relation a unit of this kind gives.
func defaultCareKind(unitKind string) string {
	switch unitKind {
	case "dental_clinic":
		return "dental"
	case "home_care":
		return "home_care"
	}
	return "care"
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
