package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/tether-run/tether/jobs"
)

func TestServerOwnedMatchesJobs(t *testing.T) {
	if jobChannelPrefix != jobs.ChannelPrefix || jobIndexChannel != jobs.IndexChannel {
		t.Fatalf("server-owned channels %q/%q drifted from jobs %q/%q",
			jobChannelPrefix, jobIndexChannel, jobs.ChannelPrefix, jobs.IndexChannel)
	}
}

func mustPrincipal(t *testing.T, sub string, p Permissions) *Principal {
	t.Helper()
	pr, err := newPrincipal(sub, time.Unix(2e9, 0), p)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrForbidden) {
		t.Errorf("%s: got %v, want forbidden", what, err)
		return
	}
	if e, _ := AsError(err); e.Status() != 403 || e.Code != CodeForbidden {
		t.Errorf("%s: got %d %s, want 403 forbidden", what, e.Status(), e.Code)
	}
}

func wantAllowed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: got %v, want allowed", what, err)
	}
}

func TestPrincipalChannels(t *testing.T) {
	p := mustPrincipal(t, "alice", Permissions{
		Subscribe: []string{"news.>", "chat.*", ">"},
		Publish:   []string{"chat.*", ">"},
	})
	wantAllowed(t, "subscribe news.a.b", p.MaySubscribe("news.a.b"))
	wantAllowed(t, "subscribe anything via >", p.MaySubscribe("other"))
	// ">" does not reach server-owned channels.
	wantForbidden(t, "subscribe job.x via >", p.MaySubscribe("job.x"))
	wantForbidden(t, "subscribe jobs via >", p.MaySubscribe("jobs"))
	wantAllowed(t, "subscribe job (not a job channel)", p.MaySubscribe("job"))
	wantAllowed(t, "subscribe jobsx (not the index)", p.MaySubscribe("jobsx"))
	// Publishing there is denied whatever the token says.
	wantAllowed(t, "publish chat.x", p.MayPublish("chat.x"))
	wantForbidden(t, "publish job.x with >", p.MayPublish("job.x"))
	wantForbidden(t, "publish jobs with >", p.MayPublish("jobs"))

	narrow := mustPrincipal(t, "bob", Permissions{Subscribe: []string{"a.*"}, Publish: []string{"a.b"}})
	wantForbidden(t, "subscribe b", narrow.MaySubscribe("b"))
	wantForbidden(t, "subscribe a", narrow.MaySubscribe("a"))
	wantForbidden(t, "publish a.c", narrow.MayPublish("a.c"))
	wantAllowed(t, "publish a.b", narrow.MayPublish("a.b"))

	dash := mustPrincipal(t, "ops", Permissions{Subscribe: []string{"job.>", "jobs"}, Publish: []string{"job.>", "jobs"}})
	wantAllowed(t, "subscribe job.x via job.>", dash.MaySubscribe("job.x"))
	wantAllowed(t, "subscribe jobs literally", dash.MaySubscribe("jobs"))
	wantForbidden(t, "publish job.x via job.>", dash.MayPublish("job.x"))
	wantForbidden(t, "publish jobs literally", dash.MayPublish("jobs"))

	none := mustPrincipal(t, "carol", Permissions{})
	wantForbidden(t, "no permissions subscribe", none.MaySubscribe("a"))
	wantForbidden(t, "no permissions publish", none.MayPublish("a"))
}

func TestPrincipalJobs(t *testing.T) {
	alice := mustPrincipal(t, "alice", Permissions{Jobs: []string{"resize"}, Worker: []string{"a"}})
	bob := mustPrincipal(t, "bob", Permissions{Jobs: []string{"*"}, Worker: []string{"*"}})
	admin := mustPrincipal(t, "root", Permissions{Admin: true})

	wantAllowed(t, "alice creates resize", alice.MayCreateJob("resize"))
	wantForbidden(t, "alice creates other", alice.MayCreateJob("other"))
	wantAllowed(t, "bob creates any", bob.MayCreateJob("other"))
	wantAllowed(t, "alice works a", alice.MayWork("a"))
	wantForbidden(t, "alice works b", alice.MayWork("b"))
	wantAllowed(t, "bob works any", bob.MayWork("b"))
	wantForbidden(t, "admin works", admin.MayWork("a"))
	if got := alice.WorkerTypes([]string{"b", "a", "c"}); len(got) != 1 || got[0] != "a" {
		t.Errorf("WorkerTypes = %q, want [a]", got)
	}

	wantAllowed(t, "creator follows", alice.MayFollowJob("alice"))
	wantForbidden(t, "other follows", bob.MayFollowJob("alice"))
	wantAllowed(t, "admin follows", admin.MayFollowJob("alice"))
	wantAllowed(t, "creator cancels", alice.MayCancelJob("alice"))
	wantForbidden(t, "other cancels", bob.MayCancelJob("alice"))
	wantAllowed(t, "admin cancels", admin.MayCancelJob("alice"))
	wantForbidden(t, "empty creator is nobody's", alice.MayCancelJob(""))
	wantAllowed(t, "admin reads job channels", admin.MaySubscribe("job.x"))
	wantForbidden(t, "admin does not publish", admin.MayPublish("x"))

	wantAllowed(t, "admin API", admin.MayAdmin())
	wantForbidden(t, "admin API for alice", alice.MayAdmin())
}

func TestOpenPrincipal(t *testing.T) {
	o := Open()
	if !o.IsOpen() || o.Sub() != "" || !o.Expires().IsZero() || !o.IsAdmin() {
		t.Fatalf("Open() = %+v", o)
	}
	wantAllowed(t, "open subscribe", o.MaySubscribe("job.x"))
	wantAllowed(t, "open publish", o.MayPublish("news"))
	wantForbidden(t, "open publish job.x", o.MayPublish("job.x"))
	wantForbidden(t, "open publish jobs", o.MayPublish("jobs"))
	wantAllowed(t, "open create", o.MayCreateJob("x"))
	wantAllowed(t, "open work", o.MayWork("x"))
	wantAllowed(t, "open cancel", o.MayCancelJob("someone"))
	wantAllowed(t, "open admin", o.MayAdmin())
}

func TestCheckRefresh(t *testing.T) {
	a1 := mustPrincipal(t, "alice", Permissions{})
	a2 := mustPrincipal(t, "alice", Permissions{Publish: []string{"x"}})
	b := mustPrincipal(t, "bob", Permissions{})
	wantAllowed(t, "same sub", a1.CheckRefresh(a2))
	wantForbidden(t, "other sub", a1.CheckRefresh(b))
	wantForbidden(t, "open to token", Open().CheckRefresh(a1))
}

func TestBadPermissions(t *testing.T) {
	bad := []Permissions{
		{Subscribe: []string{"a..b"}},
		{Publish: []string{">.a"}},
		{Jobs: []string{""}},
		{Worker: []string{"a b"}},
		{Subscribe: make([]string, maxListLen+1)},
	}
	for _, p := range bad {
		if _, err := newPrincipal("x", time.Time{}, p); err == nil {
			t.Errorf("newPrincipal(%+v) = nil error, want invalid", p)
		}
	}
}
