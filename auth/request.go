package auth

import (
	"net/http"
	"strings"
)

// TokenQueryParam is the query parameter carrying a token where a browser
// cannot set headers: EventSource and WebSocket.
const TokenQueryParam = "token"

// TokenFromRequest returns the token an HTTP request carries: the
// credentials of "Authorization: Bearer <token>" (the scheme is
// case-insensitive, RFC 9110 section 11.1), else the "token" query
// parameter, else "". A token in a URL can end up in access logs and
// browser history, so clients use it only where no header can be set,
// with short-lived tokens.
func TokenFromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, cred, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(cred)
		}
		return ""
	}
	return r.URL.Query().Get(TokenQueryParam)
}

// VerifyRequest verifies the token r carries (TokenFromRequest).
func (v *Verifier) VerifyRequest(r *http.Request) (*Principal, error) {
	return v.Verify(TokenFromRequest(r))
}

// WWWAuthenticate is the header value to send with a 401 answer for err
// (RFC 6750 section 3), "" if err is not a 401 denial.
func WWWAuthenticate(err error) string {
	e, ok := AsError(err)
	if !ok || e.Status() != http.StatusUnauthorized {
		return ""
	}
	if TokenMissing(err) {
		return `Bearer realm="tether"`
	}
	return `Bearer realm="tether", error="invalid_token"`
}
