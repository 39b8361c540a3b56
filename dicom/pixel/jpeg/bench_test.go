package jpeg

import (
	"bytes"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	"math"
	"testing"
)

// benchImage is a deterministic photo-like test picture (smooth shading,
// edges and fine texture) so that blocks carry realistic AC coefficients.
func benchImage(w, h int, gray bool) image.Image {
	var seed uint32 = 12345
	noise := func() int {
		seed = seed*1664525 + 1013904223
		return int(seed>>24) % 17
	}
	px := func(x, y int) (r, g, b uint8) {
		fx, fy := float64(x)/float64(w), float64(y)/float64(h)
		v := 128 + 90*math.Sin(6*fx+3*fy) + float64(noise()-8)
		if (x/37+y/29)%2 == 0 {
			v -= 40
		}
		c := func(f float64) uint8 { return uint8(max(0, min(255, f))) }
		return c(v), c(v*0.8 + 60*fy), c(255 - v*0.7)
	}
	if gray {
		m := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				r, _, _ := px(x, y)
				m.SetGray(x, y, color.Gray{Y: r})
			}
		}
		return m
	}
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			r, g, b := px(x, y)
			m.SetRGBA(x, y, color.RGBA{r, g, b, 255})
		}
	}
	return m
}

// BenchmarkDecode decodes 8-bit baseline JPEG (colour 4:2:0 and grey) made
// by image/jpeg at quality 90.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		gray bool
	}{{"ycbcr420-1024x768", false}, {"grey-1024x768", true}} {
		var buf bytes.Buffer
		if err := stdjpeg.Encode(&buf, benchImage(1024, 768, c.gray), &stdjpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decode(data, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
