package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// plyProp is one property of a PLY element.
type plyProp struct {
	name     string
	typ      string // scalar type, or the item type of a list
	list     bool
	countTyp string
}

type plyElement struct {
	name  string
	count int
	props []plyProp
}

func plySize(t string) int {
	switch t {
	case "char", "uchar", "int8", "uint8":
		return 1
	case "short", "ushort", "int16", "uint16":
		return 2
	case "int", "uint", "int32", "uint32", "float", "float32":
		return 4
	case "double", "float64":
		return 8
	}
	return 0
}

// PLYToSTL converts a PLY mesh (ASCII or binary, vertices with x, y, z and
// faces with vertex indices; polygons are split into triangle fans) to a
// binary STL, as intraoral scanners export both. Counts are checked against
// the file size before anything is allocated.
func PLYToSTL(data []byte) ([]byte, error) {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: ply: %s", ErrInvalid, fmt.Sprintf(f, a...)) }
	end := bytes.Index(data, []byte("end_header"))
	if end < 0 {
		return nil, bad("no end_header")
	}
	body := data[end+len("end_header"):]
	if bytes.HasPrefix(body, []byte("\r\n")) {
		body = body[2:]
	} else if bytes.HasPrefix(body, []byte("\n")) {
		body = body[1:]
	}
	var format string
	var elems []*plyElement
	for _, line := range strings.Split(string(data[:end]), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "format":
			if len(f) < 2 {
				return nil, bad("bad format line")
			}
			format = f[1]
		case "element":
			if len(f) != 3 {
				return nil, bad("bad element line")
			}
			n, err := strconv.Atoi(f[2])
			if err != nil || n < 0 || n > len(body) {
				return nil, bad("bad element count")
			}
			elems = append(elems, &plyElement{name: f[1], count: n})
		case "property":
			if len(elems) == 0 {
				return nil, bad("property before element")
			}
			e := elems[len(elems)-1]
			switch {
			case len(f) == 5 && f[1] == "list":
				if plySize(f[2]) == 0 || plySize(f[3]) == 0 {
					return nil, bad("bad list type")
				}
				e.props = append(e.props, plyProp{name: f[4], typ: f[3], list: true, countTyp: f[2]})
			case len(f) == 3:
				if plySize(f[1]) == 0 {
					return nil, bad("bad property type")
				}
				e.props = append(e.props, plyProp{name: f[2], typ: f[1]})
			default:
				return nil, bad("bad property line")
			}
		}
	}
	var order binary.ByteOrder
	switch format {
	case "ascii":
	case "binary_little_endian":
		order = binary.LittleEndian
	case "binary_big_endian":
		order = binary.BigEndian
	default:
		return nil, bad("unknown format %q", format)
	}
	r := &plyReader{order: order, data: body}
	if order == nil {
		r.sc = bufio.NewScanner(bytes.NewReader(body))
		r.sc.Buffer(make([]byte, 64<<10), 1<<20)
		r.sc.Split(bufio.ScanWords)
	}
	var verts [][3]float32
	var tris [][3]int
	for _, e := range elems {
		if e.name == "vertex" {
			verts = make([][3]float32, 0, min(e.count, len(body)/6))
		}
		for i := 0; i < e.count; i++ {
			var v [3]float32
			var face []int
			for _, p := range e.props {
				if p.list {
					n, err := r.num(p.countTyp)
					if err != nil {
						return nil, err
					}
					if n < 0 || n > 1<<16 {
						return nil, bad("bad list length")
					}
					face = face[:0]
					for k := 0; k < int(n); k++ {
						x, err := r.num(p.typ)
						if err != nil {
							return nil, err
						}
						face = append(face, int(x))
					}
					continue
				}
				x, err := r.num(p.typ)
				if err != nil {
					return nil, err
				}
				switch p.name {
				case "x":
					v[0] = float32(x)
				case "y":
					v[1] = float32(x)
				case "z":
					v[2] = float32(x)
				}
			}
			switch e.name {
			case "vertex":
				verts = append(verts, v)
			case "face":
				for k := 2; k < len(face); k++ {
					tris = append(tris, [3]int{face[0], face[k-1], face[k]})
				}
			}
		}
	}
	if len(tris) == 0 {
		return nil, bad("no faces")
	}
	out := make([]byte, 84, 84+50*len(tris))
	copy(out, "binary STL converted from PLY by Molar")
	binary.LittleEndian.PutUint32(out[80:], uint32(len(tris)))
	var rec [50]byte
	for _, t := range tris {
		var p [3][3]float32
		for k, idx := range t {
			if idx < 0 || idx >= len(verts) {
				return nil, bad("face refers to a missing vertex")
			}
			p[k] = verts[idx]
		}
		n := normal(p)
		vals := append(n[:], p[0][0], p[0][1], p[0][2], p[1][0], p[1][1], p[1][2], p[2][0], p[2][1], p[2][2])
		for k, f := range vals {
			binary.LittleEndian.PutUint32(rec[4*k:], math.Float32bits(f))
		}
		out = append(out, rec[:]...)
	}
	return out, nil
}

func normal(p [3][3]float32) [3]float32 {
	ax, ay, az := p[1][0]-p[0][0], p[1][1]-p[0][1], p[1][2]-p[0][2]
	bx, by, bz := p[2][0]-p[0][0], p[2][1]-p[0][1], p[2][2]-p[0][2]
	nx, ny, nz := ay*bz-az*by, az*bx-ax*bz, ax*by-ay*bx
	l := float32(math.Sqrt(float64(nx*nx + ny*ny + nz*nz)))
	if l == 0 {
		return [3]float32{}
	}
	return [3]float32{nx / l, ny / l, nz / l}
}

// plyReader reads numbers from the body of a PLY file.
type plyReader struct {
	order binary.ByteOrder // nil: ASCII
	data  []byte
	pos   int
	sc    *bufio.Scanner
}

func (r *plyReader) num(t string) (float64, error) {
	if r.order == nil {
		if !r.sc.Scan() {
			return 0, fmt.Errorf("%w: ply: truncated", ErrInvalid)
		}
		v, err := strconv.ParseFloat(r.sc.Text(), 64)
		if err != nil {
			return 0, fmt.Errorf("%w: ply: bad number", ErrInvalid)
		}
		return v, nil
	}
	n := plySize(t)
	if r.pos+n > len(r.data) {
		return 0, fmt.Errorf("%w: ply: truncated", ErrInvalid)
	}
	b := r.data[r.pos : r.pos+n]
	r.pos += n
	switch t {
	case "char", "int8":
		return float64(int8(b[0])), nil
	case "uchar", "uint8":
		return float64(b[0]), nil
	case "short", "int16":
		return float64(int16(r.order.Uint16(b))), nil
	case "ushort", "uint16":
		return float64(r.order.Uint16(b)), nil
	case "int", "int32":
		return float64(int32(r.order.Uint32(b))), nil
	case "uint", "uint32":
		return float64(r.order.Uint32(b)), nil
	case "float", "float32":
		return float64(math.Float32frombits(r.order.Uint32(b))), nil
	default:
		return math.Float64frombits(r.order.Uint64(b)), nil
	}
}
