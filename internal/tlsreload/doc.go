// Package tlsreload serves a TLS certificate from --tls-cert/--tls-key and
// swaps it when the files change and the server is told (SIGHUP), without
// a restart and without dropping connections.
//
// Example:
//
//	rl, err := tlsreload.New(certFile, keyFile)
//	...
//	ln = tls.NewListener(ln, rl.TLSConfig()) // HTTP and TCP listeners alike
//	// on SIGHUP:
//	if err := rl.Reload(); err != nil { log.Warn("keeping the old certificate", "err", err) }
//
// Concurrency: GetCertificate runs on every handshake, concurrently with
// Reload; the certificate is swapped through an atomic pointer, so
// neither blocks the other. Reload may itself be called concurrently
// (the last to finish wins). No goroutines are started.
package tlsreload
