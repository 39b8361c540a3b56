package pixel

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	sdicom "github.com/suyashkumar/dicom"
	stag "github.com/suyashkumar/dicom/pkg/tag"

	"github.com/molar-health/molar/dicom/header"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

const pydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

// need returns the path of a test tool; missing tools fail the test under
// CI=true (make test installs them) and skip it otherwise.
func need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		pgtest.Unavailable(t, name, err)
	}
	return p
}

func pydicom(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(pydicomFiles, name)
	if _, err := os.Stat(p); err != nil {
		pgtest.Unavailable(t, "pydicom test files (python3-pydicom)", err)
	}
	return p
}

func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(need(t, name), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// openBytes reads the header of a Part-10 file in memory and opens its frames.
func openBytes(t testing.TB, data []byte) (*Frames, error) {
	t.Helper()
	h, err := header.Read(bytes.NewReader(data), header.Options{})
	if err != nil {
		return nil, err
	}
	return Open(bytes.NewReader(data), int64(len(data)), h, Options{})
}

func openFile(t testing.TB, path string) (*Frames, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return openBytes(t, data)
}

func decodeAll(t testing.TB, path string) []*Frame {
	t.Helper()
	fs, err := openFile(t, path)
	if err != nil {
		t.Fatalf("open %s: %v", filepath.Base(path), err)
	}
	var out []*Frame
	for i := range fs.Len() {
		f, err := fs.Frame(context.Background(), i)
		if err != nil {
			t.Fatalf("%s frame %d: %v", filepath.Base(path), i, err)
		}
		out = append(out, f)
	}
	return out
}

// oracle decodes native pixel data with suyashkumar/dicom (trusted input
// only) and returns per frame the samples, pixel interleaved.
func oracle(t testing.TB, path string) [][]int64 {
	t.Helper()
	ds, err := func() (ds sdicom.Dataset, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = errors.New("oracle panicked")
			}
		}()
		return sdicom.ParseFile(path, nil)
	}()
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	el, err := ds.FindElementByTag(stag.PixelData)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	info := sdicom.MustGetPixelDataInfo(el.Value)
	var out [][]int64
	for _, fr := range info.Frames {
		nf, err := fr.GetNativeFrame()
		if err != nil {
			t.Fatalf("oracle: %v", err)
		}
		var s []int64
		for _, px := range nf.Data {
			for _, v := range px {
				s = append(s, int64(v))
			}
		}
		out = append(out, s)
	}
	return out
}

// compareFrames checks got against want sample by sample within tol,
// reporting the first differences and the largest.
func compareFrames(t *testing.T, got, want []*Frame, tol int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Rows != w.Rows || g.Columns != w.Columns || g.Samples != w.Samples {
			t.Fatalf("frame %d: %v, want %v", i, g, w)
		}
		if g.Photometric != w.Photometric {
			t.Errorf("frame %d: photometric %s, want %s", i, g.Photometric, w.Photometric)
		}
		worst, bad := int64(0), 0
		for k := range g.Len() {
			d := g.Value(k) - w.Value(k)
			if d < 0 {
				d = -d
			}
			if d > tol {
				if bad < 3 {
					px := k / g.Samples
					t.Errorf("frame %d sample %d (x %d y %d s %d): %d, want %d", i, k, px%g.Columns, px/g.Columns, k%g.Samples, g.Value(k), w.Value(k))
				}
				bad++
			}
			worst = max(worst, d)
		}
		if bad > 0 {
			t.Errorf("frame %d: %d of %d samples differ by more than %d (worst %d)", i, bad, g.Len(), tol, worst)
		}
	}
}
