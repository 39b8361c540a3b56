package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/uid"
)

// The DICOM Conformance Statement (docs/conformance.md) states what the SCP
// accepts and with which limits. These tests fail when the document and
// the code drift apart: a storage SOP class or transfer syntax added to or
// removed from the defaults, another implementation identity, changed
// association limits. Fix the document (or the code) when they fail.

const conformanceDoc = "docs/conformance.md"

// readConformanceDoc reads docs/conformance.md relative to the module root
// (the nearest parent directory holding go.mod).
func readConformanceDoc(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(conformanceDoc)))
	if err != nil {
		t.Fatalf("the conformance statement: %v", err)
	}
	return string(b)
}

// docSection returns the text between the markers
// "<!-- conformance-test: NAME begin -->" and "... end -->".
func docSection(t *testing.T, doc, name string) string {
	t.Helper()
	begin := "<!-- conformance-test: " + name + " begin -->"
	end := "<!-- conformance-test: " + name + " end -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s: no %q … %q section", conformanceDoc, begin, end)
	}
	return doc[i+len(begin) : j]
}

var backtickedUID = regexp.MustCompile("`([0-9]+(?:\\.[0-9]+)+)`")

// uidsIn returns the backticked UIDs of a section, in order.
func uidsIn(section string) []string {
	var out []string
	for _, m := range backtickedUID.FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	return out
}

// sameSet reports the UIDs only in want and only in got.
func sameSet(want, got []string) (missing, extra []string) {
	for _, u := range want {
		if !slices.Contains(got, u) {
			missing = append(missing, u)
		}
	}
	for _, u := range got {
		if !slices.Contains(want, u) {
			extra = append(extra, u)
		}
	}
	return missing, extra
}

// defaultSCP is a server configured as cmd/molar configures Molar's SCP as
// far as negotiation goes: every handler set, the default lists.
func defaultSCP() *Server {
	find := FindFunc(func(context.Context, *QueryRequest, func(*header.Dataset) error) (Status, error) {
		return StatusSuccess, nil
	})
	get := RetrieveFunc(func(context.Context, *QueryRequest) ([]Instance, error) { return nil, nil })
	return &Server{
		AETitle: "MOLAR",
		Store:   StoreFunc(func(context.Context, *StoreRequest, io.Reader) (Status, error) { return StatusSuccess, nil }),
		Find:    find,
		Move:    moveFunc{get},
		Get:     get,
	}
}

type moveFunc struct{ RetrieveFunc }

func (moveFunc) Destination(context.Context, *QueryRequest, string) (Destination, error) {
	return Destination{}, errors.New("unused")
}

func TestConformanceStatementStorageSOPClasses(t *testing.T) {
	doc := readConformanceDoc(t)
	s := defaultSCP()
	var accepted []string
	for _, c := range uid.StorageSOPClassUIDs() {
		if svc, _ := s.serviceOf(c); svc == ServiceStore {
			accepted = append(accepted, c)
		}
	}
	if len(accepted) == 0 {
		t.Fatal("the default SCP accepts no storage SOP class")
	}
	listed := uidsIn(docSection(t, doc, "storage-sop-classes"))
	missing, extra := sameSet(accepted, listed)
	if len(missing) > 0 {
		t.Errorf("%s, Table 4.2-3 lacks storage SOP classes the SCP accepts: %v", conformanceDoc, missing)
	}
	if len(extra) > 0 {
		t.Errorf("%s, Table 4.2-3 lists SOP classes the SCP does not accept for storage: %v", conformanceDoc, extra)
	}
	for _, u := range listed {
		if n := strings.Count(docSection(t, doc, "storage-sop-classes"), "`"+u+"`"); n != 1 {
			t.Errorf("%s, Table 4.2-3 lists %s %d times", conformanceDoc, u, n)
		}
	}
}

func TestConformanceStatementTransferSyntaxes(t *testing.T) {
	doc := readConformanceDoc(t)
	section := docSection(t, doc, "transfer-syntaxes")
	s := defaultSCP()
	// What the SCP accepts for storage (every class: the same list) and for
	// verification and query/retrieve.
	_, storage := s.serviceOf(uid.DigitalIntraOralXRayForPresentation)
	_, query := s.serviceOf(uid.Verification)
	for _, c := range uid.StorageSOPClassUIDs() {
		if _, ts := s.serviceOf(c); !slices.Equal(ts, storage) {
			t.Fatalf("storage transfer syntaxes differ between SOP classes (%s): the document's single table no longer fits", c)
		}
	}
	for _, c := range []string{uid.PatientRootQueryRetrieveFind, uid.StudyRootQueryRetrieveFind, uid.ModalityWorklistFind,
		uid.PatientRootQueryRetrieveMove, uid.StudyRootQueryRetrieveMove, uid.PatientRootQueryRetrieveGet, uid.StudyRootQueryRetrieveGet} {
		svc, ts := s.serviceOf(c)
		if svc == 0 {
			t.Errorf("the SCP does not offer %s, which Table 4.2-1 lists as SCP", uid.Name(c))
		}
		if !slices.Equal(ts, query) {
			t.Errorf("%s is offered with %v, the document says the verification syntaxes %v", uid.Name(c), ts, query)
		}
		if !strings.Contains(doc, "`"+c+"`") {
			t.Errorf("%s does not name %s (%s)", conformanceDoc, uid.Name(c), c)
		}
	}
	if !slices.Equal(storage, uid.DefaultTransferSyntaxes()) {
		t.Errorf("the SCP's storage syntaxes %v are not uid.DefaultTransferSyntaxes", storage)
	}

	// Rows: | name | `UID` | storage Yes/No | query Yes/No |
	row := regexp.MustCompile("(?m)^\\|[^|]*\\|\\s*`([0-9.]+)`\\s*\\|\\s*(Yes|No)\\s*\\|\\s*(Yes|No)\\s*\\|\\s*$")
	var listed []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		u, st, q := m[1], m[2] == "Yes", m[3] == "Yes"
		listed = append(listed, u)
		if st != slices.Contains(storage, u) {
			t.Errorf("%s says storage %v for %s (%s); the SCP: %v", conformanceDoc, st, uid.Name(u), u, !st)
		}
		if q != slices.Contains(query, u) {
			t.Errorf("%s says verification/Q/R %v for %s (%s); the SCP: %v", conformanceDoc, q, uid.Name(u), u, !q)
		}
	}
	missing, extra := sameSet(append(slices.Clone(storage), query...), listed)
	if len(missing) > 0 {
		t.Errorf("%s, Table 4.2-2 lacks transfer syntaxes the SCP accepts: %v", conformanceDoc, missing)
	}
	if len(extra) > 0 {
		t.Errorf("%s, Table 4.2-2 lists transfer syntaxes the SCP does not accept: %v", conformanceDoc, extra)
	}
	if other := uidsIn(section); len(other) != len(listed) {
		t.Errorf("%s, Table 4.2-2 has %d UIDs but %d well-formed rows", conformanceDoc, len(other), len(listed))
	}
}

// docValue returns the first backticked value of the table row whose first
// cell is label.
func docValue(t *testing.T, section, label string) string {
	t.Helper()
	re := regexp.MustCompile("(?m)^\\|\\s*" + regexp.QuoteMeta(label) + "\\s*\\|[^`\\n]*`([^`]+)`")
	m := re.FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("%s: no row %q with a `value`", conformanceDoc, label)
	}
	return m[1]
}

func TestConformanceStatementImplementation(t *testing.T) {
	section := docSection(t, readConformanceDoc(t), "implementation")
	if got := docValue(t, section, "Implementation Class UID"); got != ImplementationClassUID {
		t.Errorf("%s says Implementation Class UID %s, the code sends %s", conformanceDoc, got, ImplementationClassUID)
	}
	if got := docValue(t, section, "Implementation Version Name"); got != ImplementationVersionName {
		t.Errorf("%s says Implementation Version Name %s, the code sends %s", conformanceDoc, got, ImplementationVersionName)
	}
	// The file meta Molar writes must carry the same identity.
	if header.MetaImplementationClassUID != ImplementationClassUID || header.MetaImplementationVersion != ImplementationVersionName {
		t.Errorf("file meta identity %s/%s differs from the network identity %s/%s",
			header.MetaImplementationClassUID, header.MetaImplementationVersion, ImplementationClassUID, ImplementationVersionName)
	}
	if len(ImplementationVersionName) > 16 {
		t.Errorf("Implementation Version Name %q is longer than 16 characters", ImplementationVersionName)
	}
}

func TestConformanceStatementLimits(t *testing.T) {
	section := docSection(t, readConformanceDoc(t), "limits")
	num := func(label string) int64 {
		t.Helper()
		v := docValue(t, section, label)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s: row %q: %q is not a number", conformanceDoc, label, v)
		}
		return n
	}
	for _, c := range []struct {
		label string
		code  int64
	}{
		{"Maximum PDU size received", DefaultMaxPDULength},
		{"Smallest peer maximum PDU accepted", MinMaxPDULength},
		{"Maximum simultaneous associations", defaultMaxAssociation},
		{"Maximum connections negotiating at once", defaultMaxPending},
		{"Negotiating connections per peer address", max(2, defaultMaxPending/4)},
		{"ARTIM timeout", int64(DefaultARTIMTimeout.Seconds())},
		{"Idle timeout", int64(DefaultIdleTimeout.Seconds())},
		{"Write timeout", int64(DefaultWriteTimeout.Seconds())},
		{"Maximum C-FIND/C-MOVE/C-GET identifier", DefaultMaxIdentifier},
		{"Asynchronous operations window", asyncOpsWindow},
		{"Maximum presentation contexts proposed (SCU)", maxProposedContexts(t)},
	} {
		if got := num(c.label); got != c.code {
			t.Errorf("%s: %s is %d in the document, %d in the code", conformanceDoc, c.label, got, c.code)
		}
	}
}

// maxProposedContexts reads the number of presentation contexts an
// association request may propose from NewAssociation's refusal of too
// many (it refuses before touching the connection, so none is needed).
func maxProposedContexts(t *testing.T) int64 {
	t.Helper()
	_, err := NewAssociation(context.Background(), nil, DialOptions{Contexts: make([]ProposedContext, 1000)})
	m := regexp.MustCompile(`more than (\d+) presentation contexts`).FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("NewAssociation with 1000 contexts: %v, want a refusal naming the limit", err)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	if _, err := NewAssociation(context.Background(), nil, DialOptions{Contexts: make([]ProposedContext, n+1)}); err == nil {
		t.Fatalf("NewAssociation accepts %d contexts", n+1)
	}
	return n
}
