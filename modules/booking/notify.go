package booking

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// Message is one notification to one recipient. It carries times, places
// and a first name, never health data.
type Message struct {
	Kind  string // confirmation, reminder, moved, cancelled, invitation, followup
	Email string // recipient's address ("" if none)
	Phone string // recipient's mobile number ("" if none)
	// Subject and Text are the e-mail; Short is the SMS.
	Subject, Text, Short string
	// Calendar is an iCalendar object to attach (nil: none).
	Calendar []byte
}

// Notifier sends a message through one channel (e-mail, SMS …). It returns
// ErrNoAddress when the message has no address for its channel.
type Notifier interface {
	Notify(ctx context.Context, m Message) error
}

// ErrNoAddress: the recipient has no address for the channel.
var ErrNoAddress = errors.New("booking: no address for this channel")

// Channels sends a message through every channel the recipient has an
// address for. It succeeds when at least one channel delivered.
type Channels []Notifier

// Notify implements Notifier.
func (cs Channels) Notify(ctx context.Context, m Message) error {
	var errs []error
	ok := false
	for _, c := range cs {
		err := c.Notify(ctx, m)
		switch {
		case err == nil:
			ok = true
		case errors.Is(err, ErrNoAddress):
		default:
			errs = append(errs, err)
		}
	}
	if ok {
		return nil
	}
	if len(errs) == 0 {
		return ErrNoAddress
	}
	return errors.Join(errs...)
}

// SMTP sends e-mail through an SMTP server (submission), with the calendar
// as a text/calendar attachment.
type SMTP struct {
	Addr string // host:port
	From string // e.g. "Tandplejen <tandpleje@kommune.dk>"
	// Username and Password authenticate (PLAIN, only over TLS).
	Username, Password string
	// TLS: "starttls" (use it when offered; required with a password),
	// "require" (STARTTLS must succeed), "tls" (implicit TLS, port 465) or
	// "off".
	TLS       string
	TLSConfig *tls.Config
	// Hello is the name sent in EHLO (default "localhost").
	Hello   string
	Timeout time.Duration
}

// Notify implements Notifier.
func (s *SMTP) Notify(ctx context.Context, m Message) error {
	if m.Email == "" {
		return ErrNoAddress
	}
	to, err := mail.ParseAddress(m.Email)
	if err != nil {
		return fmt.Errorf("booking: smtp: recipient: %w", err)
	}
	from, err := mail.ParseAddress(s.From)
	if err != nil {
		return fmt.Errorf("booking: smtp: sender: %w", err)
	}
	body, err := buildMail(from, to, m, time.Now())
	if err != nil {
		return err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("booking: smtp: address: %w", err)
	}
	tlsCfg := s.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	var conn net.Conn
	d := &net.Dialer{}
	if s.TLS == "tls" {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsCfg}).DialContext(ctx, "tcp", s.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", s.Addr)
	}
	if err != nil {
		return fmt.Errorf("booking: smtp: connect: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("booking: smtp: %w", err)
	}
	defer c.Close()
	hello := s.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return fmt.Errorf("booking: smtp: hello: %w", err)
	}
	if s.TLS != "tls" && s.TLS != "off" {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsCfg); err != nil {
				return fmt.Errorf("booking: smtp: starttls: %w", err)
			}
		} else if s.TLS == "require" || s.Username != "" {
			return errors.New("booking: smtp: the server does not offer STARTTLS")
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("booking: smtp: auth: %w", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("booking: smtp: mail from: %w", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return fmt.Errorf("booking: smtp: rcpt: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("booking: smtp: data: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("booking: smtp: data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("booking: smtp: data: %w", err)
	}
	return c.Quit()
}

// buildMail writes a MIME message: a UTF-8 text part and, when there is a
// calendar, a text/calendar attachment (base64).
func buildMail(from, to *mail.Address, m Message, date time.Time) ([]byte, error) {
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", from.String())
	h("To", to.String())
	h("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h("Date", date.Format(time.RFC1123Z))
	h("Message-ID", fmt.Sprintf("<%s@%s>", randomHex(12), domainOf(from.Address)))
	h("MIME-Version", "1.0")
	h("Auto-Submitted", "auto-generated")
	text := func(w io.Writer) error {
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(strings.ReplaceAll(m.Text, "\n", "\r\n"))); err != nil {
			return err
		}
		return qp.Close()
	}
	if m.Calendar == nil {
		h("Content-Type", `text/plain; charset="utf-8"`)
		h("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := text(&b); err != nil {
			return nil, fmt.Errorf("booking: mail: %w", err)
		}
		return b.Bytes(), nil
	}
	mw := multipart.NewWriter(&b)
	h("Content-Type", fmt.Sprintf(`multipart/mixed; boundary="%s"`, mw.Boundary()))
	b.WriteString("\r\n")
	tp, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {`text/plain; charset="utf-8"`},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return nil, fmt.Errorf("booking: mail: %w", err)
	}
	if err := text(tp); err != nil {
		return nil, fmt.Errorf("booking: mail: %w", err)
	}
	cp, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {`text/calendar; charset="utf-8"; method=PUBLISH; name="aftale.ics"`},
		"Content-Disposition":       {`attachment; filename="aftale.ics"`},
		"Content-Transfer-Encoding": {"base64"},
	})
	if err != nil {
		return nil, fmt.Errorf("booking: mail: %w", err)
	}
	enc := base64.StdEncoding.EncodeToString(m.Calendar)
	for len(enc) > 76 {
		fmt.Fprintf(cp, "%s\r\n", enc[:76])
		enc = enc[76:]
	}
	fmt.Fprintf(cp, "%s\r\n", enc)
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("booking: mail: %w", err)
	}
	return b.Bytes(), nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "molar"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SMSGateway sends one text message.
type SMSGateway interface {
	SendSMS(ctx context.Context, to, text string) error
}

// SMS sends the short text of a message through a gateway.
type SMS struct{ Gateway SMSGateway }

// Notify implements Notifier.
func (s SMS) Notify(ctx context.Context, m Message) error {
	if m.Phone == "" || s.Gateway == nil {
		return ErrNoAddress
	}
	text := m.Short
	if text == "" {
		text = m.Subject
	}
	return s.Gateway.SendSMS(ctx, m.Phone, text)
}

// HTTPGateway posts {"to": "+45…", "text": "…"} as JSON to an SMS provider's
// URL with a bearer token; any 2xx answer is success.
type HTTPGateway struct {
	URL, Token string
	Client     *http.Client
}

// SendSMS implements SMSGateway.
func (g HTTPGateway) SendSMS(ctx context.Context, to, text string) error {
	body, _ := json.Marshal(map[string]string{"to": to, "text": text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("booking: sms: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	c := g.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("booking: sms: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("booking: sms: gateway answered %d", resp.StatusCode)
	}
	return nil
}
