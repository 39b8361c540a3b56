// Package bookingtest helps tests of the booking module and of the server
// that wires it: a real SMTP server that keeps what it receives, a MIME
// reader for the messages, and a strict iCalendar (RFC 5545) checker.
package bookingtest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one message the sink received.
type Mail struct {
	From string
	To   []string
	Data []byte
}

// SMTPSink is a real SMTP server (github.com/emersion/go-smtp) on a
// loopback port that keeps every message.
type SMTPSink struct {
	Addr string
	mu   sync.Mutex
	msgs []Mail
	got  chan struct{}
}

// StartSMTP starts a sink for the test; it stops when the test ends.
func StartSMTP(t testing.TB) *SMTPSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp sink: %v", err)
	}
	s := &SMTPSink{Addr: ln.Addr().String(), got: make(chan struct{}, 1000)}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "sink.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Messages returns what was received so far.
func (s *SMTPSink) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.msgs...)
}

// Wait waits until a message matching fn arrived (or the timeout passed).
func (s *SMTPSink) Wait(timeout time.Duration, fn func(Mail) bool) (Mail, bool) {
	deadline := time.After(timeout)
	for {
		for _, m := range s.Messages() {
			if fn(m) {
				return m, true
			}
		}
		select {
		case <-s.got:
		case <-deadline:
			return Mail{}, false
		}
	}
}

type backend struct{ s *SMTPSink }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s    *SMTPSink
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, Mail{From: x.from, To: x.to, Data: b})
	x.s.mu.Unlock()
	select {
	case x.s.got <- struct{}{}:
	default:
	}
	return nil
}

// Parsed is a received message taken apart.
type Parsed struct {
	Subject string
	To      string
	Text    string
	// Calendars are the text/calendar attachments, decoded.
	Calendars [][]byte
}

// Parse reads a MIME message.
func Parse(data []byte) (Parsed, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return Parsed{}, err
	}
	dec := new(mime.WordDecoder)
	subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Parsed{}, err
	}
	p := Parsed{Subject: subj, To: msg.Header.Get("To")}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return Parsed{}, err
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, err := decode(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		p.Text = string(b)
		return p, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Parsed{}, err
		}
		b, err := decode(part, part.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return Parsed{}, err
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			p.Text = string(b)
		case "text/calendar":
			p.Calendars = append(p.Calendars, b)
		}
	}
	return p, nil
}

func decode(r io.Reader, enc string) ([]byte, error) {
	switch strings.ToLower(enc) {
	case "base64":
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, &newlineStripper{r: r}))
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(r))
	}
	return io.ReadAll(r)
}

type newlineStripper struct{ r io.Reader }

func (n *newlineStripper) Read(p []byte) (int, error) {
	buf := make([]byte, len(p))
	k, err := n.r.Read(buf)
	j := 0
	for _, c := range buf[:k] {
		if c != '\r' && c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// VEvent is one checked event.
type VEvent struct {
	Props map[string]string
	Start time.Time
	End   time.Time
}

// Calendar is a checked iCalendar object.
type Calendar struct {
	Props  map[string]string
	Events []VEvent
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9-]+$`)

// CheckICS parses an iCalendar object strictly: CRLF line ends, lines of at
// most 75 octets, folding, balanced BEGIN/END, VERSION 2.0 and PRODID, and
// per VEVENT a UID, DTSTAMP, DTSTART and DTEND after it (RFC 5545 3.6.1).
func CheckICS(b []byte) (Calendar, error) {
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		return Calendar{}, errors.New("ics: does not end in CRLF")
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Split(splitCRLF)
	for sc.Scan() {
		l := sc.Text()
		if len(l) > 75 {
			return Calendar{}, fmt.Errorf("ics: line longer than 75 octets: %q", l)
		}
		if strings.ContainsAny(l, "\r\n") {
			return Calendar{}, fmt.Errorf("ics: bare CR or LF in %q", l)
		}
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			if len(lines) == 0 {
				return Calendar{}, errors.New("ics: starts with a continuation line")
			}
			lines[len(lines)-1] += l[1:]
			continue
		}
		lines = append(lines, l)
	}
	var cal Calendar
	cal.Props = map[string]string{}
	var stack []string
	var ev *VEvent
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return Calendar{}, fmt.Errorf("ics: no colon in %q", l)
		}
		name, _, _ = strings.Cut(name, ";")
		if !nameRE.MatchString(name) {
			return Calendar{}, fmt.Errorf("ics: bad property name %q", name)
		}
		switch name {
		case "BEGIN":
			stack = append(stack, value)
			if value == "VEVENT" {
				ev = &VEvent{Props: map[string]string{}}
			}
			continue
		case "END":
			if len(stack) == 0 || stack[len(stack)-1] != value {
				return Calendar{}, fmt.Errorf("ics: END:%s does not close %v", value, stack)
			}
			stack = stack[:len(stack)-1]
			if value == "VEVENT" {
				for _, req := range []string{"UID", "DTSTAMP", "DTSTART"} {
					if ev.Props[req] == "" {
						return Calendar{}, fmt.Errorf("ics: VEVENT without %s", req)
					}
				}
				var err error
				if ev.Start, err = time.Parse("20060102T150405Z", ev.Props["DTSTART"]); err != nil {
					return Calendar{}, fmt.Errorf("ics: DTSTART: %w", err)
				}
				if ev.End, err = time.Parse("20060102T150405Z", ev.Props["DTEND"]); err != nil || !ev.End.After(ev.Start) {
					return Calendar{}, fmt.Errorf("ics: DTEND missing or not after DTSTART")
				}
				cal.Events = append(cal.Events, *ev)
				ev = nil
			}
			continue
		}
		if len(stack) == 0 {
			return Calendar{}, fmt.Errorf("ics: property %s outside VCALENDAR", name)
		}
		if ev != nil {
			ev.Props[name] = value
		} else if stack[len(stack)-1] == "VCALENDAR" {
			cal.Props[name] = value
		}
	}
	if len(stack) != 0 {
		return Calendar{}, fmt.Errorf("ics: unclosed %v", stack)
	}
	if cal.Props["VERSION"] != "2.0" || cal.Props["PRODID"] == "" {
		return Calendar{}, errors.New("ics: VERSION 2.0 and PRODID are required")
	}
	return cal, nil
}

func splitCRLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.Index(data, []byte("\r\n")); i >= 0 {
		return i + 2, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
