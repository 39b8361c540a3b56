package booking_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// An appointment type the database would refuse (a code with capitals or
// spaces, a modality of more than two letters, over-long texts) is bad
// input: 400 with a problem document, not a 500.
func TestAdminTypeInvalidInputIs400(t *testing.T) {
	f := newFixture(t)
	admin := f.clinicAdmin()
	base := url.Values{"unit": {itoa(f.clinic)}, "code": {"check"}, "name": {"Kontrol"}, "minutes": {"20"}, "kinds": {"chair"}}
	for field, bad := range map[string]string{
		"code":                  "Kontrol 1",
		"modality":              "CBCT",
		"name_en":               strings.Repeat("x", 201),
		"public_name":           strings.Repeat("x", 201),
		"procedure_code":        strings.Repeat("x", 17),
		"procedure_description": strings.Repeat("x", 65),
		"name":                  strings.Repeat("x", 201),
		"minutes":               "tyve",
	} {
		form := url.Values{}
		for k, v := range base {
			form[k] = v
		}
		form.Set(field, bad)
		w := f.serve(admin, http.MethodPost, "/admin/types", form)
		require.Equal(t, http.StatusBadRequest, w.Code, "%s=%q: %s", field, bad, w.Body.String())
	}
	w := f.serve(admin, http.MethodPost, "/admin/types", base)
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
}
