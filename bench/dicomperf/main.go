// Command dicomperf measures DICOM C-STORE ingest side by side (DESIGN §5):
// storescu → molar serve (filesystem and S3 via versitygw) vs storescu →
// Orthanc vs storescu → DCMTK storescp, same files, same machine, same run;
// small (≈ 40 KB) and large (≈ 2.6 MB intra-oral) instances on 1 and 4
// associations; and molar's RSS growth while receiving one large
// multi-frame instance. It prints a Markdown table and writes an SVG chart.
//
//	go run ./bench/dicomperf -svg docs/dicom-ingest.svg
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molar-health/molar/bench"
	"github.com/molar-health/molar/dicom/dicomtest"
	"github.com/molar-health/molar/dicom/dimse"
	"github.com/molar-health/molar/dicom/header"
	"github.com/molar-health/molar/dicom/thumb"
	"github.com/molar-health/molar/dicom/uid"
	"github.com/molar-health/molar/storage/postgres"
)

var (
	nSmall  = flag.Int("small", 400, "small instances per run")
	nLarge  = flag.Int("large", 60, "large instances per run")
	bigMB   = flag.Int("big-mb", 1024, "size of the multi-frame instance for the RSS measurement (MiB)")
	useS3   = flag.Bool("s3", true, "also measure molar with the S3 store (versitygw)")
	svg     = flag.String("svg", "", "write a chart here")
	jsonOut = flag.String("json", "", "write the results here")
	only    = flag.String("only", "", "measure only these targets (comma list of fs, s3, orthanc, storescp; empty: all)")
	repeat  = flag.Int("repeat", 1, "runs of every measurement, 1 to 5 (the tables show the median)")
	preload = flag.Int("preload", 0, "also measure a molar (filesystem) whose index already holds this many instances, e.g. 1000000 (DESIGN §5: ≥ 90% of the empty-index rate)")
	keep    = flag.Bool("keep", false, "keep the working folder (generated files, data) for profiling")
)

func want(t string) bool {
	if *only == "" {
		return true
	}
	for _, o := range strings.Split(*only, ",") {
		if strings.TrimSpace(o) == t {
			return true
		}
	}
	return false
}

type result struct {
	Target  string  `json:"target"`
	Round   int     `json:"round"`
	Size    string  `json:"size"`
	Assocs  int     `json:"assocs"`
	N       int     `json:"n"`
	OK      int     `json:"ok"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"instances_per_s"`
	MBps    float64 `json:"mb_per_s"`
	// Busy is the share of all the machine's cores in use during the run
	// (every process: the peer, storescu, PostgreSQL, thumbnail jobs).
	Busy float64 `json:"machine_busy"`
	// CPUms is the CPU time per instance of the receiving process and its
	// children (molar with its PostgreSQL; 0 where not measured), for molar
	// until its thumbnails of the run are made.
	CPUms float64 `json:"cpu_ms_per_instance"`
	// ThumbLag is how long after storescu finished molar had made every
	// thumbnail of the run (seconds).
	ThumbLag float64 `json:"thumbnail_lag_s,omitempty"`
	// ThumbP95 and ThumbMax: per instance, from its index transaction to
	// its thumbnails made (seconds).
	ThumbP95 float64 `json:"thumbnail_p95_s,omitempty"`
	ThumbMax float64 `json:"thumbnail_max_s,omitempty"`
}

func main() {
	flag.Parse()
	root, err := os.MkdirTemp("", "molar-bench-")
	check(err)
	check(os.Chmod(root, 0o755))
	if !*keep {
		defer os.RemoveAll(root)
	}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	log.Printf("generating files in %s", root)
	sets := map[string][]string{}
	var sizes = map[string]int64{}
	for szi, sz := range []struct {
		name       string
		n          int
		rows, cols int
	}{{"small", *nSmall, 128, 152}, {"large", *nLarge, 1280, 1024}} {
		for key0, k := range []int{1, 4, 1 + 10, 4 + 10, 1 + 20, 4 + 20, 1 + 30, 4 + 30, 1 + 40, 4 + 40}[:2*min(*repeat, 5)] {
			_ = key0
			key := fmt.Sprintf("%s-%d", sz.name, k)
			dir := filepath.Join(root, key)
			check(os.MkdirAll(dir, 0o755))
			for i := 0; i < sz.n; i++ {
				// One patient per study (10 instances): Molar refuses an
				// instance filed under another patient's study (C409).
				in := dicomtest.Instance{PatientID: fmt.Sprintf("P%d", (i/10)%50), PatientName: "Bench^Patient", StudyUID: fmt.Sprintf("%s.%d.%d", dicomtest.Root+".7", k, i/10),
					SeriesUID: fmt.Sprintf("%s.%d.%d.1", dicomtest.Root+".7", k, i/10), SOPUID: benchUID(fmt.Sprintf("%s.%d.%d.%d", dicomtest.Root+".8", time.Now().Unix()%10000, 100*szi+k, i)),
					StudyDate: "20240101", InstanceNumber: i, Rows: sz.rows, Cols: sz.cols, Teeth: []string{"16"}}
				f := filepath.Join(dir, fmt.Sprintf("%05d.dcm", i))
				check(writeFile(f, in))
				if i == 0 {
					st, _ := os.Stat(f)
					sizes[sz.name] = st.Size()
				}
				sets[key] = append(sets[key], f)
			}
		}
	}
	log.Printf("file sizes: small %d B, large %d B", sizes["small"], sizes["large"])

	bin := filepath.Join(root, "molar")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/molar").CombinedOutput()
	if err != nil {
		log.Fatalf("go build: %v\n%s", err, out)
	}

	type target struct {
		name, addr, ae string
		pid            int        // the receiving process, for its CPU time
		settle         bool       // molar: wait for its background work (thumbnails) to settle between runs
		molar          *molarProc // molar: measure its thumbnail lag
	}
	var targets []target
	var mfs *molarProc
	if want("fs") {
		m, stop := startMolar(bin, filepath.Join(root, "molar-fs"), nil)
		mfs = m
		stops = append(stops, stop)
		targets = append(targets, target{"Molar (filesystem)", m.addr, "MOLAR", m.pid, true, m})
	}
	if *preload > 0 && want("fs") {
		data := filepath.Join(root, "molar-big")
		m, stop := startMolar(bin, data, nil)
		stops = append(stops, stop)
		start := time.Now()
		check(preloadIndex(m, *preload))
		log.Printf("index of molar-big filled with %d instances, vacuumed and analysed in %s", *preload, time.Since(start).Round(time.Second))
		targets = append(targets, target{bigIndexTarget, m.addr, "MOLAR", m.pid, true, m})
		goals = append(goals,
			goal{fmt.Sprintf("small, %d indexed / empty index", *preload), "small", 1, bigIndexTarget, "Molar (filesystem)", 0.9},
			goal{fmt.Sprintf("small, %d indexed / empty index", *preload), "small", 4, bigIndexTarget, "Molar (filesystem)", 0.9})
	}
	if *useS3 && want("s3") {
		ep, stop := startVersity(root)
		stops = append(stops, stop)
		ms3, stop := startMolar(bin, filepath.Join(root, "molar-s3"), []string{"MOLAR_S3_ENDPOINT=" + ep, "MOLAR_S3_BUCKET=bench",
			"MOLAR_S3_ACCESS_KEY=benchkey", "MOLAR_S3_SECRET_KEY=benchsecret123"})
		stops = append(stops, stop)
		ms3.objects = filepath.Join(root, "s3", "bench") // versitygw's POSIX backend: <root>/<bucket>/<key>
		targets = append(targets, target{"Molar (S3, versitygw)", ms3.addr, "MOLAR", ms3.pid, true, ms3})
	}
	if want("orthanc") {
		oaddr, opid, stop := startOrthanc(root)
		stops = append(stops, stop)
		targets = append(targets, target{"Orthanc 1.10", oaddr, "ORTHANC", opid, false, nil})
	}
	if want("storescp") {
		saddr, spid, stop := startStorescp(root)
		stops = append(stops, stop)
		targets = append(targets, target{"DCMTK storescp", saddr, "STORESCP", spid, false, nil})
	}
	var pids []int
	for _, tg := range targets {
		if tg.settle {
			pids = append(pids, tg.pid)
		}
	}

	var all, results []result
	for rep := 0; rep < *repeat; rep++ {
		for _, size := range []string{"small", "large"} {
			for _, k := range []int{1, 4} {
				// Each repetition sends new instances (new UIDs, new studies).
				files := sets[fmt.Sprintf("%s-%d", size, k+10*rep)]
				for _, tg := range targets {
					// Every target starts on an idle machine: molar's thumbnail
					// jobs of the previous run must not slow the next target.
					settle(pids)
					var t0 int64
					if tg.pid != 0 {
						t0 = cpuTicks([]int{tg.pid})
					}
					busy0, all0 := machineTicks()
					runStart := time.Now()
					r := storeRun(tg.addr, tg.ae, files, k)
					busy1, all1 := machineTicks()
					if tg.molar != nil {
						r.ThumbLag, r.ThumbP95, r.ThumbMax = thumbnailLag(tg.molar, runStart)
					}
					if all1 > all0 {
						r.Busy = float64(busy1-busy0) / float64(all1-all0)
					}
					if tg.pid != 0 && r.OK > 0 {
						r.CPUms = float64(cpuTicks([]int{tg.pid})-t0) * 10 / float64(r.OK)
					}
					r.Target, r.Size, r.Round = tg.name, size, rep
					r.MBps = float64(sizes[size]) * float64(r.OK) / r.Seconds / 1e6
					lag := ""
					if tg.molar != nil {
						lag = fmt.Sprintf("; thumbnails all made %.1f s after storescu finished, per instance p95 %.2f s, max %.2f s", r.ThumbLag, r.ThumbP95, r.ThumbMax)
					}
					log.Printf("%-24s %s ×%d: %d/%d in %.2fs = %.0f inst/s, %.1f MB/s; machine busy %.0f%%, receiver CPU %.2f ms/instance%s",
						r.Target, size, k, r.OK, r.N, r.Seconds, r.PerSec, r.MBps, 100*r.Busy, r.CPUms, lag)
					all = append(all, r)
					if r.OK < r.N {
						// A rate of refused instances measures nothing.
						log.Fatalf("%s refused %d of %d instances: the measurement is void (see its log)", r.Target, r.N-r.OK, r.N)
					}
				}
			}
		}
	}
	results = medians(all)
	settle(pids)

	var growth, base int64
	var fl floor
	if mfs != nil {
		growth, base = rssLargeInstance(mfs, int64(*bigMB)<<20)
		fl = durabilityFloor(mfs, sizes["small"])
	}
	head, rule := "| what |", "|---|"
	for _, tg := range targets {
		head += " " + tg.name + " |"
		rule += "---|"
	}
	fmt.Printf("\n%s\n%s\n", head, rule)
	for _, size := range []string{"small", "large"} {
		for _, k := range []int{1, 4} {
			row := fmt.Sprintf("| %s (%d KB), %d assoc. |", size, sizes[size]/1000, k)
			for _, tg := range targets {
				for _, r := range results {
					if r.Target == tg.name && r.Size == size && r.Assocs == k {
						if size == "small" {
							row += fmt.Sprintf(" %.0f inst/s |", r.PerSec)
						} else {
							row += fmt.Sprintf(" %.0f MB/s |", r.MBps)
						}
					}
				}
			}
			fmt.Println(row)
		}
	}
	printTargets(all, *repeat)
	var names []string
	for _, tg := range targets {
		names = append(names, tg.name)
	}
	printCosts(all, names)
	fmt.Printf("\nmolar RSS while receiving a %d MiB multi-frame instance: baseline %d MiB, growth %d MiB\n", *bigMB, base>>20, growth>>20)
	printFloor(results, fl, sizes["small"])
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"results": results, "runs": all, "rss_growth_bytes": growth, "big_bytes": int64(*bigMB) << 20}, "", " ")
		check(os.WriteFile(*jsonOut, b, 0o644))
	}
	if *svg != "" {
		check(os.WriteFile(*svg, chart(results, names), 0o644))
	}
}

// floor is what durability alone costs per small instance on this
// machine, in milliseconds: the object (write into a file made ahead,
// fsync, rename, folder fsync, as the filesystem store does) and a WAL
// flush (one committed one-row insert).
type floor struct{ object, wal float64 }

// durabilityFloor measures floor beside m's data (the same file system and
// PostgreSQL cluster), 500 times each, with size-byte objects.
func durabilityFloor(m *molarProc, size int64) floor {
	const n = 500
	dir := filepath.Join(m.data, "floor-probe")
	check(os.MkdirAll(dir, 0o755))
	defer os.RemoveAll(dir)
	d, err := os.Open(dir)
	check(err)
	defer d.Close()
	buf := make([]byte, size)
	// The temporary files are made ahead, outside the timing, as the
	// filesystem store makes them ahead of the Puts that use them.
	tmps := make([]*os.File, n)
	for i := range tmps {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf(".tmp%d", i)))
		check(err)
		tmps[i] = f
	}
	check(d.Sync())
	start := time.Now()
	for i, f := range tmps {
		_, err = f.Write(buf)
		check(err)
		check(f.Sync())
		check(f.Close())
		check(os.Rename(f.Name(), filepath.Join(dir, fmt.Sprintf("obj%d", i))))
		check(d.Sync())
	}
	var fl floor
	fl.object = float64(time.Since(start).Microseconds()) / 1000 / n

	ctx := context.Background()
	conn, err := m.admin(ctx)
	check(err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DROP TABLE IF EXISTS public.floor_probe; CREATE TABLE public.floor_probe (id int, b bytea)`)
	check(err)
	defer conn.Exec(ctx, `DROP TABLE public.floor_probe`) //nolint:errcheck
	row := make([]byte, 200)
	start = time.Now()
	for i := range n {
		_, err := conn.Exec(ctx, `INSERT INTO public.floor_probe VALUES ($1, $2)`, i, row)
		check(err)
	}
	fl.wal = float64(time.Since(start).Microseconds()) / 1000 / n
	return fl
}

// printFloor sets the small-instance goals against what this machine
// allows: storescp's time per instance on one association is what sender,
// loopback and a receiver that writes without fsync take; a receiver that
// also made each instance durable, and did nothing else, could not answer
// faster than that plus the floor (object and WAL flush overlapped: their
// maximum; in sequence: their sum). On four associations, storescp's own
// rate bounds any receiver on these cores.
func printFloor(results []result, fl floor, small int64) {
	rate := func(target string, k int) float64 {
		for _, r := range results {
			if r.Target == target && r.Size == "small" && r.Assocs == k {
				return r.PerSec
			}
		}
		return 0
	}
	scp1, scp4 := rate("DCMTK storescp", 1), rate("DCMTK storescp", 4)
	orth1, orth4 := rate("Orthanc 1.10", 1), rate("Orthanc 1.10", 4)
	if fl.object == 0 || scp1 == 0 || orth1 == 0 {
		return
	}
	fmt.Printf("\ndurability floor per %d KB instance on this machine: object (write into a file made ahead, fsync, rename, folder fsync) %.3f ms, WAL flush %.3f ms\n",
		small/1000, fl.object, fl.wal)
	t := 1000 / scp1
	over, seq := 1000/(t+max(fl.object, fl.wal)), 1000/(t+fl.object+fl.wal)
	fmt.Printf("1 association: storescp %.3f ms per instance; a receiver doing only the durable writes could reach at most %.0f inst/s (overlapped) or %.0f (in sequence) = %.2f / %.2f × Orthanc (goal 2×)\n",
		t, over, seq, over/orth1, seq/orth1)
	if scp4 > 0 && orth4 > 0 {
		fmt.Printf("4 associations: storescp (no fsync, no index) reaches %.0f inst/s = %.2f × Orthanc (goal 3×)\n", scp4, scp4/orth4)
	}
}

// bigIndexTarget is the molar whose index was filled by -preload.
const bigIndexTarget = "Molar (fs, large index)"

// preloadIndex fills the index of the molar serving data (its embedded
// cluster, as the administrator) with n generated instances in the bench
// municipality, then vacuums: the state of an archive that has been
// running for years.
func preloadIndex(m *molarProc, n int) error {
	ctx := context.Background()
	conn, err := m.admin(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var tenant int64
	if err := conn.QueryRow(ctx, `SELECT id FROM auth.tenant WHERE code = '0101'`).Scan(&tenant); err != nil {
		return fmt.Errorf("bench tenant: %w", err)
	}
	if _, _, err := bench.FillIndex(ctx, conn, tenant, n); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "VACUUM (ANALYZE) dicom.patient, dicom.study, dicom.series, dicom.instance")
	return err
}

// goal is one DESIGN §5 ratio: a's rate over b's, at least min.
type goal struct {
	what   string
	size   string
	assocs int
	a, b   string
	min    float64
}

var goals = []goal{
	{"small, Molar fs / Orthanc", "small", 1, "Molar (filesystem)", "Orthanc 1.10", 2},
	{"small, Molar fs / Orthanc", "small", 4, "Molar (filesystem)", "Orthanc 1.10", 3},
	{"large, Molar fs / storescp", "large", 1, "Molar (filesystem)", "DCMTK storescp", 0.85},
	{"large, Molar fs / storescp", "large", 4, "Molar (filesystem)", "DCMTK storescp", 0.85},
	{"small, Molar S3 / Molar fs", "small", 1, "Molar (S3, versitygw)", "Molar (filesystem)", 0.8},
	{"small, Molar S3 / Molar fs", "small", 4, "Molar (S3, versitygw)", "Molar (filesystem)", 0.8},
	{"large, Molar S3 / Molar fs", "large", 1, "Molar (S3, versitygw)", "Molar (filesystem)", 0.8},
	{"large, Molar S3 / Molar fs", "large", 4, "Molar (S3, versitygw)", "Molar (filesystem)", 0.8},
}

// printTargets prints each DESIGN §5 ratio per round (the two rates of a
// ratio are measured one after the other in the same round, so a machine
// whose speed drifts between rounds disturbs the ratio less than the
// medians of the rates) and its median.
func printTargets(all []result, rounds int) {
	rate := map[string]float64{}
	for _, r := range all {
		rate[fmt.Sprintf("%s|%s|%d|%d", r.Target, r.Size, r.Assocs, r.Round)] = r.PerSec
	}
	fmt.Printf("\n| target (DESIGN §5) | assoc. | per round | median | goal | |\n|---|---|---|---|---|---|\n")
	for _, t := range goals {
		var ratios []float64
		var cells []string
		for rep := 0; rep < rounds; rep++ {
			a, b := rate[fmt.Sprintf("%s|%s|%d|%d", t.a, t.size, t.assocs, rep)], rate[fmt.Sprintf("%s|%s|%d|%d", t.b, t.size, t.assocs, rep)]
			if a == 0 || b == 0 {
				continue
			}
			ratios = append(ratios, a/b)
			cells = append(cells, fmt.Sprintf("%.2f", a/b))
		}
		if len(ratios) == 0 {
			continue
		}
		med := median(ratios)
		verdict := "not met"
		if med >= t.min {
			verdict = "met"
		}
		fmt.Printf("| %s | %d | %s | %.2f | ≥ %.2f | %s |\n", t.what, t.assocs, strings.Join(cells, ", "), med, t.min, verdict)
	}
}

// printCosts prints, per target and run kind, the medians of the
// receiver's CPU time per instance and of the machine's load, and for
// molar when its thumbnails were made (thumbnailLag).
func printCosts(all []result, targets []string) {
	fmt.Printf("\n| receiver | instances, assoc. | CPU per instance (median) | machine busy | thumbnails all made after storescu finished (median, max) | thumbnail ready after its instance's commit, p95 (median of rounds) and max |\n|---|---|---|---|---|---|\n")
	for _, tg := range targets {
		for _, size := range []string{"small", "large"} {
			for _, k := range []int{1, 4} {
				var cpu, busy, lag, p95, most []float64
				for _, r := range all {
					if r.Target == tg && r.Size == size && r.Assocs == k {
						cpu, busy, lag = append(cpu, r.CPUms), append(busy, r.Busy), append(lag, r.ThumbLag)
						p95, most = append(p95, r.ThumbP95), append(most, r.ThumbMax)
					}
				}
				if len(cpu) == 0 {
					continue
				}
				thumbs, ready := "—", "—"
				if slices.Max(lag) > 0 {
					thumbs = fmt.Sprintf("%.1f s, %.1f s", median(lag), slices.Max(lag))
					ready = fmt.Sprintf("%.2f s, %.2f s", median(p95), slices.Max(most))
				}
				fmt.Printf("| %s | %s, %d | %.2f ms | %.0f%% | %s | %s |\n", tg, size, k, median(cpu), 100*median(busy), thumbs, ready)
			}
		}
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// medians folds repeated runs into one result per target, size and
// association count (the median by rate).
func medians(all []result) []result {
	type key struct {
		t, s string
		k    int
	}
	groups := map[key][]result{}
	var order []key
	for _, r := range all {
		kk := key{r.Target, r.Size, r.Assocs}
		if _, ok := groups[kk]; !ok {
			order = append(order, kk)
		}
		groups[kk] = append(groups[kk], r)
	}
	var out []result
	for _, kk := range order {
		g := groups[kk]
		sort.Slice(g, func(i, j int) bool { return g[i].PerSec < g[j].PerSec })
		out = append(out, g[len(g)/2])
	}
	return out
}

// settle waits (at most 30 s) until the processes pids and their children
// use less than 5% of a core over 300 ms.
func settle(pids []int) {
	if len(pids) == 0 {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	prev := cpuTicks(pids)
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		cur := cpuTicks(pids)
		if cur-prev <= 1 { // clock ticks are 10 ms: ≤ 10 ms in 300 ms
			return
		}
		prev = cur
	}
	log.Printf("background work still running after 30 s")
}

// machineTicks returns the busy and total clock ticks of all cores
// (/proc/stat; iowait counts as idle: a core waiting for the disk is free).
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already in user time
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// cpuTicks sums utime+stime of pids and all their descendants.
func cpuTicks(pids []int) int64 {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	stat := map[int]int64{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		children[ppid] = append(children[ppid], pid)
		stat[pid] = ut + st
	}
	var sum int64
	seen := map[int]bool{}
	var walk func(int)
	walk = func(p int) {
		if seen[p] {
			return
		}
		seen[p] = true
		sum += stat[p]
		for _, c := range children[p] {
			walk(c)
		}
	}
	for _, p := range pids {
		walk(p)
	}
	return sum
}

// benchUID refuses a UID longer than DICOM's 64 characters (peers truncate
// one in the command but not in the data set, and the instance is refused).
func benchUID(u string) string {
	if len(u) > 64 {
		log.Fatalf("generated UID %s is %d characters long (at most 64): use fewer instances", u, len(u))
	}
	return u
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func writeFile(path string, in dicomtest.Instance) error {
	var buf bytes.Buffer
	if err := header.WriteFileHeader(&buf, uid.DigitalIntraOralXRayForPresentation, in.SOPUID, uid.ExplicitVRLittleEndian); err != nil {
		return err
	}
	if err := in.Dataset().WriteTo(&buf, uid.ExplicitVRLittleEndian); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitTCP(addr string) {
	for i := 0; i < 600; i++ {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("%s not listening", addr)
}

type molarProc struct {
	addr string
	pid  int
	data string
	// objects is the folder the object store keeps its keys in as files
	// (the filesystem store's, or versitygw's bucket): thumbnails are ready
	// when their files are there.
	objects string
}

// admin connects to the embedded cluster of m as its administrator.
func (m *molarProc) admin(ctx context.Context) (*pgx.Conn, error) {
	pid, err := os.ReadFile(filepath.Join(m.data, "pg", "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 5 {
		return nil, fmt.Errorf("postmaster.pid: %q", pid)
	}
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s dbname=molar sslmode=disable", lines[4], lines[3], postgres.AdminUser))
}

// thumbnailLag waits until m has made the thumbnails of everything it
// received (nothing queued, no thumbnail job pending) and returns how long
// that took (the lag of the last instance's thumbnails after storescu
// finished), and, per instance indexed since runStart, the 95th percentile
// and the maximum of the time from its index transaction (the moment
// before its Success) to the moment its last thumbnail was written (the
// modification time of the thumbnail files, as the store keeps them):
// DESIGN §5's "thumbnail ready after C-STORE Success".
func thumbnailLag(m *molarProc, runStart time.Time) (lag, p95, most float64) {
	ctx := context.Background()
	start := time.Now()
	conn, err := m.admin(ctx)
	check(err)
	defer conn.Close(ctx)
	for time.Since(start) < 5*time.Minute {
		var n int
		check(conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM dicom.thumbnail_queue)
			+ (SELECT count(*) FROM river.river_job WHERE kind IN ('imaging.thumbnail', 'imaging.thumbnail_batch') AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled'))`).Scan(&n))
		if n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lag = time.Since(start).Seconds()
	rows, err := conn.Query(ctx, `SELECT object_key, created FROM dicom.instance WHERE created >= $1`, runStart)
	check(err)
	type inst struct {
		key     string
		created time.Time
	}
	insts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (inst, error) {
		var i inst
		return i, r.Scan(&i.key, &i.created)
	})
	check(err)
	var ds []float64
	for _, in := range insts {
		var ready time.Time
		for _, size := range thumb.DefaultSizes {
			fi, err := os.Stat(filepath.Join(m.objects, filepath.FromSlash(thumb.Key(in.key, size))))
			if err != nil {
				ready = time.Time{}
				break // not made (a failure is noted instead): not counted
			}
			if fi.ModTime().After(ready) {
				ready = fi.ModTime()
			}
		}
		if !ready.IsZero() {
			ds = append(ds, ready.Sub(in.created).Seconds())
		}
	}
	if len(ds) == 0 {
		return lag, 0, 0
	}
	sort.Float64s(ds)
	return lag, ds[min(len(ds)-1, int(math.Ceil(0.95*float64(len(ds))))-1)], ds[len(ds)-1]
}

func startMolar(bin, data string, env []string) (*molarProc, func()) {
	pw := filepath.Join(filepath.Dir(data), filepath.Base(data)+"-pw")
	check(os.WriteFile(pw, []byte("bench-password-42\n"), 0o600))
	base := append(os.Environ(), env...)
	// A new installation: migrate creates the database, then the admin
	// commands work on it (they never create one).
	cmd := exec.Command(bin, "migrate", "--data-dir", data)
	cmd.Env = base
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("molar migrate: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "user", "add", "--data-dir", data, "--username", "bench", "--role", "clinic_admin",
		"--tenant", "0101", "--tenant-name", "Bench", "--password-file", pw)
	cmd.Env = base
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("molar user add: %v\n%s", err, out)
	}
	port := freePort()
	cmd = exec.Command(bin, "serve", "--data-dir", data, "--http-addr", "127.0.0.1:0", "--dicom-addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "warn")
	cmd.Env = append(base, "MOLAR_DICOM_ACCEPT_UNKNOWN=true", "MOLAR_DEMO=false")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(3 * time.Minute):
		log.Fatal("molar not ready")
	}
	return &molarProc{addr: fmt.Sprintf("127.0.0.1:%d", port), pid: cmd.Process.Pid, data: data, objects: filepath.Join(data, "objects")}, func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
		}
	}
}

func startVersity(root string) (string, func()) {
	bin := os.Getenv("MOLAR_VERSITYGW")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache/molar/bin/versitygw")
	}
	dir := filepath.Join(root, "s3")
	check(os.MkdirAll(filepath.Join(dir, "bench"), 0o755))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd := exec.Command(bin, "--access", "benchkey", "--secret", "benchsecret123", "--port", addr, "--quiet", "posix", dir)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	waitTCP(addr)
	return addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

func startOrthanc(root string) (string, int, func()) {
	dir := filepath.Join(root, "orthanc")
	check(os.MkdirAll(dir, 0o755))
	dport, hport := freePort(), freePort()
	cfg := map[string]any{"Name": "ORTHANC", "StorageDirectory": filepath.Join(dir, "storage"), "IndexDirectory": filepath.Join(dir, "index"),
		"DicomAet": "ORTHANC", "DicomPort": dport, "HttpPort": hport, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
		"DicomCheckCalledAet": false, "StorageCompression": false, "Plugins": []string{}, "DicomAlwaysAllowStore": true, "SaveJobs": false}
	b, _ := json.Marshal(cfg)
	conf := filepath.Join(dir, "orthanc.json")
	check(os.WriteFile(conf, b, 0o644))
	cmd := exec.Command("/usr/sbin/Orthanc", conf)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	check(cmd.Start())
	for i := 0; i < 600; i++ {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/system", hport)); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", dport)
	waitTCP(addr)
	return addr, cmd.Process.Pid, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

func startStorescp(root string) (string, int, func()) {
	dir := filepath.Join(root, "storescp")
	check(os.MkdirAll(dir, 0o755))
	port := freePort()
	cmd := exec.Command("storescp", "-aet", "STORESCP", "+xa", "-od", dir, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	check(cmd.Start())
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitTCP(addr)
	return addr, cmd.Process.Pid, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

var okLine = regexp.MustCompile(`Received Store Response \(Success\)`)

// storeRun sends files over k concurrent storescu associations.
func storeRun(addr, ae string, files []string, k int) result {
	h, p, _ := net.SplitHostPort(addr)
	groups := make([][]string, k)
	for i, f := range files {
		groups[i%k] = append(groups[i%k], f)
	}
	var wg sync.WaitGroup
	oks := make([]int, k)
	start := time.Now()
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("storescu", append([]string{"-v", "-aet", "BENCH", "-aec", ae, h, p}, groups[i]...)...)
			cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
			out, _ := cmd.CombinedOutput()
			oks[i] = len(okLine.FindAll(out, -1))
		}()
	}
	wg.Wait()
	d := time.Since(start).Seconds()
	r := result{Assocs: k, N: len(files), Seconds: d}
	for _, n := range oks {
		r.OK += n
	}
	r.PerSec = float64(r.OK) / d
	return r
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	return 0
}

// rssLargeInstance streams one multi-frame instance of size bytes to molar
// and samples its RSS.
func rssLargeInstance(m *molarProc, size int64) (growth, base int64) {
	ctx := context.Background()
	base = rss(m.pid)
	peak := base // a transfer shorter than one sampling interval: no growth seen
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if r := rss(m.pid); r > peak {
					peak = r
				}
			}
		}
	}()
	in := dicomtest.Instance{PatientID: "BIG", StudyUID: dicomtest.Root + ".9.1", SeriesUID: dicomtest.Root + ".9.1.1", SOPUID: dicomtest.Root + ".9.1.1.1",
		SOPClass: uid.XRay3DCraniofacialImage, Modality: "CT", Rows: 1024, Cols: 1024}
	d := in.Dataset()
	d.Remove(header.TagPixelData)
	frames := size / (1024 * 1024 * 2)
	d.SetString(header.TagNumberOfFrames, "IS", strconv.FormatInt(frames, 10))
	head, err := d.Encode(uid.ExplicitVRLittleEndian)
	check(err)
	px := frames * 1024 * 1024 * 2
	pxHeader := []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W', 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(pxHeader[8:], uint32(px))
	a, err := dimse.Dial(ctx, m.addr, dimse.DialOptions{CallingAE: "BENCH", CalledAE: "MOLAR",
		Contexts: dimse.StorageContexts([]string{uid.XRay3DCraniofacialImage}, []string{uid.ExplicitVRLittleEndian})})
	check(err)
	st, err := a.Store(ctx, dimse.StoreParams{SOPClassUID: uid.XRay3DCraniofacialImage, SOPInstanceUID: in.SOPUID, TransferSyntax: uid.ExplicitVRLittleEndian},
		io.MultiReader(bytes.NewReader(head), bytes.NewReader(pxHeader), io.LimitReader(zeroReader{}, px)))
	check(err)
	_ = a.Release(ctx)
	close(stop)
	<-done
	if st != dimse.StatusSuccess {
		log.Printf("large instance: status %v", st)
	}
	return peak - base, base
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// chart draws grouped bars: small instances/s and large MB/s per target.
func chart(results []result, targets []string) []byte {
	colors := []string{"#2a6f97", "#61a5c2", "#e76f51", "#8d99ae", "#264653"}
	var b strings.Builder
	w, h := 780, 360 // h: the bars and their labels; legend rows of four below
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, w, h+16*((len(targets)-1)/4))
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`)
	panels := []struct {
		size, unit string
		val        func(result) float64
	}{{"small", "instances/s (≈40 KB)", func(r result) float64 { return r.PerSec }}, {"large", "MB/s (≈2.6 MB)", func(r result) float64 { return r.MBps }}}
	for pi, p := range panels {
		x0 := 40 + pi*370
		maxV := 1.0
		for _, r := range results {
			if r.Size == p.size && p.val(r) > maxV {
				maxV = p.val(r)
			}
		}
		fmt.Fprintf(&b, `<text x="%d" y="20" font-weight="bold">C-STORE, %s</text>`, x0, p.unit)
		for gi, k := range []int{1, 4} {
			gx := x0 + 20 + gi*max(160, len(targets)*32+16)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%d association(s)</text>`, gx, h-40, k)
			for ti, tn := range targets {
				for _, r := range results {
					if r.Size == p.size && r.Assocs == k && r.Target == tn {
						v := p.val(r)
						bh := int(v / maxV * float64(h-110))
						x := gx + ti*32
						fmt.Fprintf(&b, `<rect x="%d" y="%d" width="28" height="%d" fill="%s"/>`, x, h-60-bh, bh, colors[ti%len(colors)])
						fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10">%.0f</text>`, x, h-64-bh, v)
					}
				}
			}
		}
	}
	for ti, tn := range targets {
		lx, ly := 40+(ti%4)*180, h-20+16*(ti/4)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`, lx, ly, colors[ti%len(colors)], lx+14, ly+9, tn)
	}
	b.WriteString(`</svg>`)
	return []byte(b.String())
}
