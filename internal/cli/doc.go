// Package cli holds what tether's commands share: the logger of tether
// serve, and the plumbing of the client commands (publish, tail, jobs,
// connections): their common flags (--server, --token, --json), an HTTP
// client of the API that turns error answers into the server's stable
// codes, aligned tables and JSON lines, and a progress line for anything
// that takes more than a second.
package cli
