package auth

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Server-owned channels: a job's channel "job.<id>" and the job index
// "jobs" are written by the jobs service alone (they must equal
// jobs.ChannelPrefix and jobs.IndexChannel; a test checks).
const (
	jobChannelPrefix = "job."
	jobIndexChannel  = "jobs"
)

// ServerOwned reports whether channel is written by the server alone:
// publishing there is denied to every principal, Open included.
func ServerOwned(channel string) bool {
	return channel == jobIndexChannel || strings.HasPrefix(channel, jobChannelPrefix)
}

// AnyJobType in a token's jobs or worker list stands for every job type
// ("*" is not a valid job type, so it cannot clash with one).
const AnyJobType = "*"

// maxListLen bounds each permission list of a token.
const maxListLen = 256

// Permissions is the "tether" object of a token's claims.
type Permissions struct {
	// Subscribe lists the channel patterns the holder may read.
	Subscribe []string `json:"subscribe,omitempty"`
	// Publish lists the channel patterns the holder may publish to.
	// Server-owned channels stay denied whatever it says.
	Publish []string `json:"publish,omitempty"`
	// Jobs lists the job types the holder may create; "*" means every
	// type. The creator of a job may follow and cancel it.
	Jobs []string `json:"jobs,omitempty"`
	// Worker lists the job types the holder may run as a worker; "*"
	// means every type.
	Worker []string `json:"worker,omitempty"`
	// Admin grants the admin API (list, close, reset, discard
	// connections) and following or cancelling any job. It does not grant
	// subscribe or publish.
	Admin bool `json:"admin,omitempty"`
}

// Principal is who a connection or request acts for, and what it may do.
// It is immutable and safe for concurrent use. The session core asks it
// before every subscribe, publish, job and admin operation; every check
// returns nil or an *Error with CodeForbidden.
type Principal struct {
	sub       string
	open      bool
	expires   time.Time
	subscribe []Pattern
	publish   []Pattern
	jobs      []string
	worker    []string
	admin     bool
}

var openPrincipal = &Principal{open: true, admin: true}

// Open returns the principal of open mode (no token configuration):
// everything is allowed except publishing to server-owned channels, which
// no principal may do. Its Sub is "" and it never expires. The HTTP jobs
// API creates jobs through the jobs service, not by publishing, so open
// mode keeps working as before.
func Open() *Principal { return openPrincipal }

// newPrincipal builds a principal from verified claims, validating every
// pattern and job type.
func newPrincipal(sub string, exp time.Time, p Permissions) (*Principal, error) {
	subs, err := parsePatterns("subscribe", p.Subscribe)
	if err != nil {
		return nil, err
	}
	pubs, err := parsePatterns("publish", p.Publish)
	if err != nil {
		return nil, err
	}
	if err := checkTypes("jobs", p.Jobs); err != nil {
		return nil, err
	}
	if err := checkTypes("worker", p.Worker); err != nil {
		return nil, err
	}
	return &Principal{
		sub: sub, expires: exp,
		subscribe: subs, publish: pubs,
		jobs: slices.Clone(p.Jobs), worker: slices.Clone(p.Worker),
		admin: p.Admin,
	}, nil
}

// checkTypes validates a list of job types: "*" or 1-128 bytes of
// [A-Za-z0-9._:-], as jobs.Spec.Type.
func checkTypes(field string, types []string) error {
	if len(types) > maxListLen {
		return fmt.Errorf("tether.%s has more than %d entries", field, maxListLen)
	}
	for _, t := range types {
		if t == AnyJobType {
			continue
		}
		if t == "" || len(t) > 128 {
			return fmt.Errorf("tether.%s: job type %q must be 1-128 bytes", field, t)
		}
		for i := 0; i < len(t); i++ {
			c := t[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
				return fmt.Errorf("tether.%s: job type %q has character %q", field, t, c)
			}
		}
	}
	return nil
}

// Sub is the user id (the token's sub); "" for Open.
func (p *Principal) Sub() string { return p.sub }

// IsOpen reports whether p is the open-mode principal.
func (p *Principal) IsOpen() bool { return p.open }

// Expires is when the token expires; the zero time for Open. The session
// core ends a connection with EndTokenExpired at that time unless the
// client refreshed its token first (see CheckRefresh).
func (p *Principal) Expires() time.Time { return p.expires }

// MaySubscribe allows reading channel if a subscribe pattern matches it.
// A server-owned channel (job.<id>, jobs) is matched only by a pattern
// whose first token is literal ("job.>", "jobs"): a token granted ">"
// does not thereby read other users' job payloads and results. Admins
// may read job channels; a job's creator follows it through
// MayFollowJob.
func (p *Principal) MaySubscribe(channel string) error {
	if p.open {
		return nil
	}
	if ServerOwned(channel) {
		if p.admin {
			return nil
		}
		for _, pt := range p.subscribe {
			if pt.literalFirst() && pt.Match(channel) {
				return nil
			}
		}
	} else if matchAny(p.subscribe, channel) {
		return nil
	}
	return forbidden(fmt.Sprintf("the token does not allow subscribing to %q", channel))
}

// MayPublish allows publishing to channel if a publish pattern matches
// it. Server-owned channels are always denied: job state is written by
// the jobs service, never by a client, whatever its token says.
func (p *Principal) MayPublish(channel string) error {
	if ServerOwned(channel) {
		return forbidden(fmt.Sprintf("%q is written by the server alone", channel))
	}
	if p.open || matchAny(p.publish, channel) {
		return nil
	}
	return forbidden(fmt.Sprintf("the token does not allow publishing to %q", channel))
}

// MayCreateJob allows creating a job of type typ if the token's jobs list
// holds typ or "*".
func (p *Principal) MayCreateJob(typ string) error {
	if p.open || hasType(p.jobs, typ) {
		return nil
	}
	return forbidden(fmt.Sprintf("the token does not allow creating jobs of type %q", typ))
}

// MayWork allows running (claiming, progressing, completing) jobs of type
// typ if the token's worker list holds typ or "*". The session core also
// offers a worker only the types it may run (WorkerTypes), and only the
// attempt's own worker completes it (the jobs service fences others).
func (p *Principal) MayWork(typ string) error {
	if p.open || hasType(p.worker, typ) {
		return nil
	}
	return forbidden(fmt.Sprintf("the token does not allow running jobs of type %q", typ))
}

// WorkerTypes filters the job types a worker asked to run down to those
// it may run, keeping their order. Open keeps them all.
func (p *Principal) WorkerTypes(asked []string) []string {
	var out []string
	for _, t := range asked {
		if p.MayWork(t) == nil {
			out = append(out, t)
		}
	}
	return out
}

// MayFollowJob allows following (reading the channel of) a job created by
// creator: its creator and admins may. In open mode anyone may.
func (p *Principal) MayFollowJob(creator string) error {
	if p.open || p.admin || (p.sub != "" && p.sub == creator) {
		return nil
	}
	return forbidden("only the job's creator may follow it")
}

// MayCancelJob allows cancelling a job created by creator: its creator
// and admins may. In open mode anyone may.
func (p *Principal) MayCancelJob(creator string) error {
	if p.open || p.admin || (p.sub != "" && p.sub == creator) {
		return nil
	}
	return forbidden("only the job's creator may cancel it")
}

// IsAdmin reports whether p may use the admin API. Open is admin.
func (p *Principal) IsAdmin() bool { return p.admin }

// MayAdmin is IsAdmin as a check.
func (p *Principal) MayAdmin() error {
	if p.admin {
		return nil
	}
	return forbidden("the admin API needs a token with admin")
}

// CheckRefresh allows replacing p by next on a live connection: the new
// token must be for the same user (a connection's identity never
// changes) and, if p was open, next must be too. The connection then
// acts with next's permissions and expiry; subscriptions next no longer
// allows are for the session core to end.
func (p *Principal) CheckRefresh(next *Principal) error {
	if p.open != next.open || p.sub != next.sub {
		return forbidden("a refreshed token must be for the same sub")
	}
	return nil
}

func hasType(list []string, typ string) bool {
	for _, t := range list {
		if t == AnyJobType || t == typ {
			return true
		}
	}
	return false
}
