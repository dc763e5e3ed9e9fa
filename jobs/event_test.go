package jobs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tether-run/tether/store"
)

func TestIDs(t *testing.T) {
	now := time.Now()
	a, b := newID(now), newID(now.Add(time.Millisecond))
	if !ValidID(a) || !ValidID(b) || a >= b {
		t.Fatalf("ids %q %q: want valid and ordered by time", a, b)
	}
	if keyID("", "k") != keyID("", "k") || keyID("", "k") == keyID("", "l") || keyID("a", "k") == keyID("b", "k") || !ValidID(keyID("", "k")) {
		t.Fatal("key ids must be deterministic, distinct and valid")
	}
	if !store.ValidChannel(ChannelPrefix + a) {
		t.Fatal("job channel name invalid")
	}
	if id, ok := IDFromChannel(ChannelPrefix + a); !ok || id != a {
		t.Fatal("IDFromChannel")
	}
	for _, bad := range []string{"", "job.", "job.x", "jobs", "news", ChannelPrefix + strings.ToUpper(a)} {
		if _, ok := IDFromChannel(bad); ok {
			t.Errorf("IDFromChannel(%q) ok", bad)
		}
	}
}

// TestFold checks the fold against event sequences, including the ones
// only a foreign writer could produce: they are skipped.
func TestFold(t *testing.T) {
	q := `{"event":"queued","job":{"id":"x","type":"t","payload":1,"timeout":"1m0s","max_attempts":2,"on_disconnect":"cancel"}}`
	for _, c := range []struct {
		name   string
		events []string
		state  State
		want   func(j Job) bool
	}{
		{"queued", []string{q}, Queued, func(j Job) bool { return j.Timeout == time.Minute && j.MaxAttempts == 2 }},
		{"claim", []string{q, `{"event":"running","attempt":1,"worker":"w"}`}, Running, func(j Job) bool { return j.Attempt == 1 && j.Worker == "w" }},
		{"stale claim ignored", []string{q, `{"event":"running","attempt":1}`, `{"event":"running","attempt":2}`}, Running, func(j Job) bool { return j.Attempt == 1 }},
		{"stale outcome ignored", []string{q, `{"event":"running","attempt":1}`, `{"event":"retrying","attempt":1}`, `{"event":"running","attempt":2}`, `{"event":"succeeded","attempt":1,"result":1}`}, Running, func(j Job) bool { return j.Attempt == 2 }},
		{"nothing after final", []string{q, `{"event":"canceled","attempt":0,"reason":"api"}`, `{"event":"running","attempt":1}`}, Canceled, func(j Job) bool { return j.CancelReason == "api" }},
		{"release not counted", []string{q, `{"event":"running","attempt":1}`, `{"event":"released","attempt":1}`}, Queued, func(j Job) bool { return j.failures() == 0 }},
		{"cancel requested", []string{q, `{"event":"running","attempt":1}`, `{"event":"cancel_requested","attempt":1,"reason":"api"}`}, Running, func(j Job) bool { return j.CancelRequested }},
		{"not a job", []string{`{"event":"running","attempt":1}`, `garbage`}, "", func(j Job) bool { return true }},
	} {
		var j Job
		var msgs []store.Message
		for i, e := range c.events {
			msgs = append(msgs, store.Message{ID: store.Cursor(string(rune('1' + i))), Data: []byte(e), Time: time.Now()})
		}
		fold(&j, msgs)
		if j.State != c.state || !c.want(j) {
			t.Errorf("%s: got %+v; want state %q", c.name, j, c.state)
		}
		if j.Cursor != msgs[len(msgs)-1].ID {
			t.Errorf("%s: cursor %q; want the last event's", c.name, j.Cursor)
		}
	}
	var j Job
	b, _ := json.Marshal(Job{ID: "x", Timeout: 90 * time.Second})
	if err := json.Unmarshal(b, &j); err != nil || j.Timeout != 90*time.Second || !strings.Contains(string(b), `"timeout":"1m30s"`) {
		t.Fatalf("JSON round trip: %s, %+v, %v", b, j, err)
	}
}
