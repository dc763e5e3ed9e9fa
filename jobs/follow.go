package jobs

import "sync"

// follow counts the followers of one job. Guarded by Service.mu.
type follow struct {
	n     int
	timer Timer // the follow grace, running while n == 0
}

// Follow counts a follower of job id (an SSE, WebSocket or TCP subscriber
// of its channel). stop ends the follow; departed says the follower's
// connection really went away (not a shutdown, not a normal end). When the
// last follower of an on_disconnect=cancel job departed and no new one came
// within FollowGrace, the job is cancelled with ReasonClientGone. stop may
// be called more than once; only the first counts.
func (s *Service) Follow(id string) (stop func(departed bool)) {
	s.mu.Lock()
	f := s.follows[id]
	if f == nil {
		f = &follow{}
		s.follows[id] = f
	}
	f.n++
	if f.timer != nil {
		s.stopTimerLocked(f.timer)
		f.timer = nil
	}
	s.mu.Unlock()
	var once sync.Once
	return func(departed bool) {
		once.Do(func() { s.unfollow(id, f, departed) })
	}
}

func (s *Service) unfollow(id string, f *follow, departed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.n--
	if f.n > 0 {
		return
	}
	if !departed || s.stopped {
		delete(s.follows, id)
		return
	}
	f.timer = s.afterFuncLocked(s.cfg.FollowGrace, func() { s.followGone(id, f) })
}

// followGone runs when a job's follow grace passed with no follower.
func (s *Service) followGone(id string, f *follow) {
	s.mu.Lock()
	if s.follows[id] != f || f.n > 0 {
		s.mu.Unlock()
		return
	}
	delete(s.follows, id)
	s.mu.Unlock()
	j, err := s.Get(s.ctx, id)
	if err != nil || j.State.Final() || j.OnDisconnect != Cancel {
		return
	}
	if _, err := s.Cancel(s.ctx, id, ReasonClientGone); err != nil {
		s.log.Warn("job cancel after follow grace failed", "job", id, "err", err)
		return
	}
	s.log.Info("job canceled: its followers left", "job", id, "grace", s.cfg.FollowGrace)
}
