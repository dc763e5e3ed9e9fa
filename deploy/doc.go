// Package deploy holds the configuration files docs/deploy.md quotes for
// running tether in production, and the tests that run them: nginx
// (nginx/tether.conf, nginx/tether-stream.conf) and Caddy (caddy/Caddyfile)
// in front of a real tether binary, the systemd unit (tether.service,
// checked by systemd-analyze verify and run by hand as systemd would), the
// kernel settings (sysctl.conf), the NATS server configuration
// (nats/nats-server.conf) and the Prometheus alerts
// (prometheus/tether-alerts.yml).
//
// The package has no Go API; it exists for its tests. Each test renders a
// committed file by replacing production values (ports, paths, the
// upstream address) with the test's, each replacement checked to occur the
// expected number of times and nothing else changed, so what is tested is
// what an operator copies. docs/deploy.md quotes the files verbatim, and
// TestDocQuotesFiles fails when a quote and its file differ.
//
// The proxy tests need nginx (Debian: nginx, libnginx-mod-stream) and caddy
// (Debian: caddy); scripts/test.sh installs them as root. Without them the
// tests skip with a message.
package deploy
