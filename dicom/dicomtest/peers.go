package dicomtest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molar-health/molar/dicom/header"

	"github.com/molar-health/molar/storage/postgres/pgtest"
)

// Converter is a DCMTK conversion producing a transfer syntax.
type Converter struct {
	Tool string
	Args []string
	Name string
}

// Converters cover the syntaxes of DESIGN §3 that DCMTK can write.
var Converters = []Converter{
	{"", nil, "ele"},
	{"dcmconv", []string{"+ti"}, "ile"},
	{"dcmconv", []string{"+tb"}, "ebe"},
	{"dcmconv", []string{"+td"}, "dfl"},
	{"dcmcjpeg", []string{"+e1"}, "jpll70"},
	{"dcmcjpeg", []string{"+el"}, "jpll57"},
	{"dcmcjpeg", []string{"+ee"}, "jpext51"},
	{"dcmcrle", nil, "rle"},
	{"dcmcjpls", []string{"+el"}, "jls80"},
	{"dcmcjpls", []string{"+en"}, "jls81"},
}

// Convert writes in (explicit VR LE) to dir/<name>.dcm through a converter.
func Convert(t testing.TB, dir string, in Instance, c Converter) string {
	dst := filepath.Join(dir, c.Name+"_"+strings.ReplaceAll(in.SOPUID, ".", "_")+".dcm")
	if c.Tool == "" {
		in.Write(t, dst)
		return dst
	}
	src := dst + ".src"
	in.Write(t, src)
	out, err := Run(t, 60*time.Second, c.Tool, append(append([]string{}, c.Args...), src, dst)...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", c.Tool, c.Args, err, out)
	}
	os.Remove(src)
	return dst
}

// StartStorescp runs DCMTK storescp (AE STORESCP, all syntaxes, files into
// dir) and returns its address.
func StartStorescp(t testing.TB, dir string, extra ...string) string {
	bin := Tool(t, "storescp")
	port := fmt.Sprint(FreePort(t))
	args := append([]string{"-aet", "STORESCP", "+xa", "-od", dir}, extra...)
	args = append(args, port)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("storescp output:\n%s", out.String())
		}
	})
	addr := "127.0.0.1:" + port
	WaitTCP(t, addr)
	return addr
}

// WaitTCP waits until addr accepts connections.
func WaitTCP(t testing.TB, addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("%s does not accept connections", addr)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Orthanc is a running Orthanc (Debian package orthanc) on random loopback
// ports with its own storage folder, remote access off.
type Orthanc struct {
	AE        string
	DICOMAddr string
	HTTP      string // base URL
	Dir       string
}

// StartOrthanc runs /usr/sbin/Orthanc with a generated configuration;
// modalities maps AE titles to "host:port" Orthanc may talk to.
func StartOrthanc(t testing.TB, modalities map[string]string) *Orthanc {
	return StartOrthancWith(t, modalities, nil)
}

// StartOrthancWith is StartOrthanc with extra configuration entries (which
// replace the generated ones), e.g. "Plugins" and "DicomWeb".
func StartOrthancWith(t testing.TB, modalities map[string]string, extra map[string]any) *Orthanc {
	bin := "/usr/sbin/Orthanc"
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("Orthanc")
		if lerr != nil {
			pgtest.Unavailable(t, "Orthanc (apt-get install orthanc)", lerr)
		}
		bin = p
	}
	dir, err := os.MkdirTemp("", "orthanc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mods := map[string][]any{}
	for ae, addr := range modalities {
		h, p, _ := net.SplitHostPort(addr)
		var port int
		fmt.Sscan(p, &port)
		mods[ae] = []any{ae, h, port}
	}
	// A free port can be taken by another process (a parallel test's
	// outgoing connection) before Orthanc binds it: Orthanc then exits
	// with "already in use", and it is started again on other ports.
	for attempt := 1; ; attempt++ {
		o, out, exited := startOrthancOnce(t, bin, dir, mods, extra)
		if o != nil {
			return o
		}
		if !exited || !strings.Contains(out, "already in use") || attempt == 3 {
			t.Fatalf("Orthanc did not start:\n%s", out)
		}
		t.Logf("Orthanc: a port was taken meanwhile; starting again on other ports")
	}
}

// startOrthancOnce starts Orthanc on fresh ports and waits until it
// answers; o is nil when it did not, with its output and whether it exited.
func startOrthancOnce(t testing.TB, bin, dir string, mods map[string][]any, extra map[string]any) (o *Orthanc, output string, exited bool) {
	dport, hport := FreePort(t), FreePort(t)
	cfg := map[string]any{
		"Name": "ORTHANC", "StorageDirectory": filepath.Join(dir, "storage"), "IndexDirectory": filepath.Join(dir, "index"),
		"DicomAet": "ORTHANC", "DicomPort": dport, "HttpPort": hport, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
		"DicomModalities": mods, "DicomCheckCalledAet": false, "StorageCompression": false, "Plugins": []string{},
		"DicomAlwaysAllowStore": true, "DicomAlwaysAllowEcho": true, "DicomAlwaysAllowFind": true, "DicomAlwaysAllowMove": true,
		"SaveJobs": false, "ConcurrentJobs": 2, "HttpTimeout": 60, "DicomScuTimeout": 30,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, _ := json.MarshalIndent(cfg, "", " ")
	conf := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	o = &Orthanc{AE: "ORTHANC", DICOMAddr: fmt.Sprintf("127.0.0.1:%d", dport), HTTP: fmt.Sprintf("http://127.0.0.1:%d", hport), Dir: dir}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Ready when the REST API answers and Orthanc says it has started:
		// plugins (DICOMweb's servers) are set up only at that point.
		resp, err := http.Get(o.HTTP + "/system")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(out.String(), "Orthanc has started") {
				break
			}
		}
		select {
		case <-done:
			return nil, out.String(), true
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Sprintf("%v\n%s", err, out.String()), false
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("Orthanc output:\n%s", out.String())
		}
	})
	WaitTCP(t, o.DICOMAddr)
	return o, "", false
}

// Do calls Orthanc's REST API and decodes a JSON answer into out (if not nil).
func (o *Orthanc) Do(t testing.TB, method, path string, body any, out any) {
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
	}
	req, _ := http.NewRequest(method, o.HTTP+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("orthanc %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("orthanc %s %s: %s: %s", method, path, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("orthanc %s %s: %v: %s", method, path, err, raw)
		}
	}
}

// CompareDataSets reports how two encoded data sets (same transfer syntax)
// differ: element by element (group lengths and trailing padding ignored),
// then the pixel data value. "" means equal.
func CompareDataSets(want, got []byte, ts string) string {
	rw := header.NewReader(bytes.NewReader(want), header.Options{TransferSyntax: ts})
	hw, err := rw.ReadHeader()
	if err != nil {
		return "want: " + err.Error()
	}
	rg := header.NewReader(bytes.NewReader(got), header.Options{TransferSyntax: ts})
	hg, err := rg.ReadHeader()
	if err != nil {
		return "got: " + err.Error()
	}
	flatten := func(d *header.Dataset) []string {
		var out []string
		d.Walk(func(depth int, e *header.Element) bool {
			if e.Tag.Element() == 0 || e.Tag == 0xFFFCFFFC {
				return true
			}
			out = append(out, fmt.Sprintf("%d %v %s %x", depth, e.Tag, e.VR, e.Value))
			return true
		})
		return out
	}
	fw, fg := flatten(hw.Dataset), flatten(hg.Dataset)
	if strings.Join(fw, "\n") != strings.Join(fg, "\n") {
		for i := range fw {
			if i >= len(fg) || fw[i] != fg[i] {
				g := ""
				if i < len(fg) {
					g = fg[i]
				}
				return fmt.Sprintf("element %d: want %s got %s", i, fw[i], g)
			}
		}
		return "got extra elements"
	}
	if (hw.PixelData == nil) != (hg.PixelData == nil) {
		return "pixel data presence differs"
	}
	if hw.PixelData != nil {
		pw, _ := io.ReadAll(rw.Rest())
		pg, _ := io.ReadAll(rg.Rest())
		pw = pixelValue(pw, hw.PixelData)
		pg = pixelValue(pg, hg.PixelData)
		if !bytes.Equal(pw, pg) {
			return fmt.Sprintf("pixel data differs (%d vs %d bytes)", len(pw), len(pg))
		}
	}
	return ""
}

func pixelValue(rest []byte, p *header.PixelDataInfo) []byte {
	start := p.ValueOffset - p.Offset
	if p.Encapsulated() {
		i := start
		for i+8 <= int64(len(rest)) {
			tag := uint32(binary.LittleEndian.Uint16(rest[i:]))<<16 | uint32(binary.LittleEndian.Uint16(rest[i+2:]))
			n := int64(binary.LittleEndian.Uint32(rest[i+4:]))
			if tag == 0xFFFEE0DD {
				return rest[start:i]
			}
			i += 8 + n
		}
		return rest[start:]
	}
	end := start + int64(p.Length)
	if end <= int64(len(rest)) {
		return rest[start:end]
	}
	return rest[start:]
}
