// Command tether runs a tether node: durable channels over long-poll,
// Server-Sent Events, WebSocket and plain TCP that notice when a client is
// really gone, and jobs run by worker processes.
//
//	tether serve [flags]
//
// It is a thin user of package tether: flags become a tether.Config, then
// New, Start, a signal, Shutdown. Every flag has an environment variable:
// --addr is TETHER_ADDR, --data is TETHER_DATA, and so on (upper case,
// dashes as underscores, prefix TETHER_). The load harness is its own
// command, cmd/tether-bench, so this binary links no plotting.
package main
