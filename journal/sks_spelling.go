package journal

import (
	"regexp"
	"strings"
)

// The SKS texts we ship lost their Danish letters upstream (æ→ae, ø→oe,
// å→aa; data/SOURCES.md). Staff and families read them (signed entries,
// the portal), so LoadSKS puts the letters back word by word from this
// list: every word of the file that holds ae, oe or aa is either here or
// Latin (latinSKSWords); a test keeps the two lists complete. Codes are
// exact either way; search folds both spellings.
var danishSKSWords = map[string]string{
	"taender": "tænder", "taenders": "tænders", "fortaender": "fortænder",
	"kaebe": "kæbe", "kaeber": "kæber", "kaebernes": "kæbernes", "kaebeled": "kæbeled", "kaebecyste": "kæbecyste",
	"underkaebe": "underkæbe", "underkaeben": "underkæben", "underkaebecyste": "underkæbecyste",
	"overkaebe": "overkæbe", "overkaeben": "overkæben", "overkaebecyste": "overkæbecyste",
	"kaempecellegranulom": "kæmpecellegranulom",
	"paa":                 "på", "foer": "før", "aabent": "åbent", "vaev": "væv", "tandvaev": "tandvæv", "stoettevaev": "støttevæv",
	"udfoerselsgang": "udførselsgang", "haarde": "hårde", "haaret": "håret", "tilstoedende": "tilstødende",
	"tandkoed": "tandkød", "mundbetaendelse": "mundbetændelse", "betaendelse": "betændelse",
	"betaendelsestilstand": "betændelsestilstand", "laeber": "læber", "laeberne": "læberne",
	"laebebidning": "læbebidning", "foraarsaget": "forårsaget", "ulceroes": "ulcerøs", "submukoes": "submukøs",
	"alveolaer": "alveolær", "tandloeshed": "tandløshed", "stoerrelse": "størrelse", "stoerre": "større",
	"naermere": "nærmere", "laesion": "læsion", "laegemiddel": "lægemiddel", "beslaegtede": "beslægtede",
	"ujaevn": "ujævn", "tandbelaegninger": "tandbelægninger", "mundtoerhed": "mundtørhed",
	"mandibulaer": "mandibulær", "maksilaert": "maksillært", "gangraen": "gangræn", "forsnaevring": "forsnævring",
	"bloedning": "blødning", "aftoes": "aftøs",
}

// latinSKSWords hold ae, oe or aa as written (Latin and Greek terms, and
// "lymfoepitelial", lymfo-epitelial).
var latinSKSWords = map[string]bool{
	"mandibulae": true, "maxillae": true, "mucosae": true, "glandulae": true, "linguae": true, "buccae": true,
	"parotideae": true, "gingivae": true, "pulpae": true, "haemorrhagica": true, "praecox": true,
	"lymphoepithelialis": true, "lymfoepitelial": true, "aphthae": true, "leukoedema": true,
}

var sksWord = regexp.MustCompile(`\p{L}+`)

// danishSpelling puts the Danish letters back into an SKS text.
func danishSpelling(text string) string {
	return sksWord.ReplaceAllStringFunc(text, func(w string) string {
		d, ok := danishSKSWords[strings.ToLower(w)]
		if !ok {
			return w
		}
		if first := w[:1]; first != strings.ToLower(first) {
			r := []rune(d)
			return strings.ToUpper(string(r[0])) + string(r[1:])
		}
		return d
	})
}
