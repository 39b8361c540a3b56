package portal

import (
	"fmt"
	"time"
)

// Weekday names for the pages: the portal is Danish by default, English
// when chosen (Go's time formatting knows English names only).
var (
	daWeekdays      = []string{"søndag", "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag"}
	daWeekdaysShort = []string{"søn.", "man.", "tir.", "ons.", "tor.", "fre.", "lør."}
)

// weekdayTime formats t in Danish time as "mandag 30-03-2026 08:00"
// (en: "Monday 30-03-2026 08:00").
func weekdayTime(t time.Time, lang string) string {
	t = t.In(Local)
	if lang == "en" {
		return t.Format("Monday 02-01-2006 15:04")
	}
	return daWeekdays[t.Weekday()] + " " + t.Format("02-01-2006 15:04")
}

// shortWeekdayTime formats t as "man. 30-03 08:00" (en: "Mon 30-03 08:00").
func shortWeekdayTime(t time.Time, lang string) string {
	t = t.In(Local)
	if lang == "en" {
		return t.Format("Mon 02-01 15:04")
	}
	return fmt.Sprintf("%s %s", daWeekdaysShort[t.Weekday()], t.Format("02-01 15:04"))
}

// When is the proposed time with its weekday, in the page's language.
func (i Invitation) When(lang string) string { return weekdayTime(i.Proposed, lang) }

// Label is the slot's start with a short weekday, in the page's language.
func (s Slot) Label(lang string) string { return shortWeekdayTime(s.Start, lang) }
