package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func mod11OK(digits string) bool {
	w := []int{4, 3, 2, 7, 6, 5, 4, 3, 2, 1}
	sum := 0
	for i := range 10 {
		sum += int(digits[i]-'0') * w[i]
	}
	return sum%11 == 0
}

func TestParseCPR(t *testing.T) {
	valid := []struct {
		in    string
		birth time.Time
		sex   string
	}{
		{"010190-1233", date(1990, 1, 1), SexMale},
		{"0101901234", date(1990, 1, 1), SexFemale},
		{" 311299-0001 ", date(1999, 12, 31), SexMale},
		// Digit 7 = 0–3: always 1900s.
		{"150536-3000", date(1936, 5, 15), SexFemale},
		{"150580-2001", date(1980, 5, 15), SexMale},
		// Digit 7 = 4 or 9: 2000–2036, else 1937–1999.
		{"010100-4000", date(2000, 1, 1), SexFemale},
		{"010136-4000", date(2036, 1, 1), SexFemale},
		{"010137-4000", date(1937, 1, 1), SexFemale},
		{"010136-9000", date(2036, 1, 1), SexFemale},
		{"010137-9001", date(1937, 1, 1), SexMale},
		// Digit 7 = 5–8: 2000–2057, else 1858–1899.
		{"010157-5000", date(2057, 1, 1), SexFemale},
		{"010158-5000", date(1858, 1, 1), SexFemale},
		{"010110-8000", date(2010, 1, 1), SexFemale},
		{"010199-6000", date(1899, 1, 1), SexFemale},
		// Leap days: 2000 is a leap year (digit 7 = 4 gives 2000).
		{"290200-4000", date(2000, 2, 29), SexFemale},
		{"290296-1000", date(1996, 2, 29), SexFemale},
	}
	for _, tc := range valid {
		t.Run("valid "+tc.in, func(t *testing.T) {
			c, err := ParseCPR(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.birth, c.BirthDate())
			require.Equal(t, tc.sex, c.Sex())
			require.Len(t, c.Digits(), 10)
			require.Equal(t, c.Digits()[:6]+"-"+c.Digits()[6:], c.Formatted())
		})
	}

	// A number issued after 2007 need not pass modulus 11: it must be accepted.
	const noMod11 = "0101901234"
	require.False(t, mod11OK(noMod11), "test data must fail modulus 11")
	_, err := ParseCPR(noMod11)
	require.NoError(t, err, "never reject a CPR number for failing modulus 11")

	invalid := []string{
		"",
		"010190123",    // 9 digits
		"01019012345",  // 11 digits
		"010190-12345", // too long
		"01019-01234",  // hyphen in the wrong place
		"010190 1234",  // space
		"O10190-1234",  // letter
		"010190-123X",  // letter
		"310490-1234",  // 31 April
		"300290-1234",  // 30 February
		"290290-1234",  // 29 February 1990
		"290200-1234",  // 29 February 1900 (digit 7 = 1): not a leap year
		"000190-1234",  // day 0
		"011390-1234",  // month 13
		"010090-1234",  // month 0
		"320190-1234",  // day 32
		"１０１９０-1234",   // full-width digits
	}
	for _, in := range invalid {
		t.Run("invalid "+in, func(t *testing.T) {
			_, err := ParseCPR(in)
			require.ErrorIs(t, err, ErrInvalidCPR)
			if len(in) >= 6 {
				require.NotContains(t, err.Error(), in[:6], "errors never echo the number")
			}
		})
	}
}

func TestCPRNeverPrinted(t *testing.T) {
	c, err := ParseCPR("010190-1233")
	require.NoError(t, err)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "cpr", c, "person", Person{CPR: c})
	js, err := json.Marshal(struct{ C CPR }{c})
	require.NoError(t, err)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%v %s %+v %#v", c, c, c, c), fmt.Sprintf("%v %+v", Person{CPR: c}, &Person{CPR: c}), buf.String(), string(js)} {
		require.NotContains(t, out, "010190", out)
		require.NotContains(t, out, "1233", out)
	}
	require.Equal(t, "010190-1233", c.Formatted())
}

func TestAgeAt(t *testing.T) {
	cases := []struct {
		birth, at time.Time
		age       int
	}{
		{date(2010, 6, 15), date(2025, 6, 14), 14},
		{date(2010, 6, 15), date(2025, 6, 15), 15},
		{date(2010, 6, 15), date(2025, 6, 16), 15},
		{date(2010, 12, 31), date(2025, 1, 1), 14},
		{date(2008, 2, 29), date(2023, 2, 28), 14},
		{date(2008, 2, 29), date(2023, 3, 1), 15},
		{date(2008, 2, 29), date(2024, 2, 29), 16},
		{date(2025, 1, 1), date(2025, 1, 1), 0},
	}
	for _, tc := range cases {
		require.Equal(t, tc.age, AgeAt(tc.birth, tc.at), "%s at %s", tc.birth.Format(time.DateOnly), tc.at.Format(time.DateOnly))
	}
	// Dates are taken in Copenhagen: 23:30 UTC on 14 June is already 15 June there.
	at := time.Date(2025, 6, 14, 23, 30, 0, 0, time.UTC)
	require.Equal(t, 15, AgeAt(date(2010, 6, 15), DateIn(at, Copenhagen)))
	require.True(t, strings.HasPrefix(Copenhagen.String(), "Europe/"))
}

func TestSafeNext(t *testing.T) {
	cases := map[string]string{
		"":                              "/",
		"/":                             "/",
		"/viewer/study/1?x=2#top":       "/viewer/study/1?x=2#top",
		"//evil.example":                "/",
		"/\\evil.example":               "/",
		"https://evil.example/":         "/",
		"javascript:alert(1)":           "/",
		"evil.example":                  "/",
		"/ok\r\nLocation: x":            "/",
		"/%2F%2Fevil.example":           "/%2F%2Fevil.example",
		"\\\\evil.example":              "/",
		"/a\\b":                         "/",
		"http:/evil.example":            "/",
		"/" + strings.Repeat("a", 3000): "/",
	}
	for in, want := range cases {
		require.Equal(t, want, SafeNext(in), "%q", in)
	}
}

func TestRolesAndPermissions(t *testing.T) {
	for _, r := range []string{RoleDentist, RoleDentalAssistant, RoleClinicAdmin, RoleHomeCarer, RoleNurse, RoleTherapist,
		RoleHealthVisitor, RoleCaseWorker, RoleManager, RoleSystemAdmin, RoleCitizen} {
		require.True(t, ValidRole(r), r)
	}
	p := &Principal{Role: RoleDentist}
	require.True(t, p.Can(PermJournalSign))
	require.False(t, p.Can(PermAdminUsers))
	require.False(t, (&Principal{Role: RoleCitizen}).Can(PermBreakGlass))
	require.False(t, (*Principal)(nil).Can(PermPortalUse))
	require.False(t, p.Can("booking.write"))
	RegisterPermissions(RoleDentist, "booking.write")
	require.True(t, p.Can("booking.write"))
	require.Contains(t, RolePermissions(RoleDentist), "booking.write")
	require.False(t, (&Principal{Role: RoleNurse}).Can("booking.write"))
}
