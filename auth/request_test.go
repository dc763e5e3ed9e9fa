package auth

import (
	"net/http/httptest"
	"testing"
)

func TestTokenFromRequest(t *testing.T) {
	cases := []struct {
		name, target, authz, proto, want string
	}{
		{"bearer", "/", "Bearer abc", "", "abc"},
		{"scheme case", "/", "bearer abc", "", "abc"},
		{"header wins over query", "/?token=q", "Bearer h", "", "h"},
		{"query", "/v1/channels/x/sse?token=q", "", "", "q"},
		{"basic is not a token", "/?token=q", "Basic dXNlcjpwdw==", "", ""},
		{"none", "/", "", "", ""},
		{"bearer without credentials", "/", "Bearer", "", ""},
		{"subprotocol", "/v1/ws", "", "tether, tether.token.a.b-c_d", "a.b-c_d"},
		{"subprotocol first", "/v1/ws", "", "tether.token.p,tether", "p"},
		{"subprotocol wins over query", "/v1/ws?token=q", "", "tether, tether.token.p", "p"},
		{"header wins over subprotocol", "/v1/ws", "Bearer h", "tether, tether.token.p", "h"},
		{"other subprotocols are no token", "/v1/ws?token=q", "", "tether, chat", "q"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", c.target, nil)
		if c.authz != "" {
			r.Header.Set("Authorization", c.authz)
		}
		if c.proto != "" {
			r.Header.Set("Sec-WebSocket-Protocol", c.proto)
		}
		if got := TokenFromRequest(r); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestVerifyRequest(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret})
	tok := sign(t, secret, claims("alice", 3600e9))
	r := httptest.NewRequest("GET", "/?token="+tok, nil)
	if p, err := v.VerifyRequest(r); err != nil || p.Sub() != "alice" {
		t.Errorf("VerifyRequest = %v, %v", p, err)
	}
	if _, err := v.VerifyRequest(httptest.NewRequest("GET", "/", nil)); !TokenMissing(err) {
		t.Errorf("no token: %v", err)
	}
}
