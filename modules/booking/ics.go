package booking

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one appointment as an iCalendar VEVENT.
type Event struct {
	UID         string // stable per appointment, so a move updates the event
	Sequence    int    // the appointment's version
	Start, End  time.Time
	Summary     string
	Location    string
	Description string
	Cancelled   bool
	// Tentative: a proposed time not yet accepted (a call-in's proposal).
	Tentative bool
}

// ICS writes an iCalendar object (RFC 5545) with the events. Times are
// written in UTC, which every client converts to the reader's zone, so the
// daylight-saving changes need no VTIMEZONE. Lines end in CRLF and are
// folded at 75 octets.
func ICS(name string, stamp time.Time, events ...Event) []byte {
	var b strings.Builder
	line := func(s string) { fold(&b, s) }
	line("BEGIN:VCALENDAR")
	line("VERSION:2.0")
	line("PRODID:-//Molar//Booking//DA")
	line("CALSCALE:GREGORIAN")
	line("METHOD:PUBLISH")
	if name != "" {
		line("X-WR-CALNAME:" + escapeText(name))
	}
	for _, e := range events {
		line("BEGIN:VEVENT")
		line("UID:" + e.UID)
		line(fmt.Sprintf("SEQUENCE:%d", e.Sequence))
		line("DTSTAMP:" + icsTime(stamp))
		line("DTSTART:" + icsTime(e.Start))
		line("DTEND:" + icsTime(e.End))
		line("SUMMARY:" + escapeText(e.Summary))
		if e.Location != "" {
			line("LOCATION:" + escapeText(e.Location))
		}
		if e.Description != "" {
			line("DESCRIPTION:" + escapeText(e.Description))
		}
		switch {
		case e.Cancelled:
			line("STATUS:CANCELLED")
		case e.Tentative:
			line("STATUS:TENTATIVE")
		default:
			line("STATUS:CONFIRMED")
		}
		line("TRANSP:OPAQUE")
		line("END:VEVENT")
	}
	line("END:VCALENDAR")
	return []byte(b.String())
}

func icsTime(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// escapeText escapes a TEXT value (RFC 5545 3.3.11).
func escapeText(s string) string {
	r := strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\r\n", `\n`, "\n", `\n`, "\r", `\n`)
	return r.Replace(s)
}

// fold writes a content line folded at 75 octets without splitting a UTF-8
// character (RFC 5545 3.1).
func fold(b *strings.Builder, s string) {
	limit := 75
	for len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		b.WriteString(s[:cut])
		b.WriteString("\r\n ")
		s = s[cut:]
		limit = 74 // the leading space counts
	}
	b.WriteString(s)
	b.WriteString("\r\n")
}

// eventUID is the appointment's stable UID.
func eventUID(apptID int64, host string) string {
	if host == "" {
		host = "molar"
	}
	return fmt.Sprintf("booking-%d@%s", apptID, host)
}
