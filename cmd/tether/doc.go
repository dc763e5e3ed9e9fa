// Command tether runs a tether node, and is the command line of its
// users: durable channels over long-poll, Server-Sent Events, WebSocket
// and plain TCP that notice when a client is really gone, and jobs run by
// worker processes.
//
//	tether serve [--config FILE] [flags]
//	tether publish CHANNEL JSON
//	tether tail CHANNEL [--after CURSOR]
//	tether jobs ls|show ID|cancel ID
//	tether connections ls|close ID --mode close|reset|discard
//	tether token | config defaults | config check FILE | version
//
// serve is a thin user of package tether: its settings become a
// tether.Config, then New, Start, a signal, Shutdown. Every setting is a
// flag, an environment variable (--addr is TETHER_ADDR: upper case,
// dashes as underscores, prefix TETHER_) and a key of the TOML config
// file (addr = "..."); the command line wins over the environment, which
// wins over the file (parseServeFlags). Each command lives in its own
// file; main.go only dispatches. The client commands share their flags,
// HTTP calls and progress lines through internal/cli. The load harness is
// its own command, cmd/tether-bench, so this binary links no plotting.
package main
