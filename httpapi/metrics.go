package httpapi

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-run/tether/conn"
)

// metrics are the API's Prometheus series. With a nil Registerer they are
// created but never exported, so recording needs no nil checks.
type metrics struct {
	ends      *prometheus.CounterVec
	notice    *prometheus.HistogramVec
	published *prometheus.CounterVec
	waiting   *prometheus.GaugeVec
	// The two waiting series, looked up once: every wait touches them.
	waitingPoll, waitingEvents prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_http_request_ends_total",
			Help: "HTTP API requests by route and how they ended (completed, half-closed, closed, reset, timeout, shutdown, ...).",
		}, []string{"route", "reason"}),
		notice: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tether_http_departure_notice_seconds",
			Help:    "Time from the first sign of a client's departure to its classification.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 10, 30},
		}, []string{"reason"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_messages_published_total",
			Help: "Publishes acknowledged, by whether an Idempotency-Key made them a replay.",
		}, []string{"replayed"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tether_http_waiting_requests",
			Help: "Long-polls and SSE streams waiting for a message right now, by route.",
		}, []string{"route"}),
	}
	m.waitingPoll = m.waiting.WithLabelValues("poll")
	m.waitingEvents = m.waiting.WithLabelValues("events")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.ends, m.notice, m.published, m.waiting} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) ended(route string, e conn.End) {
	m.ends.WithLabelValues(route, string(e.Reason)).Inc()
	if e.Noticed > 0 {
		m.notice.WithLabelValues(string(e.Reason)).Observe(e.Noticed.Seconds())
	}
}

func (a *API) published(replayed bool) {
	a.metrics.published.WithLabelValues(strconv.FormatBool(replayed)).Inc()
}
