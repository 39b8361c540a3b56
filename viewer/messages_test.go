package viewer

import "testing"

func TestMessagesBothLanguages(t *testing.T) {
	m := Messages()
	for k := range m["da"] {
		if _, ok := m["en"][k]; !ok {
			t.Errorf("no English text for %s", k)
		}
	}
	for k := range m["en"] {
		if _, ok := m["da"][k]; !ok {
			t.Errorf("no Danish text for %s", k)
		}
	}
}
