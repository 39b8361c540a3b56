// Package query is Molar's one matcher over the DICOM index: C-FIND
// (patient root and study root, every level) and QIDO-RS build a Query and
// Run it inside the tenant's transaction.
//
// Matching (PS3.4 C.2.2.2): single value; wildcards * and ?; date, time
// and date-time ranges (a-b, -b, a-); UID lists (and value lists, \ or
// comma separated); universal matching (empty value: return key only);
// sequence matching for the Primary Anatomic Structure Sequence (tooth
// codes); person names case-insensitive, and with Fuzzy Danish-aware
// (index.FuzzyKey: æ/ae, ø/oe, å/aa; each word of the query is a prefix
// of a word of the name, in any order). Attributes without a column are
// returned from the stored attributes (DICOM JSON) and at the image level
// may be matched by single value.
package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/index"
	"github.com/molar-health/molar/dicom/ingest"
)

// Level is a query/retrieve level.
type Level int

const (
	Patient Level = iota
	Study
	Series
	Image
)

func (l Level) String() string {
	return [...]string{"PATIENT", "STUDY", "SERIES", "IMAGE"}[l]
}

// ParseLevel parses a Query/Retrieve Level value.
func ParseLevel(s string) (Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "PATIENT":
		return Patient, nil
	case "STUDY":
		return Study, nil
	case "SERIES":
		return Series, nil
	case "IMAGE", "INSTANCE":
		return Image, nil
	}
	return 0, fmt.Errorf("%w: query/retrieve level %q", ErrInvalid, s)
}

// ErrInvalid: the query cannot be run as given (A900/C000 in C-FIND, 400 in QIDO).
var ErrInvalid = errors.New("query: invalid query")

// Key is one attribute of a query: a matching key when Value (or Items)
// is set, a return key otherwise.
type Key struct {
	Tag header.Tag
	// Value is the matching value decoded to UTF-8 (DICOM syntax: * ?
	// wildcards, a-b ranges, \ lists).
	Value string
	// Items are the items of a sequence key.
	Items []*header.Dataset
}

// Query is a parsed C-FIND identifier or QIDO-RS request.
type Query struct {
	Level Level
	// Keys in request order (matching and return keys).
	Keys []Key
	// Fuzzy enables fuzzy person-name matching (QIDO fuzzymatching=true).
	Fuzzy bool
	// Limit and Offset page the matches (0 Limit = no limit).
	Limit, Offset int
	// PatientRoot restricts study-level queries to the patient root
	// hierarchy (no effect on matching; kept for responses).
	PatientRoot bool
	// All returns every column the level has (QIDO's default set) in
	// addition to Keys.
	All bool
}

// Match is one result: the values of the requested attributes (DICOM
// string syntax, UTF-8), the row ids, and sequences.
type Match struct {
	Level      Level
	PatientRef int64
	StudyRef   int64
	SeriesRef  int64
	InstanceID int64
	Values     map[header.Tag]string
	Sequences  map[header.Tag][]*header.Dataset
	// Attrs holds the other attributes (DICOM JSON) when requested.
	attrs json.RawMessage
}

// FromDataset reads a C-FIND identifier.
func FromDataset(d *header.Dataset) (*Query, error) {
	lvl, err := ParseLevel(d.Get(TagQueryRetrieveLevel))
	if err != nil {
		return nil, err
	}
	q := &Query{Level: lvl}
	for _, e := range d.Elements {
		switch {
		case e.Tag == TagQueryRetrieveLevel, e.Tag == TagSpecificCharacterSet, e.Tag.Group() == 0x0002, e.Tag.Element() == 0:
			continue
		}
		k := Key{Tag: e.Tag}
		if e.IsSequence() {
			k.Items = e.Items
		} else {
			k.Value = d.Get(e.Tag)
			if e.VR == "UI" {
				k.Value = d.UID(e.Tag)
			}
		}
		q.Keys = append(q.Keys, k)
	}
	return q, nil
}

// builder accumulates SQL.
type builder struct {
	args []any
}

func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

// likePattern converts a DICOM wildcard value to a LIKE pattern; ok is
// false when the value has no wildcard.
func likePattern(v string) (string, bool) {
	if !strings.ContainsAny(v, "*?") {
		return v, false
	}
	var b strings.Builder
	for _, r := range v {
		switch r {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String(), true
}

// splitList splits a value list: DICOM's backslash, and QIDO-RS's comma
// (PS3.18 8.3.4.1), for values that cannot hold a comma (UIDs, code
// strings, numbers, dates and times).
func splitList(v string) []string {
	var out []string
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == '\\' || r == ',' }) {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// textCond matches col against a value list (OR), with wildcards.
func (b *builder) textCond(col string, values []string, lower bool) string {
	var ors []string
	var exact []string
	for _, v := range values {
		if lower {
			v = strings.ToLower(v)
		}
		if p, ok := likePattern(v); ok {
			if p == "%" {
				return "" // universal
			}
			ors = append(ors, col+" LIKE "+b.arg(p))
		} else {
			exact = append(exact, v)
		}
	}
	if len(exact) == 1 {
		ors = append(ors, col+" = "+b.arg(exact[0]))
	} else if len(exact) > 1 {
		ors = append(ors, col+" = ANY("+b.arg(exact)+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

func (b *builder) pnCond(a attr, value string, fuzzy bool) string {
	var ors []string
	for _, v := range splitPNList(value) {
		if fuzzy {
			words := strings.Fields(index.FuzzyKey(strings.NewReplacer("*", " ", "?", " ").Replace(v)))
			if len(words) == 0 {
				return ""
			}
			var ands []string
			for _, w := range words {
				ands = append(ands, "(' ' || "+a.fuzzy+") LIKE "+b.arg("% "+w+"%"))
			}
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
			continue
		}
		v = strings.ToLower(index.NormalizeName(v))
		if p, ok := likePattern(v); ok {
			if p == "%" {
				return ""
			}
			ors = append(ors, a.ci+" LIKE "+b.arg(p))
		} else {
			ors = append(ors, a.ci+" = "+b.arg(v))
		}
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

// splitValues splits a value list at backslashes only: a comma is part of a
// text value ("Bitewing, left").
func splitValues(v string) []string {
	return splitPNList(v)
}

func splitPNList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, `\`) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// dateValue parses YYYYMMDD (or YYYY-MM-DD) to a date.
func dateValue(s string) (time.Time, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), "-", "")
	s = strings.ReplaceAll(s, ".", "")
	if len(s) > 8 { // a DT value: its date part
		s = s[:8]
	}
	t, err := time.Parse("20060102", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: date %q", ErrInvalid, s)
	}
	return t, nil
}

func timeValue(s string) (string, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	frac := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i:]
	}
	if len(s) < 2 || len(s) > 6 || len(s)%2 != 0 {
		return "", fmt.Errorf("%w: time %q", ErrInvalid, s)
	}
	for _, c := range s + strings.TrimPrefix(frac, ".") {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("%w: time %q", ErrInvalid, s)
		}
	}
	s += strings.Repeat("0", 6-len(s))
	return s[0:2] + ":" + s[2:4] + ":" + s[4:6] + frac, nil
}

// rangeCond matches a date or time column against a value or range.
func (b *builder) rangeCond(col, value string, parse func(string) (any, error)) (string, error) {
	var ors []string
	for _, v := range splitList(value) {
		lo, hi, isRange := strings.Cut(v, "-")
		if kindIsDate(parse) && !isRange {
			// YYYY-MM-DD (QIDO) is a single date, not a range.
			if len(v) == 10 && v[4] == '-' && v[7] == '-' {
				lo, isRange = v, false
			}
		}
		if !isRange {
			x, err := parse(v)
			if err != nil {
				return "", err
			}
			ors = append(ors, col+" = "+b.arg(x))
			continue
		}
		var conds []string
		if lo != "" {
			x, err := parse(lo)
			if err != nil {
				return "", err
			}
			conds = append(conds, col+" >= "+b.arg(x))
		}
		if hi != "" {
			x, err := parse(hi)
			if err != nil {
				return "", err
			}
			if t, ok := x.(string); ok && len(t) == 8 && t[2] == ':' { // HH:MM:SS upper bound includes fractions
				x = t + ".999999"
			}
			conds = append(conds, col+" <= "+b.arg(x))
		}
		if len(conds) == 0 {
			return "", nil
		}
		ors = append(ors, "("+strings.Join(conds, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", nil
}

var dateParse = func(s string) (any, error) { return dateValue(s) }
var timeParse = func(s string) (any, error) {
	t, err := timeValue(s)
	return t, err
}

func kindIsDate(p func(string) (any, error)) bool {
	_, err := p("20000101")
	return err == nil
}

// condition builds the WHERE condition of one matching key ("" = universal).
func (b *builder) condition(q *Query, k Key) (string, error) {
	if !q.supported(k) {
		return "", nil // ignored; Unsupported reports it
	}
	a, ok := attrs[k.Tag]
	if !ok {
		if q.Level == Image && k.Items == nil {
			return b.storedCond(k)
		}
		return "", nil
	}
	if a.level > q.Level {
		return "", nil // a lower level's key: ignored (PS3.4 C.4.1.2.1)
	}
	if k.Items != nil {
		if a.kind != kTeeth {
			return "", nil
		}
		var teeth []string
		for _, it := range k.Items {
			v := it.Get(tagCodeValue)
			if v == "" || strings.ContainsAny(v, "*?") {
				continue
			}
			// An ISO 3950 number (with or without its scheme), or a code
			// ingest reads as one (SNOMED CT of CID 4018/4019).
			if ingest.ValidFDI(v) && !strings.EqualFold(strings.TrimSpace(it.Get(tagCodingSchemeDesignator)), "SCT") {
				teeth = append(teeth, v)
				continue
			}
			one := header.NewDataset()
			one.SetSequence(TagPrimaryAnatomic, it)
			if n := ingest.ToothCodes(one); len(n) > 0 {
				teeth = append(teeth, n...)
			} else {
				teeth = append(teeth, v) // matches nothing, as asked
			}
		}
		if len(teeth) == 0 {
			return "", nil
		}
		return "(" + a.col + " && " + b.arg(teeth) + "::text[])", nil
	}
	v := strings.TrimSpace(k.Value)
	if v == "" || v == "*" {
		return "", nil
	}
	switch a.kind {
	case kString:
		return b.textCond(a.col, splitValues(v), false), nil
	case kTS:
		return b.textCond(a.col, splitList(v), false), nil
	case kCI:
		return b.textCond(a.ci, splitValues(v), true), nil
	case kPN:
		return b.pnCond(a, v, q.Fuzzy), nil
	case kUID:
		list := splitList(v)
		if len(list) == 1 {
			return a.col + " = " + b.arg(list[0]), nil
		}
		return a.col + " = ANY(" + b.arg(list) + ")", nil
	case kDate:
		return b.rangeCond(a.col, v, dateParse)
	case kTime:
		return b.rangeCond(a.col, v, timeParse)
	case kInt:
		var ns []int64
		for _, s := range splitList(v) {
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				return "", fmt.Errorf("%w: integer %q", ErrInvalid, s)
			}
			ns = append(ns, n)
		}
		return a.col + " = ANY(" + b.arg(ns) + "::integer[])", nil
	case kArray:
		list := splitList(v)
		var pats []string
		var exact []string
		for _, s := range list {
			if p, ok := likePattern(s); ok {
				pats = append(pats, p)
			} else {
				exact = append(exact, s)
			}
		}
		var ors []string
		if len(exact) > 0 {
			ors = append(ors, a.col+" && "+b.arg(exact)+"::text[]")
		}
		for _, p := range pats {
			ors = append(ors, "EXISTS (SELECT 1 FROM unnest("+a.col+") m WHERE m LIKE "+b.arg(p)+")")
		}
		return "(" + strings.Join(ors, " OR ") + ")", nil
	}
	return "", nil
}

// Unsupported reports whether q has a matching key the matcher cannot
// apply and ignores (C-FIND answers with FF01 pendings then): attributes
// without a column above the IMAGE level, computed counts, sequences other
// than the tooth codes, time ranges on stored attributes.
func (q *Query) Unsupported() bool {
	for _, k := range q.Keys {
		if !q.supported(k) {
			return true
		}
	}
	return false
}

func (q *Query) supported(k Key) bool {
	a, indexed := attrs[k.Tag]
	if indexed && a.level > q.Level {
		return true // a lower level's key: ignored by the standard's rules
	}
	if k.Items != nil {
		return !itemsHaveValues(k.Items) || (indexed && a.kind == kTeeth)
	}
	v := strings.TrimSpace(k.Value)
	if v == "" || v == "*" {
		return true
	}
	if indexed {
		return a.kind != kCount
	}
	if q.Level != Image {
		return false
	}
	switch header.DictionaryVR(k.Tag) {
	case "TM", "DT":
		return !strings.Contains(v, "-")
	case "SQ":
		return false
	}
	return true
}

// itemsHaveValues reports whether sequence items hold a matching value.
func itemsHaveValues(items []*header.Dataset) bool {
	for _, it := range items {
		for _, e := range it.Elements {
			if e.IsSequence() {
				if itemsHaveValues(e.Items) {
					return true
				}
				continue
			}
			if v := strings.TrimSpace(strings.Trim(string(e.Value), "\x00 ")); v != "" && v != "*" {
				return true
			}
		}
	}
	return false
}

// latin1Upper are the upper-case letters of Latin-1 beyond ASCII.
const latin1Upper = "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞ"

// storedCond matches an attribute without a column in the stored
// attributes (DICOM JSON) of the instance: any of its values matches any
// of the key's values; wildcards; person names (their alphabetic group)
// case-insensitive; date ranges.
func (b *builder) storedCond(k Key) (string, error) {
	v := strings.TrimSpace(k.Value)
	if v == "" || v == "*" {
		return "", nil
	}
	tag := b.arg(fmt.Sprintf("%08X", uint32(k.Tag)))
	elem := "coalesce(e ->> 'Alphabetic', e #>> '{}')"
	vr := header.DictionaryVR(k.Tag)
	var cond string
	switch vr {
	case "DA":
		var err error
		cond, err = b.rangeCond(elem, v, func(s string) (any, error) {
			t, err := dateValue(s)
			if err != nil {
				return nil, err
			}
			return t.Format("20060102"), nil
		})
		if err != nil || cond == "" {
			return cond, err
		}
	case "PN":
		// lower() of the C locale folds ASCII only: Latin-1 letters first.
		elem = "lower(translate(" + elem + ", " + b.arg(latin1Upper) + ", " + b.arg(strings.ToLower(latin1Upper)) + "))"
		cond = b.textCond(elem, splitPNList(strings.ToLower(v)), false)
	default:
		cond = b.textCond(elem, splitValues(v), false)
	}
	if cond == "" {
		return "", nil
	}
	return "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(i.attrs -> " + tag + " -> 'Value') = 'array' THEN i.attrs -> " +
		tag + " -> 'Value' END) e WHERE " + cond + ")", nil
}

func fromClause(l Level) string {
	switch l {
	case Patient:
		return " FROM dicom.patient p"
	case Study:
		return " FROM dicom.study s JOIN dicom.patient p ON p.id = s.patient_ref"
	case Series:
		return " FROM dicom.series se JOIN dicom.study s ON s.id = se.study_ref JOIN dicom.patient p ON p.id = s.patient_ref"
	}
	return " FROM dicom.instance i JOIN dicom.series se ON se.id = i.series_ref JOIN dicom.study s ON s.id = i.study_ref JOIN dicom.patient p ON p.id = s.patient_ref"
}

// uniqueKeys are always returned at a level (PS3.4 C.4.1.1.3.2).
func uniqueKeys(l Level) []header.Tag {
	switch l {
	case Patient:
		return []header.Tag{TagPatientID}
	case Study:
		return []header.Tag{TagStudyInstanceUID}
	case Series:
		return []header.Tag{TagStudyInstanceUID, TagSeriesInstanceUID}
	}
	return []header.Tag{TagStudyInstanceUID, TagSeriesInstanceUID, TagSOPInstanceUID}
}

// DefaultKeys are the attributes QIDO-RS returns by default at a level
// (PS3.18 Table 6.7.1-2 and following), all answerable from columns.
func DefaultKeys(l Level) []header.Tag {
	switch l {
	case Patient:
		return []header.Tag{TagPatientName, TagPatientID, TagPatientBirthDate, TagPatientSex, TagNumPatientStudies}
	case Study:
		return []header.Tag{TagStudyDate, TagStudyTime, TagAccessionNumber, TagModalitiesInStudy, TagReferringPhysician,
			TagPatientName, TagPatientID, TagPatientBirthDate, TagPatientSex, TagStudyInstanceUID, TagStudyID,
			TagStudyDescription, TagNumStudySeries, TagNumStudyInstances}
	case Series:
		return []header.Tag{TagModality, TagSeriesDescription, TagSeriesInstanceUID, TagSeriesNumber, TagNumSeriesInstances,
			TagBodyPartExamined, TagStudyInstanceUID}
	}
	return []header.Tag{TagSOPClassUID, TagSOPInstanceUID, TagInstanceNumber, TagRows, TagColumns, TagNumberOfFrames,
		TagStudyInstanceUID, TagSeriesInstanceUID}
}

func levelIDCols(l Level) string {
	switch l {
	case Patient:
		return "p.id, 0::bigint, 0::bigint, 0::bigint"
	case Study:
		return "p.id, s.id, 0::bigint, 0::bigint"
	case Series:
		return "p.id, s.id, se.id, 0::bigint"
	}
	return "p.id, s.id, se.id, i.id"
}

func orderBy(l Level) string {
	switch l {
	case Patient:
		return " ORDER BY p.id"
	case Study:
		return " ORDER BY s.id"
	case Series:
		return " ORDER BY se.study_ref, se.series_number NULLS LAST, se.id"
	}
	return " ORDER BY i.series_ref, i.instance_number NULLS LAST, i.id"
}

// Run executes the query in q (a tenant transaction) and calls emit for
// each match in a stable order; emit's error stops the run and is returned.
func (q *Query) Run(ctx context.Context, db index.Querier, emit func(*Match) error) error {
	b := &builder{}
	var where []string
	for _, k := range q.Keys {
		c, err := b.condition(q, k)
		if err != nil {
			return err
		}
		if c != "" && c != "()" {
			where = append(where, c)
		}
	}
	// Columns to return.
	type col struct {
		tag  header.Tag
		kind kind
	}
	var cols []col
	seen := map[header.Tag]bool{}
	add := func(t header.Tag) {
		if seen[t] {
			return
		}
		a, ok := attrs[t]
		if !ok || a.level > q.Level || a.kind == kTeeth {
			return
		}
		seen[t] = true
		cols = append(cols, col{t, a.kind})
	}
	for _, t := range uniqueKeys(q.Level) {
		add(t)
	}
	if q.All {
		for _, t := range DefaultKeys(q.Level) {
			add(t)
		}
	}
	// includefield=all of instances returns every stored attribute.
	needAttrs := q.All && q.Level == Image
	teeth := false
	for _, k := range q.Keys {
		add(k.Tag)
		if k.Tag == TagPrimaryAnatomic && q.Level == Image {
			teeth = true
			continue
		}
		if a, ok := attrs[k.Tag]; !ok || a.level > q.Level {
			if _, ok := attrs[k.Tag]; !ok {
				needAttrs = true
			}
		}
	}
	var sel []string
	for _, c := range cols {
		a := attrs[c.tag]
		switch c.kind {
		case kDate:
			sel = append(sel, "coalesce(to_char("+a.col+", 'YYYYMMDD'), '')")
		case kTime:
			sel = append(sel, "coalesce(replace("+a.col+"::text, ':', ''), '')")
		case kInt, kCount:
			sel = append(sel, "coalesce("+a.col+"::text, '')")
		case kArray:
			sel = append(sel, "array_to_string("+a.col+", '\\')")
		default:
			sel = append(sel, a.col)
		}
	}
	if teeth {
		sel = append(sel, "array_to_string(i.tooth_codes, ',')")
	}
	if needAttrs {
		switch q.Level {
		case Image:
			sel = append(sel, "i.attrs")
		case Series:
			sel = append(sel, "(SELECT x.attrs FROM dicom.instance x WHERE x.series_ref = se.id ORDER BY x.id LIMIT 1)")
		case Study:
			sel = append(sel, "(SELECT x.attrs FROM dicom.instance x WHERE x.study_ref = s.id ORDER BY x.id LIMIT 1)")
		default:
			sel = append(sel, "(SELECT x.attrs FROM dicom.instance x JOIN dicom.study y ON y.id = x.study_ref WHERE y.patient_ref = p.id ORDER BY x.id LIMIT 1)")
		}
	}
	sqlText := "SELECT " + levelIDCols(q.Level)
	if len(sel) > 0 {
		sqlText += ", " + strings.Join(sel, ", ")
	}
	sqlText += fromClause(q.Level)
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	sqlText += orderBy(q.Level)
	if q.Limit > 0 {
		sqlText += " LIMIT " + strconv.Itoa(q.Limit)
	}
	if q.Offset > 0 {
		sqlText += " OFFSET " + strconv.Itoa(q.Offset)
	}
	rows, err := db.Query(ctx, sqlText, b.args...)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m := &Match{Level: q.Level, Values: make(map[header.Tag]string, len(cols))}
		dest := []any{&m.PatientRef, &m.StudyRef, &m.SeriesRef, &m.InstanceID}
		vals := make([]string, len(cols))
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var teethStr string
		if teeth {
			dest = append(dest, &teethStr)
		}
		var raw []byte
		if needAttrs {
			dest = append(dest, &raw)
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("query: %w", err)
		}
		for i, c := range cols {
			m.Values[c.tag] = vals[i]
		}
		if teeth {
			m.Sequences = map[header.Tag][]*header.Dataset{TagPrimaryAnatomic: toothItems(teethStr)}
		}
		m.attrs = raw
		if err := emit(m); err != nil {
			rows.Close()
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	return nil
}

// toothItems renders tooth codes as Primary Anatomic Structure Sequence
// items (ISO 3950 coding scheme).
func toothItems(s string) []*header.Dataset {
	var out []*header.Dataset
	for _, t := range strings.Split(s, ",") {
		if t == "" {
			continue
		}
		it := header.NewDataset()
		it.SetString(tagCodeValue, "SH", t)
		it.SetString(tagCodingSchemeDesignator, "SH", "ISO3950")
		it.SetString(tagCodeMeaning, "LO", "Tooth "+t)
		out = append(out, it)
	}
	return out
}

// RawAttrs returns the stored attributes of the match as DICOM JSON
// elements by tag ("00080070"); nil when none were loaded (no requested
// key needed them).
func (m *Match) RawAttrs() map[string]json.RawMessage {
	if len(m.attrs) == 0 {
		return nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(m.attrs, &all); err != nil {
		return nil
	}
	return all
}

// Attr returns a stored attribute of the match (from the DICOM JSON
// attributes) as a DICOM string value; ok is false when absent.
func (m *Match) Attr(t header.Tag) (vr, value string, items []map[string]json.RawMessage, ok bool) {
	if len(m.attrs) == 0 {
		return "", "", nil, false
	}
	var all map[string]struct {
		VR    string            `json:"vr"`
		Value []json.RawMessage `json:"Value"`
	}
	if err := json.Unmarshal(m.attrs, &all); err != nil {
		return "", "", nil, false
	}
	e, found := all[fmt.Sprintf("%08X", uint32(t))]
	if !found {
		return "", "", nil, false
	}
	if e.VR == "SQ" {
		for _, v := range e.Value {
			var item map[string]json.RawMessage
			if json.Unmarshal(v, &item) == nil {
				items = append(items, item)
			}
		}
		return e.VR, "", items, true
	}
	parts := make([]string, len(e.Value))
	for i, v := range e.Value {
		var s string
		var pn struct{ Alphabetic string }
		switch {
		case json.Unmarshal(v, &s) == nil:
			parts[i] = s
		case e.VR == "PN" && json.Unmarshal(v, &pn) == nil:
			parts[i] = pn.Alphabetic
		case string(v) == "null":
		default:
			parts[i] = string(v)
		}
	}
	return e.VR, strings.Join(parts, `\`), nil, true
}

// Tx runs fn in the tenant's read transaction.
type Tx = pgx.Tx
