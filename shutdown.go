package tether

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"time"
)

// Shutdown stops the Node gracefully, on one path for every transport:
//
//  1. Stop accepting: the listeners Start and Serve opened, and the TCP
//     transport's, are closed; connections already open go on.
//  2. Notify and drain: the registry tells every live connection, over its
//     own transport, that the server is going away (a long-poll gets its
//     keepalive answer, an SSE stream a shutdown event, WebSocket and TCP
//     a shutdown frame), with reconnect hints spread over
//     Config.ShutdownSpread, and waits for the clients to leave.
//  3. Close: what is left when ctx's deadline nears is closed gracefully,
//     then reset.
//  4. The HTTP servers close their idle connections, the jobs service
//     stops dispatching (running attempts keep their leases, which this
//     node restarted, or another, honours), publishes in flight finish,
//     and the store is closed if the Node opened it.
//
// It returns ctx.Err() when the deadline won, and the same result to
// every caller; later calls wait for the first.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.shutdown {
		n.mu.Unlock()
		select {
		case <-n.done:
			return n.doneErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.shutdown = true
	servers := n.servers
	n.mu.Unlock()

	n.log.Info("stopping", "connections", len(n.conns.List()))
	for _, hs := range servers {
		hs.ln.Close()
	}
	n.tcp.StopAccepting()
	err := n.conns.Shutdown(ctx, n.spread(ctx))
	err = cmp.Or(err, n.tcp.Stop(ctx), n.ws.Stop(ctx))
	for _, hs := range servers {
		if herr := hs.srv.Shutdown(ctx); herr != nil {
			hs.srv.Close()
			err = cmp.Or(err, herr)
		}
		<-hs.done
		if hs.err != nil && !errors.Is(hs.err, http.ErrServerClosed) {
			n.log.Error("serve", "err", hs.err)
		}
	}
	err = cmp.Or(err, n.jobs.Stop(ctx))
	if n.ownStore {
		err = cmp.Or(err, n.store.Close())
	}
	n.log.Info("stopped", "err", err)
	n.doneErr = err
	close(n.done)
	return err
}

// spread is the reconnect window: ShutdownSpread, but no more than half
// of what is left of ctx, so that clients can act on their hints.
func (n *Node) spread(ctx context.Context) time.Duration {
	d := n.cfg.ShutdownSpread
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return max(d, 0)
}
