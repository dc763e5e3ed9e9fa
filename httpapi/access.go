package httpapi

import (
	"errors"
	"net/http"

	"github.com/tether-run/tether/auth"
	tlimits "github.com/tether-run/tether/limits"
	"github.com/tether-run/tether/session"
)

// This file is the HTTP side of access control: every route but /healthz
// authenticates its request with the session core (Core.Authenticate)
// and asks it (Core.Authorize) before acting; the answers to denials are
// here.

// authenticate returns the principal of r's token, or answers 401
// (unauthorized, token_expired) and returns nil.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) *auth.Principal {
	p, err := a.core.Authenticate(auth.TokenFromRequest(r))
	if err != nil {
		writeDenied(w, err)
		return nil
	}
	return p
}

// authorize asks the core whether p may do act, answering the denial
// (403 forbidden) when not.
func (a *API) authorize(w http.ResponseWriter, r *http.Request, p *auth.Principal, act session.Act) bool {
	if err := a.core.Authorize(r.Context(), p, act); err != nil {
		writeDenied(w, err)
		return false
	}
	return true
}

// guardPublish checks a publish before its handler reads the body: the
// token, the permission to publish to the channel (never job.* or jobs),
// and the user's publish rate (429 rate_limited with Retry-After).
func (a *API) guardPublish(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := a.authenticate(w, r)
		if p == nil {
			return
		}
		channel := r.PathValue("channel")
		if e := decodeChannel(channel); e != nil {
			writeError(w, e)
			return
		}
		if !a.authorize(w, r, p, session.Act{Op: session.OpPublish, Channel: channel}) {
			return
		}
		if err := a.core.AllowPublish(p); err != nil {
			writeDenied(w, err)
			return
		}
		next(w, r)
	}
}

// guardAdmin lets only admins through to the connections admin API.
func (a *API) guardAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := a.authenticate(w, r)
		if p == nil || !a.authorize(w, r, p, session.Act{Op: session.OpAdmin}) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// denied reports whether err is a denial (of auth or of the limits).
func denied(err error) bool {
	_, _, ok := session.AuthCode(err)
	return ok
}

// writeDenied answers a denial: 401 with WWW-Authenticate (RFC 6750), 403,
// or a limit's 429/503 with Retry-After for the publish rate.
func writeDenied(w http.ResponseWriter, err error) {
	if e, ok := auth.AsError(err); ok {
		if v := auth.WWWAuthenticate(err); v != "" {
			w.Header().Set("WWW-Authenticate", v)
		}
		writeError(w, errorf(e.Status(), string(e.Code), e.Message))
		return
	}
	var le *tlimits.Error
	if errors.As(err, &le) {
		if v := le.RetryAfterHeader(); v != "" {
			w.Header().Set("Retry-After", v)
		}
		writeError(w, errorf(le.Status(), le.Code, le.Error()))
		return
	}
	writeError(w, errorf(http.StatusInternalServerError, CodeInternal, err.Error()))
}
