package registry

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tether-run/tether/conn"
)

// regMetrics are the Registry's Prometheus series. With a nil Registerer
// they are created but never exported, so recording needs no nil checks.
type regMetrics struct {
	open   *prometheus.GaugeVec     // tether_connections_open{transport}
	ends   *prometheus.CounterVec   // tether_connection_ends_total{transport,reason}
	notice *prometheus.HistogramVec // tether_connection_end_notice_seconds{reason}
}

func newRegMetrics(reg prometheus.Registerer) (*regMetrics, error) {
	m := &regMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tether_connections_open",
			Help: "Connections admitted and not yet ended, by transport.",
		}, []string{"transport"}),
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_connection_ends_total",
			Help: "Connections ended, by transport and end reason.",
		}, []string{"transport", "reason"}),
		notice: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tether_connection_end_notice_seconds",
			Help:    "Time from the first sign of a connection's end to the decision, by end reason.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 10, 30},
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.open, err = register(reg, m.open)
	if err == nil {
		m.ends, err = register(reg, m.ends)
	}
	if err == nil {
		m.notice, err = register(reg, m.notice)
	}
	return m, err
}

// register registers c once per Registerer: when an identical collector is
// already there (a second Registry in the process, a restarted server in
// tests), it returns that one, so both Registries count into one series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// ended counts an end: the connection leaves the open gauge.
func (m *regMetrics) ended(t Transport, reason conn.Reason, noticed time.Duration) {
	m.open.WithLabelValues(string(t)).Dec()
	m.ends.WithLabelValues(string(t), string(reason)).Inc()
	if noticed > 0 {
		m.notice.WithLabelValues(string(reason)).Observe(noticed.Seconds())
	}
}
