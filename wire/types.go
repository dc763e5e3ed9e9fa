package wire

// Client frame types (client to server). docs/protocol.md, "Client frames".
const (
	TypeSubscribe   = "subscribe"   // request: start receiving a channel after a cursor
	TypeUnsubscribe = "unsubscribe" // request: stop receiving a channel
	TypePublish     = "publish"     // request: append data to a channel
	TypePing        = "ping"        // request from a client; heartbeat from the server
	TypePong        = "pong"        // answer to a ping, either way
	TypeHello       = "hello"       // TCP only, first frame only: presents a session key and a token
	TypeBye         = "bye"         // the client is leaving
	TypeRefresh     = "refresh"     // request: replace the connection's token before it expires
)

// Server frame types (server to client). docs/protocol.md, "Server frames".
// TypePing and TypePong above are server frames too.
const (
	TypeReply    = "reply"    // a request succeeded
	TypeError    = "error"    // a request or subscription failed, or the connection is ending
	TypeMessage  = "message"  // a message of a subscribed channel
	TypeGap      = "gap"      // retention removed messages the subscription had not received
	TypeShutdown = "shutdown" // the server is stopping: reconnect after reconnect_after_ms
	TypePresence = "presence" // someone joined or left a channel (subscribe with presence: true)
)

// Worker request types (worker to server). docs/protocol.md, "Worker requests".
const (
	TypeWorker       = "worker"        // makes the connection a worker's
	TypeJobHeartbeat = "job.heartbeat" // renews the leases of the attempts named
	TypeJobProgress  = "job.progress"  // appends a progress event to the job's channel
	TypeJobDone      = "job.done"      // an attempt's outcome: result, error or canceled
	TypeJobRelease   = "job.release"   // hands a running attempt back
	TypeDrain        = "drain"         // assign nothing more to this worker
)

// Server frame types pushed to a worker. docs/protocol.md, "Server frames
// to a worker".
const (
	TypeJob       = "job"        // run an attempt of a job
	TypeJobCancel = "job.cancel" // stop an attempt now
	TypeJobFenced = "job.fenced" // the attempt is over for the server: drop it
)

// Limits the protocol sets.
const (
	// MaxIDLen is the longest request id, in bytes (ids are 1 to 128 bytes).
	MaxIDLen = 128
	// MaxKeyLen is the longest idempotency or session key, in bytes. A
	// worker id is printable ASCII too, but at most MaxIDLen bytes.
	MaxKeyLen = 255
	// MaxChannelLen is the longest channel name, in bytes.
	MaxChannelLen = 128
	// MaxWorkerTypes bounds the job types one worker announces.
	MaxWorkerTypes = 256
	// DefaultMaxFrameSize is the server's default frame size limit
	// (MaxFrameSize, 1 MiB); larger frames end the connection with
	// frame_too_large.
	DefaultMaxFrameSize = 1 << 20
)

// Cancel reasons carried by a job.cancel frame (JobSignal.Reason).
const (
	CancelAPI        = "api"         // POST /v1/jobs/{id}/cancel
	CancelClientGone = "client-gone" // the waiting or following client departed
	CancelTimeout    = "timeout"     // the attempt's deadline passed
)

// Fence reasons carried by a job.fenced frame (JobSignal.Reason).
const (
	FenceCancelGrace  = "cancel-grace"  // the handler ignored a cancel past the server's grace
	FenceLeaseExpired = "lease-expired" // its lease ran out before a heartbeat renewed it
	FenceAttemptEnded = "attempt-ended" // the job moved on through another node
	FenceLeaseLost    = "lease-lost"    // a heartbeat named a stale attempt
	FenceUnknownJob   = "unknown-job"   // no such job
)

// ValidKey reports whether s may be used as an idempotency or session key:
// 1 to MaxKeyLen bytes of printable ASCII (0x20 to 0x7e).
func ValidKey(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidID reports whether s may be used as a request id: 1 to MaxIDLen
// bytes. The protocol does not restrict their bytes further.
func ValidID(s string) bool { return len(s) > 0 && len(s) <= MaxIDLen }

// ValidChannel reports whether s is a valid channel name: 1 to
// MaxChannelLen bytes of A-Za-z0-9-_.:, starting with a letter or digit.
// The server is the authority (it answers bad_channel); a client may check
// early with this.
func ValidChannel(s string) bool {
	if len(s) == 0 || len(s) > MaxChannelLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '_' && c != '.' && c != ':') {
			return false
		}
	}
	return true
}

// JobChannelPrefix starts the name of every job's channel, "job.<id>".
const JobChannelPrefix = "job."

// JobChannel is the channel on which job id's events are published.
func JobChannel(id string) string { return JobChannelPrefix + id }
