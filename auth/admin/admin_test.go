package admin

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/molar-health/molar/auth"
)

// TestManageable: a clinic administrator changes their own units, a
// system administrator every unit, nobody a unit whose membership follows
// directory groups (named in any case, with spaces around).
func TestManageable(t *testing.T) {
	units := []auth.OrgUnit{{ID: 1, Name: "Tandplejen Nord"}, {ID: 2, Name: "Tandplejen Syd"}, {ID: 3, Name: "Hjemmeplejen"}}
	ids := func(us []auth.OrgUnit) []int64 {
		var out []int64
		for _, u := range us {
			out = append(out, u.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		mine      []int64
		system    bool
		directory []string
		want      []int64
	}{
		{"clinic administrator: own units", []int64{1, 3}, false, nil, []int64{1, 3}},
		{"clinic administrator of none", nil, false, nil, nil},
		{"system administrator: all", nil, true, nil, []int64{1, 2, 3}},
		{"directory units: never", []int64{1, 2}, false, []string{" tandplejen nord "}, []int64{2}},
		{"system administrator, directory units", nil, true, []string{"Hjemmeplejen", "Ukendt"}, []int64{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ids(manageable(units, tc.mine, tc.system, tc.directory)))
		})
	}
}
