package auth

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to Verify: it never panics, never
// accepts a token not signed with the secret, and answers every refusal
// with a 401 code.
func FuzzVerify(f *testing.F) {
	v, err := NewVerifier(Config{Secret: secret, Now: clock})
	if err != nil {
		f.Fatal(err)
	}
	c := claims("alice", time.Hour)
	c.Tether = Permissions{Subscribe: []string{"a.*", ">"}, Publish: []string{"b.>"}, Jobs: []string{"*"}}
	good, err := Sign(secret, c)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add(strings.Repeat("x", DefaultMaxTokenBytes+1))
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(token)
		if err == nil {
			if token != good {
				t.Fatalf("accepted a token that was never signed: %q", token)
			}
			return
		}
		if p != nil {
			t.Fatal("a principal with an error")
		}
		if e, ok := AsError(err); !ok || e.Status() != 401 {
			t.Fatalf("refusal %v is not a 401 *Error", err)
		}
	})
}
