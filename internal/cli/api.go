package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxAnswer bounds an answer of the API read whole.
const maxAnswer = 16 << 20

// Error is an error answer of the server: its HTTP status and the stable
// code of its body (docs/api.md, "Errors"), or a refusal on the client's
// connection (Status 0).
type Error struct {
	Status  int // 0: not an HTTP answer
	Code    string
	Message string
}

func (e *Error) Error() string {
	s := e.Code
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// API calls tether's HTTP API (jobs, connections) with a bearer token.
type API struct {
	Base  string // http://host:port
	Token string
	HTTP  *http.Client
	// Stderr, when set, gets a progress line while a request takes more
	// than a second.
	Stderr io.Writer
}

// Do sends method path with body (JSON, or nil) and decodes a 2xx
// answer's JSON into out (unless nil). An error answer is an *Error with
// the server's code; an answer without one gets the code http_<status>.
func (a *API) Do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	if a.Stderr != nil {
		p := StartProgress(a.Stderr, fmt.Sprintf("waiting for %s %s", method, a.Base+path))
		defer p.Done()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no answer from %s: %w", a.Base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if len(b) > maxAnswer {
		return fmt.Errorf("%s %s: answer larger than %d bytes", method, path, maxAnswer)
	}
	if resp.StatusCode/100 != 2 {
		return answerError(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: not the JSON expected: %w", method, path, err)
	}
	return nil
}

// answerError is the *Error of an error answer.
func answerError(resp *http.Response, body []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return &Error{Status: resp.StatusCode, Code: Printable(e.Error.Code, 64), Message: Printable(e.Error.Message, 500)}
	}
	return &Error{Status: resp.StatusCode, Code: fmt.Sprintf("http_%d", resp.StatusCode), Message: Printable(string(body), 200)}
}

// Printable makes s safe to print on a terminal: valid UTF-8, control
// characters as spaces, trimmed, and at most n bytes (then "...").
func Printable(s string, n int) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "..."
	}
	return s
}
