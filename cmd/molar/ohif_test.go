package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/molar-health/molar/auth/demo"
	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// TestOHIFRequestSequence runs the request sequence OHIF makes when a study
// is opened (QIDO studies with includefield, series, series metadata,
// frames, rendered), with the dicomweb-client npm package OHIF uses, in a
// Node test script against this server.
func TestOHIFRequestSequence(t *testing.T) {
	dir, err := filepath.Abs("../../dicom/web/testdata/ohif")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		pgtest.Unavailable(t, "Node.js", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "dicomweb-client")); err != nil {
		pgtest.Unavailable(t, "the npm packages of dicom/web/testdata/ohif (make test runs npm ci there)", err)
	}
	ts := newTestServer(t, nil)
	res := ingestFile(t, ts, testFile(t, "CT_small.dcm"))
	cmd := exec.Command(node, "--test", "ohif.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MOLAR_DICOMWEB="+ts.URL+"/dicomweb", "MOLAR_USER=tandlaege",
		"MOLAR_PASSWORD="+demo.Password, "MOLAR_STUDY="+res.StudyInstanceUID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
