package tether

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/tether-run/tether/store"
)

// ErrBadMessage: Publish was given data that is not one JSON value.
var ErrBadMessage = errors.New("tether: message is not valid JSON")

// PublishOptions are the optional parts of a Publish.
type PublishOptions struct {
	// IdempotencyKey, when not empty, makes a repeat of this publish within
	// the dedup window append nothing and answer the first cursor, as the
	// Idempotency-Key header does over HTTP.
	IdempotencyKey string
}

// Publish appends data, one JSON value, to channel, and returns once it is
// durable: the subscribers of every transport receive it, on this node and
// on every node of the same store. The value is stored compacted, as over
// HTTP. Errors: ErrBadMessage, store.ErrBadChannel, store.ErrClosed, or
// ctx's.
func (n *Node) Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (store.AppendResult, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return store.AppendResult{}, ErrBadMessage
	}
	return n.store.Append(ctx, channel, buf.Bytes(), store.AppendOptions{IdempotencyKey: opts.IdempotencyKey})
}

// Read returns up to limit messages of channel after the cursor (store.Start
// for the oldest retained), as a long-poll that does not wait. Its Gap field
// reports history that retention removed.
func (n *Node) Read(ctx context.Context, channel string, after store.Cursor, limit int) (store.ReadResult, error) {
	return n.store.Read(ctx, channel, after, limit)
}
