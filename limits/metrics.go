package limits

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the limits' series. Usage gauges are read from the
// counters at scrape time, so the hot path only counts refusals.
type metrics struct {
	refusals *prometheus.CounterVec // tether_limit_refusals_total{limit}
}

func newMetrics(cfg Config, l *Limits) (*metrics, error) {
	m := &metrics{refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tether_limit_refusals_total",
		Help: "Requests refused by a limit, by limit.",
	}, []string{"limit"})}
	for _, name := range []string{LimitConnections, LimitConnectionsPerUser, LimitConnectionsPerIP,
		LimitSubscriptionsPerConnection, LimitSubscriptions, LimitPublishRate} {
		m.refusals.WithLabelValues(name) // export zeros, so rate() works from the start
	}
	if cfg.Registerer == nil {
		return m, nil
	}
	usage := func(name, help string, f func(Usage) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f(l.Usage())) })
	}
	maxima := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tether_limit_max",
		Help: "Configured maximum of each limit (-1: none; publish_rate in publishes per second per user).",
	}, []string{"limit"})
	for name, v := range map[string]float64{
		LimitConnections: float64(cfg.MaxConnections), LimitConnectionsPerUser: float64(cfg.MaxConnectionsPerUser),
		LimitConnectionsPerIP: float64(cfg.MaxConnectionsPerIP), LimitSubscriptionsPerConnection: float64(cfg.MaxSubscriptionsPerConnection),
		LimitSubscriptions: float64(cfg.MaxSubscriptions), LimitPublishRate: cfg.PublishRate,
	} {
		if v < 0 {
			v = -1
		}
		maxima.WithLabelValues(name).Set(v)
	}
	cs := []prometheus.Collector{
		m.refusals, maxima,
		usage("tether_limit_connections", "Connections counted against the limits.", func(u Usage) int { return u.Connections }),
		usage("tether_limit_subscriptions", "Subscriptions counted against the limits.", func(u Usage) int { return u.Subscriptions }),
		usage("tether_limit_users", "Users with at least one connection.", func(u Usage) int { return u.Users }),
		usage("tether_limit_ips", "IP addresses (IPv6: /64s) with at least one connection.", func(u Usage) int { return u.IPs }),
		usage("tether_limit_rate_buckets", "Publish-rate token buckets kept.", func(u Usage) int { return u.RateKeys }),
	}
	for _, c := range cs {
		if err := cfg.Registerer.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("tether: limits metrics already registered on this Registerer (one Limits per registry)")
			}
			return nil, err
		}
	}
	return m, nil
}
