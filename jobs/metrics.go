package jobs

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Service's Prometheus series. With a nil Registerer they
// are created but never exported, so recording needs no nil checks.
type metrics struct {
	created prometheus.Counter
	// createdNoWorker counts jobs created for a type no attached worker ran.
	createdNoWorker prometheus.Counter
	ended           *prometheus.CounterVec
	running         prometheus.Gauge
	claimConflicts  prometheus.Counter
	leaseExpiries   prometheus.Counter
	cancelPush      prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tether_jobs_created_total",
			Help: "Jobs created on this node (idempotent replays not counted).",
		}),
		createdNoWorker: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tether_jobs_created_without_worker_total",
			Help: "Jobs created for a type that no worker attached to this node runs (answered with a warning).",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_jobs_ended_total",
			Help: "Final outcomes this node recorded, by state (succeeded, failed, canceled).",
		}, []string{"state"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tether_jobs_running",
			Help: "Attempts running on the workers attached to this node.",
		}),
		claimConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tether_jobs_claim_conflicts_total",
			Help: "Claims that lost a conditional append to another writer.",
		}),
		leaseExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tether_jobs_lease_expiries_total",
			Help: "Attempts this node ended because their lease ran out.",
		}),
		cancelPush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tether_jobs_cancel_push_seconds",
			Help:    "Time from a cancel_requested event being stored to the cancel frame being pushed to the worker.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1},
		}),
	}
	for _, s := range []string{string(Succeeded), string(Failed), string(Canceled)} {
		m.ended.WithLabelValues(s)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.created, m.createdNoWorker, m.ended, m.running, m.claimConflicts, m.leaseExpiries, m.cancelPush} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
