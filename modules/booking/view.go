package booking

import (
	"fmt"
	"time"
)

// Helpers the page templates call (the shell's template functions are
// shared; formatting in Copenhagen time lives on the types).

var daWeekdaysCap = []string{"Søndag", "Mandag", "Tirsdag", "Onsdag", "Torsdag", "Fredag", "Lørdag"}

// DayLabel formats a date as "Mandag 30. marts" (da) or "Monday 30 March" (en).
func DayLabel(t time.Time, lang string) string {
	if lang == "en" {
		return t.Format("Monday 2 January")
	}
	return fmt.Sprintf("%s %d. %s", daWeekdaysCap[t.Weekday()], t.Day(), daMonths[t.Month()-1])
}

// Clock is the start's wall-clock time in Copenhagen ("08:30").
func (a Appointment) Clock() string { return a.Start.In(Loc).Format("15:04") }

// EndClock is the end's wall-clock time.
func (a Appointment) EndClock() string { return a.End.In(Loc).Format("15:04") }

// When is the start as a full date and time in the language.
func (a Appointment) When(lang string) string {
	if lang == "en" {
		return EnglishDate(a.Start)
	}
	return DanishDate(a.Start)
}

// DayISO is the local date "2006-01-02".
func (a Appointment) DayISO() string { return a.Start.In(Loc).Format("2006-01-02") }

// Public is what citizens see of the type.
func (a Appointment) Public(lang string) string {
	if a.PublicName != "" {
		return a.PublicName
	}
	if lang == "en" {
		return "Appointment"
	}
	return "Aftale"
}

// TypeLabel is the staff name of the type in the language.
func (a Appointment) TypeLabel(lang string) string {
	if lang == "en" && a.TypeNameEN != "" {
		return a.TypeNameEN
	}
	return a.TypeName
}

// Label is the staff name of the type in the language.
func (t Type) Label(lang string) string {
	if lang == "en" && t.NameEN != "" {
		return t.NameEN
	}
	return t.Name
}

// Public is what citizens see of the type.
func (t Type) Public(lang string) string {
	if t.PublicName != "" {
		return t.PublicName
	}
	return t.Label(lang)
}

// Clock is the slot's local start ("09:15").
func (s Slot) Clock() string { return s.Start.In(Loc).Format("15:04") }

// Value is the slot's start for a form (RFC 3339, UTC).
func (s Slot) Value() string { return s.Start.UTC().Format(time.RFC3339) }

// Label formats the day.
func (d CalendarDay) Label(lang string) string { return DayLabel(d.Date, lang) }

// ISO is the date "2006-01-02".
func (d CalendarDay) ISO() string { return d.Date.Format("2006-01-02") }

// Label formats the day.
func (d slotDay) Label(lang string) string { return DayLabel(d.Date, lang) }

// Clock is the row's local time.
func (g gridRow) Clock() string { return g.Time.In(Loc).Format("15:04") }

// Local is the row's time for a form ("2006-01-02T15:04").
func (g gridRow) Local() string { return g.Time.In(Loc).Format("2006-01-02T15:04") }

// Label formats the opening interval.
func (h Hours) Label() string {
	return fmt.Sprintf("%02d:%02d–%02d:%02d", h.Opens/60, h.Opens%60, h.Closes/60, h.Closes%60)
}

// Clock returns "HH:MM" of a minute count.
func clockText(min int) string { return fmt.Sprintf("%02d:%02d", min/60, min%60) }

// OpensText and ClosesText are for the admin form.
func (h Hours) OpensText() string  { return clockText(h.Opens) }
func (h Hours) ClosesText() string { return clockText(h.Closes) }

// Period formats an absence.
func (a Absence) Period() string {
	return a.From.In(Loc).Format("2006-01-02 15:04") + " – " + a.Until.In(Loc).Format("2006-01-02 15:04")
}

// ISO formats a closed day.
func (c ClosedDay) ISO() string { return c.Day.Format("2006-01-02") }

// ISO formats the due date.
func (r RecallEntry) ISO() string { return r.DueDate.Format("2006-01-02") }

// RespondByISO is the answer date.
func (i Invitation) RespondByISO() string { return i.RespondBy.In(Loc).Format("2006-01-02") }

// HoursFor returns the weekday's first interval (for the admin form).
func (v adminView) HoursFor(wd int) Hours {
	for _, h := range v.Hours {
		if h.Weekday == wd {
			return h
		}
	}
	return Hours{Weekday: wd}
}

// WeekdayName names an ISO weekday (1 = Monday).
func WeekdayName(wd int, lang string) string {
	d := time.Weekday(wd % 7)
	if lang == "en" {
		return d.String()
	}
	return daWeekdaysCap[d]
}

// WeekdayLabel is WeekdayName for templates.
func (v adminView) WeekdayLabel(wd int, lang string) string { return WeekdayName(wd, lang) }

// Value is the absence's resource name.
func (v adminView) ResourceName(id int64) string {
	for _, r := range v.Resources {
		if r.ID == id {
			return r.Name
		}
	}
	return ""
}
