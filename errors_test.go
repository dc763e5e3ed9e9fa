package tether_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tether-run/tether"
)

func TestErrors(t *testing.T) {
	n := startNode(t, func(c *tether.Config) { c.HTTP.MaxBodyBytes = 64 })
	good := n.publish("ok", `1`)
	var ahead string // a cursor minted on a longer channel
	for i := 0; i < 3; i++ {
		ahead = n.publish("longer", `1`)
	}
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		code                     string
	}{
		{"bad channel", "POST", "/v1/channels/-x/messages", `1`, nil, 400, "bad_channel"},
		{"long channel", "GET", "/v1/channels/" + strings.Repeat("a", 129) + "/messages", "", nil, 400, "bad_channel"},
		{"bad cursor", "GET", "/v1/channels/ok/messages?after=zz&wait=0", "", nil, 400, "bad_cursor"},
		{"empty cursor", "GET", "/v1/channels/ok/messages?after=&wait=0", "", nil, 400, "bad_cursor"},
		{"cursor ahead", "GET", "/v1/channels/ok/messages?after=" + ahead + "&wait=0", "", nil, 400, "cursor_ahead"},
		{"sse bad cursor", "GET", "/v1/channels/ok/events", "", map[string]string{"Last-Event-ID": "x!"}, 400, "bad_cursor"},
		{"too large", "POST", "/v1/channels/ok/messages", `"` + strings.Repeat("a", 100) + `"`, nil, 413, "body_too_large"},
		{"invalid json", "POST", "/v1/channels/ok/messages", `{"a":`, nil, 400, "invalid_json"},
		{"two values", "POST", "/v1/channels/ok/messages", `1 2`, nil, 400, "invalid_json"},
		{"empty body", "POST", "/v1/channels/ok/messages", ``, nil, 400, "invalid_json"},
		{"wait too long", "GET", "/v1/channels/ok/messages?wait=1h", "", nil, 400, "bad_wait"},
		{"wait negative", "GET", "/v1/channels/ok/messages?wait=-1s", "", nil, 400, "bad_wait"},
		{"wait garbage", "GET", "/v1/channels/ok/messages?wait=soon", "", nil, 400, "bad_wait"},
		{"limit zero", "GET", "/v1/channels/ok/messages?limit=0", "", nil, 400, "bad_limit"},
		{"bad key", "POST", "/v1/channels/ok/messages", `1`, map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}, 400, "bad_idempotency_key"},
		{"unknown route", "GET", "/v2/nothing", "", nil, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/channels/ok/messages", "", nil, 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, n.base+tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d with code %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	// Bad input lost nothing: the channel still holds exactly its message.
	if a := n.poll("ok", "after=0&wait=0"); len(a.Messages) != 1 || a.Messages[0].ID != good {
		t.Fatalf("after bad input the channel holds %+v", a)
	}
}
