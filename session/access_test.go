package session

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/registry"
)

// owners is an Extension that knows who owns job channels.
type owners struct {
	fakeExt
	of map[string]string
}

func (o owners) ChannelOwner(_ context.Context, ch string) (string, bool) {
	s, ok := o.of[ch]
	return s, ok
}

// Authorize, the one permission check, as a table.
func TestAuthorize(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := auth.NewVerifier(auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := registry.New(registry.Config{})
	c, err := New(Config{}, openCounting(t), reg, nil, Access{Verifier: v}, owners{of: map[string]string{"job.j1": "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	principal := func(sub string, p auth.Permissions) *auth.Principal {
		cl := auth.Claims{Tether: p}
		cl.Subject, cl.ExpiresAt = sub, jwt.NewNumericDate(time.Now().Add(time.Hour))
		tok, err := auth.Sign(secret, cl)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := c.Authenticate(tok)
		if err != nil {
			t.Fatal(err)
		}
		return pr
	}
	alice := principal("alice", auth.Permissions{Subscribe: []string{"a.*"}, Publish: []string{">"}, Jobs: []string{"t"}, Worker: []string{"w"}})
	bob := principal("bob", auth.Permissions{Subscribe: []string{">"}, Publish: []string{">"}})
	admin := principal("ops", auth.Permissions{Admin: true})
	tests := []struct {
		name string
		p    *auth.Principal
		act  Act
		ok   bool
	}{
		{"subscribe a.*", alice, Act{Op: OpSubscribe, Channel: "a.x"}, true},
		{"subscribe other", alice, Act{Op: OpSubscribe, Channel: "b.x"}, false},
		{"creator follows its job", alice, Act{Op: OpSubscribe, Channel: "job.j1"}, true},
		{"> does not read a job", bob, Act{Op: OpSubscribe, Channel: "job.j1"}, false},
		{"> does not read an unknown job", bob, Act{Op: OpSubscribe, Channel: "job.j2"}, false},
		{"> does not read the index", bob, Act{Op: OpSubscribe, Channel: "jobs"}, false},
		{"admin reads a job", admin, Act{Op: OpSubscribe, Channel: "job.j1"}, true},
		{"publish >", alice, Act{Op: OpPublish, Channel: "x.y"}, true},
		{"publish to a job", alice, Act{Op: OpPublish, Channel: "job.j1"}, false},
		{"publish to the index", bob, Act{Op: OpPublish, Channel: "jobs"}, false},
		{"open publish to a job", auth.Open(), Act{Op: OpPublish, Channel: "job.j1"}, false},
		{"create t", alice, Act{Op: OpCreateJob, JobType: "t"}, true},
		{"create u", alice, Act{Op: OpCreateJob, JobType: "u"}, false},
		{"read own job", alice, Act{Op: OpReadJob, Creator: "alice"}, true},
		{"read another's job", bob, Act{Op: OpReadJob, Creator: "alice"}, false},
		{"cancel another's job", bob, Act{Op: OpCancelJob, Creator: "alice"}, false},
		{"admin cancels", admin, Act{Op: OpCancelJob, Creator: "alice"}, true},
		{"work w", alice, Act{Op: OpWork, JobType: "w"}, true},
		{"work t", alice, Act{Op: OpWork, JobType: "t"}, false},
		{"admin API", admin, Act{Op: OpAdmin}, true},
		{"admin API without admin", alice, Act{Op: OpAdmin}, false},
		{"no principal", nil, Act{Op: OpSubscribe, Channel: "a.x"}, false},
	}
	for _, tt := range tests {
		err := c.Authorize(context.Background(), tt.p, tt.act)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Authorize = %v, want allowed %v", tt.name, err, tt.ok)
		}
		if err != nil {
			if code, _, ok := AuthCode(err); !ok || code == "" {
				t.Errorf("%s: %v has no wire code", tt.name, err)
			}
		}
	}
	if _, err := c.Authenticate(""); err == nil {
		t.Error("no token authenticated")
	}
	if c.Open() {
		t.Error("a Core with a secret is open")
	}
}
