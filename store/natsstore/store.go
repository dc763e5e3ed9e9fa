package natsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tether-run/tether/store"
)

// Store is a store.Store kept in a NATS JetStream stream. Create one with
// Open. Several Stores, in one process or many, may share a stream.
type Store struct {
	cfg     Config
	nc      *nats.Conn
	ownConn bool // nc was dialled by Open and is closed by Close
	js      jetstream.JetStream
	stream  jetstream.Stream
	prefix  string // subjectPrefix(cfg.Stream)
	// clustered reports that the stream is replicated by a JetStream
	// cluster, which checks Nats-Msg-Id before expectations (see append.go).
	clustered bool

	// life orders Close after every call in progress: Append, Read and
	// Bounds hold it read-locked, and Close write-locks it to set closed.
	// Wait holds it only while it checks, never while it blocks. Lock
	// order: life, then mu.
	life   sync.RWMutex
	closed bool // guarded by life

	// closing is closed when Close starts; it wakes blocked Waits and
	// stops the trimmer.
	closing chan struct{}
	// readSlots holds one token per read request in flight (readSlot).
	readSlots chan struct{}
	// watch delivers every message stored in the stream (an ordered
	// consumer); it wakes Waits and feeds the channels' tails.
	watch       jetstream.ConsumeContext
	trimmerDone chan struct{}
	// senders counts the channels' sender goroutines (sender.go); sendCtx
	// bounds their requests and is cancelled by Close, which then waits
	// for them.
	senders    sync.WaitGroup
	sendCtx    context.Context
	sendCancel context.CancelFunc
	// batches counts the atomic batches stored, for tests.
	batches atomic.Int64

	mu    sync.Mutex
	chans map[string]*channel // guarded by mu
	// sweep drops idle channels from chans (evict.go); nil while chans is
	// empty or Config.ChannelIdle is negative. Guarded by mu.
	sweep *time.Timer
	// tailBytes is the size of every channel's tail (tail.go). Guarded by
	// mu.
	tailBytes int

	// full remembers refusals for want of space, for Health.
	full fullness
}

// channel is what a Store knows of one channel: the newest sequence seen,
// the waiters to wake, and the lock that orders this store's appends to it.
type channel struct {
	// last is the highest stream sequence of the channel this store has
	// seen (appended, read as Latest, or been told of by watch). It only
	// grows. Guarded by mu.
	last uint64
	// notify is closed and cleared when last grows; nil while nobody
	// waits. waiters counts Waits holding this channel. Guarded by mu.
	notify  chan struct{}
	waiters int
	// synced reports that last is the channel's Latest as the stream's
	// leader told a Wait that registered before asking, so that the watch
	// has reported every later message since: a Wait after last needs no
	// round trip to the leader. Guarded by mu.
	synced bool
	// queue holds this store's appends to the channel that wait for the
	// channel's sender, oldest first; sending reports that a sender
	// goroutine runs (sender.go). Appends to one channel from one store go
	// out in order, one batch at a time: each names its predecessor, so two
	// in flight would only refuse each other. Guarded by mu.
	queue   []*appendOp
	sending bool
	// tail holds the channel's newest messages while it is in use; used
	// is when a Read or Wait last asked for it (tail.go). Guarded by mu.
	tail tail
	used time.Time
	// appended is when this store last queued an append to the channel (or
	// created the entry);
	// with used, it keeps the entry from eviction (evict.go). Guarded by
	// mu.
	appended time.Time
}

// Open connects to NATS (unless cfg.Conn is set), creates the stream or
// updates its configuration, and starts watching it. While the JetStream
// cluster is still forming, Open waits for it until ctx ends, or 30s
// without a deadline. Close stops what Open started.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:         cfg,
		nc:          cfg.Conn,
		prefix:      subjectPrefix(cfg.Stream),
		closing:     make(chan struct{}),
		readSlots:   make(chan struct{}, maxReadsInFlight),
		trimmerDone: make(chan struct{}),
		chans:       map[string]*channel{},
	}
	s.sendCtx, s.sendCancel = context.WithCancel(context.Background())
	if s.nc == nil {
		s.nc, err = nats.Connect(cfg.URLs,
			nats.Name("tether"),
			nats.MaxReconnects(-1),
			// After a server dies, try the others at once and then often:
			// the watch and every request wait for the connection.
			nats.ReconnectWait(reconnectWait),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				cfg.Logger.Warn("nats: disconnected", "err", err)
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				cfg.Logger.Info("nats: reconnected", "url", nc.ConnectedUrlRedacted())
			}),
		)
		if err != nil {
			return nil, fmt.Errorf("tether: natsstore: connect %s: %w", cfg.URLs, err)
		}
		s.ownConn = true
	}
	if err := s.open(ctx); err != nil {
		s.sendCancel()
		if s.ownConn {
			s.nc.Close()
		}
		return nil, err
	}
	if cfg.Retention.MaxAge > 0 {
		go s.runTrimmer()
	} else {
		close(s.trimmerDone)
	}
	return s, nil
}

// open creates or updates the stream and starts the watch.
func (s *Store) open(ctx context.Context) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("tether: natsstore: %w", err)
	}
	s.js = js
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openTimeout)
		defer cancel()
	}
	replicas := s.cfg.Replicas
	if replicas == 0 {
		replicas = clusterReplicas
	}
	var stream jetstream.Stream
	for attempt := 1; ; attempt++ {
		tctx, tcancel := context.WithTimeout(ctx, tryTimeout)
		stream, err = js.CreateOrUpdateStream(tctx, s.streamConfig(replicas))
		tcancel()
		if s.cfg.Replicas == 0 && replicas > 1 && isAPIError(err, codeReplicasNotSupported) {
			// A single server, so the default is 1.
			replicas = 1
			continue
		}
		if err == nil || !transientOpenErr(err) || ctx.Err() != nil {
			break
		}
		// A cluster that is still forming: wait for it as long as ctx lets.
		s.cfg.Logger.Info("natsstore: waiting for JetStream", "err", err)
		if berr := s.backoff(ctx, attempt); berr != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("tether: natsstore: create stream %s: %w", s.cfg.Stream, err)
	}
	s.stream = stream
	info := stream.CachedInfo()
	s.clustered = info.Cluster != nil && info.Cluster.RaftGroup != ""

	// The watch starts right after the last message stored now. A Wait
	// reads Latest from the stream after registering, so anything stored
	// before the watch's start is seen there, and anything after it wakes
	// the waiter.
	cons, err := js.OrderedConsumer(ctx, s.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.prefix + "*"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    info.State.LastSeq + 1,
	})
	if err != nil {
		return fmt.Errorf("tether: natsstore: watch stream %s: %w", s.cfg.Stream, err)
	}
	s.watch, err = cons.Consume(s.observeMsg,
		// The consumer lives on one server; if that one goes away, two
		// missed heartbeats make nats.go recreate it from the last
		// sequence it delivered, so Waits hear of appends within seconds
		// of a failover, and of none of them too late to count.
		jetstream.PullHeartbeat(watchHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.cfg.Logger.Warn("natsstore: watch", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("tether: natsstore: watch stream %s: %w", s.cfg.Stream, err)
	}
	s.cfg.Logger.Info("natsstore: open", "stream", s.cfg.Stream, "replicas", info.Config.Replicas,
		"clustered", s.clustered, "last_seq", info.State.LastSeq)
	return nil
}

// streamConfig is the stream's configuration. MaxAge stays zero on purpose:
// JetStream would remove a channel's newest message too, and with it the
// channel's Latest and the sequence the next append must name.
func (s *Store) streamConfig(replicas int) jetstream.StreamConfig {
	perSubject := int64(-1)
	if s.cfg.Retention.MaxMessages > 0 {
		perSubject = int64(s.cfg.Retention.MaxMessages)
	}
	return jetstream.StreamConfig{
		Name:              s.cfg.Stream,
		Description:       "tether channels",
		Subjects:          []string{s.prefix + "*"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: perSubject,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		Duplicates:        s.cfg.DedupWindow,
		Replicas:          replicas,
		AllowDirect:       true,
		// Atomic batches carry a channel's queued appends (sender.go).
		AllowAtomicPublish: true,
	}
}

// observeMsg is the watch's handler: it learns that a message was stored.
func (s *Store) observeMsg(m jetstream.Msg) {
	ch, ok := subjectChannel(s.prefix, m.Subject())
	if !ok {
		return
	}
	md, err := m.Metadata()
	if err != nil {
		s.cfg.Logger.Warn("natsstore: watch: no metadata", "subject", m.Subject(), "err", err)
		return
	}
	sm := stored{subject: m.Subject(), seq: md.Sequence.Stream, data: m.Data()}
	if sm.data == nil {
		sm.data = []byte{}
	}
	if err := sm.parseHeaders(m.Headers()); err != nil {
		s.cfg.Logger.Warn("natsstore: watch", "err", err)
		s.observe(ch, sm.seq, false)
		return
	}
	s.observeStored(ch, false, sm)
}

// observe records that channel has a message at seq and wakes its waiters
// if that is news. create makes an entry for a channel this store has not
// met; the watch does not, so that channels other nodes write and nobody
// here waits on cost this store nothing.
func (s *Store) observe(name string, seq uint64, create bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.entryLocked(name, create); c != nil {
		s.advanceLocked(c, seq)
	}
}

// observeStored is observe for whole messages, the channel's newest in
// order: they also go to the channel's tail.
func (s *Store) observeStored(name string, create bool, msgs ...stored) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.entryLocked(name, create)
	if c == nil || len(msgs) == 0 {
		return
	}
	for _, m := range msgs {
		s.recordLocked(c, m)
	}
	s.advanceLocked(c, msgs[len(msgs)-1].seq)
}

// entryLocked returns the channel's entry, nil if there is none and create
// is false. The caller holds mu.
func (s *Store) entryLocked(name string, create bool) *channel {
	c := s.chans[name]
	if c == nil && create {
		c = s.addLocked(name)
	}
	return c
}

// advanceLocked raises c.last to seq, waking c's waiters, if that is news.
// The caller holds mu.
func (s *Store) advanceLocked(c *channel, seq uint64) {
	if seq <= c.last {
		return
	}
	c.last = seq
	if c.notify != nil {
		close(c.notify)
		c.notify = nil
	}
}

// channelState returns the entry of a channel, creating it. A sender's
// entry is not evicted while it sends, a waiter's while it waits; any
// other caller must not keep the entry past its lock.
func (s *Store) channelState(name string) *channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entryLocked(name, true)
}

// Close stops accepting calls, waits for those in progress, wakes blocked
// Waits with store.ErrClosed, stops the senders, the watch and the trimmer, and closes
// the connection if Open dialled it. It returns store.ErrClosed when called
// again.
func (s *Store) Close() error {
	s.life.Lock() // waits for Appends, Reads and Bounds in progress
	if s.closed {
		s.life.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	close(s.closing)
	s.life.Unlock()

	// Every Append has returned; senders may still work on appends whose
	// callers gave up.
	s.sendCancel()
	s.senders.Wait()
	s.watch.Stop()
	<-s.watch.Closed()
	<-s.trimmerDone
	s.mu.Lock()
	if s.sweep != nil {
		s.sweep.Stop()
	}
	s.mu.Unlock()
	if s.ownConn {
		s.nc.Close()
	}
	return nil
}

// use read-locks life for a call; the caller must call the returned func
// when done.
// maxReadsInFlight bounds the store's read requests to NATS in flight at
// once. Without it, 10,000 subscriptions opening together sent 10,000
// requests at once; they timed out on the one connection, and appends
// queued behind them failed too. Reads beyond the bound wait here, with
// their caller's context, before their request (and its timeout) starts.
const maxReadsInFlight = 64

// readSlot takes one of the read slots, to be given back by the func it
// returns.
func (s *Store) readSlot(ctx context.Context) (func(), error) {
	select {
	case s.readSlots <- struct{}{}:
		return func() { <-s.readSlots }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-s.closing:
		return nil, store.ErrClosed
	}
}

func (s *Store) use() (done func(), err error) {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return nil, store.ErrClosed
	}
	return s.life.RUnlock, nil
}

// opCtx bounds a call to the stream when the caller's ctx has no deadline,
// so that a NATS outage fails the call instead of hanging it.
func opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, opTimeout)
}

// openTimeout bounds Open's wait for a forming cluster when its ctx has no
// deadline.
const openTimeout = 30 * time.Second

// watchHeartbeat is how often the watch's server says it is alive when it
// has nothing to deliver; nats.go recreates the watch after two missed
// ones. Short, so that Waits hear of appends within about a second of
// the death of the server that holds the watch.
// nats.go's shortest is 500ms.
const watchHeartbeat = 500 * time.Millisecond

// reconnectWait is how long the store's own connection waits before it
// tries a server again.
const reconnectWait = 250 * time.Millisecond

// opTimeout is how long one call to the stream may take without a deadline
// from the caller.
const opTimeout = 10 * time.Second

// JetStream error codes Open acts on.
const (
	codeReplicasNotSupported jetstream.ErrorCode = 10074 // "replicas > 1 not supported in non-clustered mode"
	codeNoSuitablePeers      jetstream.ErrorCode = 10005 // "no suitable peers for placement"
	codeClusterNotAvailable  jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
)

// transientOpenErr reports whether creating the stream failed because the
// JetStream cluster is still forming (no meta leader, peers not yet known).
func transientOpenErr(err error) bool {
	return isAPIError(err, codeNoSuitablePeers) || isAPIError(err, codeClusterNotAvailable) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// isAPIError reports whether err is a JetStream API error with code.
func isAPIError(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}

// mapErr turns a connection that closed under a call into store.ErrClosed
// when the store is closing, and a done ctx into its cause.
func (s *Store) mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	select {
	case <-s.closing:
		if errors.Is(err, nats.ErrConnectionClosed) {
			return store.ErrClosed
		}
	default:
	}
	return fmt.Errorf("tether: natsstore: %w", err)
}

var _ store.Store = (*Store)(nil)

func asAPIError(err error, target **jetstream.APIError) bool {
	return errors.As(err, target)
}
