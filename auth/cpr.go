package auth

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Copenhagen even where the system has no zoneinfo
)

// CPRSystem is the FHIR identifier system of Danish CPR numbers.
const CPRSystem = "urn:oid:1.2.208.176.1.2"

// CPR is a Danish civil registration number (personnummer), held as its ten
// digits. Formatting it with %v, %s, %#v or logging it with log/slog prints a
// mask: use Digits or Formatted where the number itself is needed (database
// queries, the screen of someone allowed to see it).
//
// Validation follows the CPR office's rules: ten digits whose first six are a
// real date, the century taken from the seventh digit. Since 2007 numbers are
// issued that fail the modulus 11 check, so that check is never applied
// (CPR-kontoret, "Personnummeret i CPR", 2008).
type CPR struct{ digits string }

// ParseCPR accepts "DDMMYY-SSSS" or "DDMMYYSSSS" (surrounding space ignored).
// The error never contains the number.
func ParseCPR(s string) (CPR, error) {
	s = strings.TrimSpace(s)
	if len(s) == 11 && s[6] == '-' {
		s = s[:6] + s[7:]
	}
	if len(s) != 10 {
		return CPR{}, fmt.Errorf("%w: want DDMMYY-SSSS", ErrInvalidCPR)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return CPR{}, fmt.Errorf("%w: want DDMMYY-SSSS", ErrInvalidCPR)
		}
	}
	c := CPR{digits: s}
	if _, ok := c.birthDate(); !ok {
		return CPR{}, fmt.Errorf("%w: the first six digits are not a date", ErrInvalidCPR)
	}
	return c, nil
}

// IsZero reports whether c is the zero value (no number).
func (c CPR) IsZero() bool { return c.digits == "" }

// Digits returns the ten digits without a hyphen (the stored, searchable form).
func (c CPR) Digits() string { return c.digits }

// Formatted returns "DDMMYY-SSSS".
func (c CPR) Formatted() string {
	if c.digits == "" {
		return ""
	}
	return c.digits[:6] + "-" + c.digits[6:]
}

// String returns a mask, so that a CPR number printed by mistake does not leak.
func (c CPR) String() string {
	if c.digits == "" {
		return ""
	}
	return "xxxxxx-xxxx"
}

// GoString masks the number in %#v.
func (c CPR) GoString() string { return "auth.CPR{" + c.String() + "}" }

// LogValue masks the number in log/slog output.
func (c CPR) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalText masks the number too: CPR numbers are serialised deliberately
// with Digits or Formatted, never by an encoder (JSON, logs) that happens to
// meet one.
func (c CPR) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// BirthDate returns the date of birth (UTC midnight).
func (c CPR) BirthDate() time.Time {
	d, _ := c.birthDate()
	return d
}

// Sex returns "male" for an odd last digit and "female" for an even one.
func (c CPR) Sex() string {
	if c.digits == "" {
		return ""
	}
	if (c.digits[9]-'0')%2 == 1 {
		return SexMale
	}
	return SexFemale
}

// Values of Person.Sex.
const (
	SexMale    = "male"
	SexFemale  = "female"
	SexUnknown = "unknown"
)

func (c CPR) birthDate() (time.Time, bool) {
	if len(c.digits) != 10 {
		return time.Time{}, false
	}
	num := func(i int) int { return int(c.digits[i]-'0')*10 + int(c.digits[i+1]-'0') }
	day, month, yy := num(0), num(2), num(4)
	year := cprCentury(int(c.digits[6]-'0'), yy) + yy
	if month < 1 || month > 12 || day < 1 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if t.Day() != day || int(t.Month()) != month { // e.g. 30 February rolls over
		return time.Time{}, false
	}
	return t, true
}

// cprCentury gives the century of the birth year from the seventh digit and
// the two-digit year, per the CPR office's table:
//
//	digit 7   YY 00–36   YY 37–57   YY 58–99
//	0–3       1900       1900       1900
//	4, 9      2000       1900       1900
//	5–8       2000       2000       1800
func cprCentury(d7, yy int) int {
	switch {
	case d7 <= 3:
		return 1900
	case d7 == 4 || d7 == 9:
		if yy <= 36 {
			return 2000
		}
		return 1900
	default: // 5–8
		if yy <= 57 {
			return 2000
		}
		return 1800
	}
}

// AgeAt returns the age in completed years at the date of at, for someone born
// on birth. Both are taken as calendar dates. Someone born on 29 February
// turns a year older on 1 March in years without that day.
func AgeAt(birth, at time.Time) int {
	by, bm, bd := birth.Date()
	ay, am, ad := at.Date()
	age := ay - by
	if am < bm || (am == bm && ad < bd) {
		age--
	}
	return age
}

// Copenhagen is the time zone that Danish age and date rules use.
var Copenhagen = mustLoadLocation("Europe/Copenhagen")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

// DateIn returns the calendar date of t in loc as UTC midnight.
func DateIn(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
