package session

import (
	"context"
	"errors"
	"strings"

	"github.com/tether-run/tether/auth"
	"github.com/tether-run/tether/limits"
	"github.com/tether-run/tether/registry"
	"github.com/tether-run/tether/wire"
)

// Access is who may connect and what they may do and hold: the token
// Verifier and the Limits. Every transport and every HTTP route asks the
// Core (Authenticate, Authorize, and the admission in Serve, OpenStream
// and OpenPoll), so that each decision is made in one place. The zero
// value runs open (every connection acts as auth.Open()) and unlimited.
type Access struct {
	// Verifier checks tokens. Nil means open mode.
	Verifier *auth.Verifier
	// Limits bounds connections, subscriptions and the publish rate. Nil
	// means no limits.
	Limits *limits.Limits
}

// Op is one kind of thing a principal asks to do.
type Op string

// The operations Authorize decides. Each names the fields of Act it
// reads.
const (
	// OpSubscribe reads Channel: subscribe, SSE, long-poll, presence. A
	// job channel is also readable by the job's creator.
	OpSubscribe Op = "subscribe"
	// OpPublish writes Channel. job.* and jobs are the server's alone.
	OpPublish Op = "publish"
	// OpCreateJob creates a job of JobType.
	OpCreateJob Op = "job.create"
	// OpReadJob reads (GET, list, wait on) a job created by Creator.
	OpReadJob Op = "job.read"
	// OpCancelJob cancels a job created by Creator.
	OpCancelJob Op = "job.cancel"
	// OpWork runs jobs of JobType as a worker: attach, claim, complete.
	OpWork Op = "work"
	// OpAdmin is the connections admin API.
	OpAdmin Op = "admin"
)

// Act is one request for permission.
type Act struct {
	Op      Op
	Channel string
	JobType string
	Creator string // the job's creator's sub
}

// ChannelOwner is an optional interface of an Extension: it names the
// user a server-owned channel belongs to (the creator of job.<id>), so
// that its owner may read it without a pattern naming it.
type ChannelOwner interface {
	// ChannelOwner returns the sub that owns channel, and false when the
	// extension does not know the channel (or it does not exist).
	ChannelOwner(ctx context.Context, channel string) (sub string, ok bool)
}

// Open reports whether the Core runs open: no token configuration.
func (c *Core) Open() bool { return c.acc.Verifier == nil || c.acc.Verifier.Open() }

// Limits is the Core's Limits, nil when unlimited.
func (c *Core) Limits() *limits.Limits { return c.acc.Limits }

// Authenticate verifies a token as every transport receives it (HTTP:
// auth.TokenFromRequest; TCP: hello). In open mode it returns auth.Open()
// whatever it is given. Errors are *auth.Error (unauthorized,
// token_expired).
func (c *Core) Authenticate(token string) (*auth.Principal, error) {
	if c.Open() {
		return auth.Open(), nil
	}
	return c.acc.Verifier.Verify(token)
}

// Authorize is the one permission check of the node: every transport and
// every HTTP route calls it before acting for p. It returns nil or an
// *auth.Error (forbidden).
func (c *Core) Authorize(ctx context.Context, p *auth.Principal, a Act) error {
	if p == nil {
		return &auth.Error{Code: auth.CodeUnauthorized, Message: "no principal"}
	}
	switch a.Op {
	case OpSubscribe:
		err := p.MaySubscribe(a.Channel)
		if err != nil && strings.HasPrefix(a.Channel, wire.JobChannelPrefix) {
			// The creator of a job follows it without a pattern naming it.
			if owner, ok := c.channelOwner(ctx, a.Channel); ok && p.MayFollowJob(owner) == nil {
				return nil
			}
		}
		return err
	case OpPublish:
		return p.MayPublish(a.Channel)
	case OpCreateJob:
		return p.MayCreateJob(a.JobType)
	case OpReadJob:
		return p.MayFollowJob(a.Creator)
	case OpCancelJob:
		return p.MayCancelJob(a.Creator)
	case OpWork:
		return p.MayWork(a.JobType)
	case OpAdmin:
		return p.MayAdmin()
	}
	return &auth.Error{Code: auth.CodeForbidden, Message: "unknown operation " + string(a.Op)}
}

func (c *Core) channelOwner(ctx context.Context, channel string) (string, bool) {
	for _, x := range c.extList {
		if o, ok := x.(ChannelOwner); ok {
			if sub, ok := o.ChannelOwner(ctx, channel); ok {
				return sub, true
			}
		}
	}
	return "", false
}

// AllowPublish takes one publish from p's rate (limits.Limits.AllowPublish);
// a refusal is a *limits.Error (rate_limited).
func (c *Core) AllowPublish(p *auth.Principal) error {
	if c.acc.Limits == nil {
		return nil
	}
	return c.acc.Limits.AllowPublish(p.Sub())
}

// admit counts a new connection of p against the limits and records its
// sub in oi. The lease is nil when there are no limits.
func (c *Core) admit(p *auth.Principal, oi *registry.OpenInfo) (*limits.Lease, error) {
	if p == nil {
		return nil, &auth.Error{Code: auth.CodeUnauthorized, Message: "no principal"}
	}
	oi.Sub = p.Sub()
	if c.acc.Limits == nil {
		return nil, nil
	}
	return c.acc.Limits.Admit(p.Sub(), limits.IPKey(oi.Remote))
}

// AuthCode maps an error of Authenticate, Authorize, the admission or the
// limits to its wire code and message; ok is false for other errors.
func AuthCode(err error) (code wire.Code, msg string, ok bool) {
	if e, isAuth := auth.AsError(err); isAuth {
		return wire.Code(e.Code), e.Message, true
	}
	var le *limits.Error
	if errors.As(err, &le) {
		return wire.Code(le.Code), le.Error(), true
	}
	return "", "", false
}

// Principal is who the session acts for: the token it presented (or
// refreshed), auth.Open() in open mode.
func (s *Session) Principal() *auth.Principal { return s.p.Load() }

// Authorize asks the Core whether the session may do a.
func (s *Session) Authorize(a Act) error { return s.c.Authorize(s.ctx, s.Principal(), a) }

// ReplyDenied answers request id with the code of a denial (an *auth.Error
// or a *limits.Error).
func (s *Session) ReplyDenied(id string, err error) {
	code, msg, ok := AuthCode(err)
	if !ok {
		code, msg = wire.CodeInternal, err.Error()
	}
	f := errEvent(id, code, msg)
	var le *limits.Error
	if errors.As(err, &le) && le.RetryAfter > 0 {
		f.RetryAfterMS = max(le.RetryAfter.Milliseconds(), 1)
	}
	s.q.pushCtrl(s.ctx, item{frame: s.f.Encode(f), app: true})
}
