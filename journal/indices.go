package journal

// Indices are the caries indices of a chart: DMF-S for permanent teeth
// (decayed, missing because of caries, filled surfaces) and def-s for
// deciduous teeth (decayed, extracted because of caries, filled surfaces),
// with the tooth counts DMF-T and def-t.
//
// Counting rules (WHO oral health surveys; DOMAIN.md "Dental care"):
//   - only teeth in the mouth count for D/d and F/f; a surface with caries
//     counts as decayed even when it is also filled (secondary caries);
//   - a crowned tooth counts all its surfaces as filled, less the decayed;
//   - a tooth extracted because of caries counts all its surfaces as M/e;
//     teeth extracted for other reasons (orthodontic, trauma …), missing
//     from agenesis, not erupted or shed naturally do not count;
//   - a deciduous tooth extracted because of caries counts as e only until
//     its permanent successor is recorded in the mouth: by then it would
//     have been shed anyway (DOMAIN.md, def-s). A successor that is only
//     expected by age does not end the count;
//   - sealants, fractures and hypomineralisation do not count;
//   - premolars and molars have 5 surfaces, incisors and canines 4
//     (Tooth.IndexSurfaces), which caps a tooth's count.
type Indices struct {
	DS   int `json:"D_s"`
	MS   int `json:"M_s"`
	FS   int `json:"F_s"`
	DMFS int `json:"DMFS"`
	DMFT int `json:"DMFT"`
	Ds   int `json:"d_s"`
	Es   int `json:"e_s"`
	Fs   int `json:"f_s"`
	DefS int `json:"defs"`
	DefT int `json:"deft"`
	// CariesFree: DMF-S and def-s are both 0.
	CariesFree bool `json:"caries_free"`
}

// ComputeIndices counts DMF-S and def-s of a chart.
func ComputeIndices(c *Chart) Indices {
	var ix Indices
	for _, t := range AllTeeth() {
		s := c.Teeth[t]
		var d, m, f int
		switch {
		case c.extractedForCaries(t):
			m = t.IndexSurfaces()
		case s.Status.InMouth():
			for _, ss := range s.Surfaces {
				if ss.Caries != "" {
					d++
				} else if ss.Filling != "" {
					f++
				}
			}
			if s.Crown != "" {
				f = t.IndexSurfaces() - d
			}
			max := t.IndexSurfaces()
			d = min(d, max)
			f = min(f, max-d)
		}
		if t.Deciduous() {
			ix.Ds += d
			ix.Es += m
			ix.Fs += f
			if d+m+f > 0 {
				ix.DefT++
			}
		} else {
			ix.DS += d
			ix.MS += m
			ix.FS += f
			if d+m+f > 0 {
				ix.DMFT++
			}
		}
	}
	ix.DMFS = ix.DS + ix.MS + ix.FS
	ix.DefS = ix.Ds + ix.Es + ix.Fs
	ix.CariesFree = ix.DMFS == 0 && ix.DefS == 0
	return ix
}

// extractedForCaries reports whether tooth t counts as M (permanent) or e
// (deciduous) in the chart: extracted because of caries and, for a
// deciduous tooth, its successor not yet recorded in the mouth.
func (c *Chart) extractedForCaries(t Tooth) bool {
	s := c.Teeth[t]
	return s.Status == StatusExtracted && s.ExtractionReason == "caries" && !c.successorErupted(t)
}
