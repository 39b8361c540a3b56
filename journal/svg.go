package journal

import (
	"fmt"
	"html"
	"strings"
)

// IndicesSVG draws the clinic totals as a grouped bar chart (mean DMF-S and
// def-s per age group) in SVG, server-side, with presentation attributes
// only (no inline styles: the pages' CSP forbids them).
func IndicesSVG(totals []GroupTotal, lang string) string {
	const w, h, left, bottom, top = 720, 300, 48, 40, 28
	m := messages[lang]
	if m == nil {
		m = messages["da"]
	}
	maxV := 1.0
	for _, g := range totals {
		maxV = max(maxV, g.MeanDMFS, g.MeanDefs)
	}
	// A round top for the axis.
	step := 1.0
	for maxV/step > 6 {
		step *= 2
	}
	axisMax := step * float64(int(maxV/step)+1)
	plotW, plotH := float64(w-left-10), float64(h-bottom-top)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="sans-serif" font-size="12">`,
		w, h, w, h, html.EscapeString(m["journal.indices.title"]))
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(m["journal.indices.title"]))
	for v := 0.0; v <= axisMax+1e-9; v += step {
		y := float64(top) + plotH - v/axisMax*plotH
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#d9dee7"/>`, left, y, w-10, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#5b6475">%g</text>`, left-6, y+4, v)
	}
	n := max(len(totals), 1)
	slot := plotW / float64(n)
	bar := slot * 0.32
	for i, g := range totals {
		x0 := float64(left) + float64(i)*slot + slot*0.15
		for j, v := range []float64{g.MeanDMFS, g.MeanDefs} {
			bh := v / axisMax * plotH
			fill := []string{"#0b6e99", "#e08a1e"}[j]
			label := []string{"DMF-S", "def-s"}[j]
			x := x0 + float64(j)*(bar+2)
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.2f</title></rect>`,
				x, float64(top)+plotH-bh, bar, bh, fill, html.EscapeString(g.Label), label, v)
			if v > 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#1d2330">%.1f</text>`, x+bar/2, float64(top)+plotH-bh-3, v)
			}
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#1d2330">%s</text>`, x0+bar+1, h-bottom+16, html.EscapeString(g.Label))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10" fill="#5b6475">n=%d</text>`, x0+bar+1, h-bottom+30, g.Examined)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="8" width="12" height="12" fill="#0b6e99"/><text x="%d" y="18">%s</text>`, left, left+16, html.EscapeString(m["journal.indices.meandmfs"]))
	fmt.Fprintf(&b, `<rect x="%d" y="8" width="12" height="12" fill="#e08a1e"/><text x="%d" y="18">%s</text>`, left+150, left+166, html.EscapeString(m["journal.indices.meandefs"]))
	b.WriteString(`</svg>`)
	return b.String()
}
