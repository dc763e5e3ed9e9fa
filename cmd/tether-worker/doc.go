// Command tether-worker is an example worker: it takes jobs from a tether
// server and runs a few built-in demo handlers.
//
//	tether-worker --url ws://127.0.0.1:8080 --types noop,sleep --concurrency 4
//
// Handlers:
//
//	noop           returns {"ok":true} at once
//	sleep          payload {"ms":N}: sleeps N ms, stopping early when the job is cancelled;
//	               with "progress":true it first reports progress {"started":true}
//	ignore-cancel  payload {"ms":N}: sleeps N ms, ignoring cancellation
//
// With --effects-log FILE, every handler invocation appends one line, once
// the handler returned and before its outcome is reported:
//
//	<job id> <attempt> <start unix nanos> <end unix nanos> <pid>
//
// The file is opened with O_APPEND, so several workers may share it. A test
// reads it as the handlers' side effect: two lines of one job whose
// intervals overlap would be two attempts running at the same time.
//
// SIGINT or SIGTERM shuts down gracefully (drain, --shutdown-grace, then
// hand back what still runs); a second signal exits at once.
package main
