package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/tether-run/tether/wire"
)

// maxHTTPBody bounds an HTTP answer read whole (not a stream).
const maxHTTPBody = 16 << 20

// httpError is the error body of the HTTP API (docs/api.md, "Errors").
type httpError struct {
	Error struct {
		Code    wire.Code `json:"code"`
		Message string    `json:"message"`
	} `json:"error"`
}

// doHTTP sends one HTTP request and decodes a 2xx answer's JSON into out
// (if not nil). An answer with an error body is a *wire.ErrorFrame with
// the body's code (the HTTP API's codes are the framed protocol's where
// both have one); a failure to get an answer is returned as is.
func doHTTP(ctx context.Context, hc *http.Client, method, url string, header http.Header, body []byte, out any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return resp, statusError(resp, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp, fmt.Errorf("tether: client: %s %s: bad answer: %w", method, url, err)
		}
	}
	return resp, nil
}

// statusError turns an HTTP error answer into a *wire.ErrorFrame.
func statusError(resp *http.Response, body []byte) error {
	var he httpError
	if json.Unmarshal(body, &he) == nil && he.Error.Code != "" {
		return &wire.ErrorFrame{Type: wire.TypeError, Code: he.Error.Code, Message: he.Error.Message}
	}
	code := wire.CodeInternal
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusGatewayTimeout:
		code = wire.CodeUnavailable
	case resp.StatusCode == http.StatusTooManyRequests:
		code = wire.CodeTooManyRequests
	case resp.StatusCode/100 == 4:
		code = wire.CodeBadRequest
	}
	return &wire.ErrorFrame{Type: wire.TypeError, Code: code, Message: "HTTP " + resp.Status}
}
