package worldsvc

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/themesh/mesh/pkg/mesh"
)

// metrics are the service's Prometheus collectors. They are always made, and registered only
// when a registerer is given.
type metrics struct {
	tick           prometheus.Histogram
	inputs         *prometheus.CounterVec // by op
	dropped        *prometheus.CounterVec // by op, reason
	retried        *prometheus.CounterVec // by op
	ignored        *prometheus.CounterVec // by op
	invalid        *prometheus.CounterVec // by op
	online         prometheus.Gauge
	leader         prometheus.Gauge
	positions      prometheus.Counter
	eventsDropped  prometheus.Counter
	publishErrors  prometheus.Counter
	queueLength    prometheus.GaugeFunc
	entries        *prometheus.CounterVec // by result (with a replicated log)
	commit         prometheus.Histogram
	deferred       prometheus.Counter
	collectorsList []prometheus.Collector
}

// Reasons for dropping an input.
const (
	dropQueueFull = "queue_full" // a lossy input (move, typing) met a full queue
	dropNotLeader = "not_leader" // queued while leader, leadership lost before it was applied
	// dropNotCommitted: the log entry holding it was not committed while this node led.
	dropNotCommitted = "not_committed"
)

// Results of a log entry.
const (
	entryCommitted = "committed"
	entryFailed    = "failed"
)

func newMetrics(queueLength func() float64) *metrics {
	m := &metrics{
		tick: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mesh_world_tick_seconds",
			Help:    "Time the world takes to step one tick (folding moves, expiring gateways), publishing excluded.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 12), // 50 µs .. 102 ms
		}),
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_world_inputs_total",
			Help: "World commands received, by operation.",
		}, []string{"op"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_world_inputs_dropped_total",
			Help: "World inputs dropped: lossy ones (moves, typing) on a full input queue, inputs left when leadership was lost, or lossy inputs of a log entry that was not committed.",
		}, []string{"op", "reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_world_inputs_retried_total",
			Help: "World inputs that must not be lost refused on a full input queue, or (with a replicated log) not committed, and left on the stream for redelivery.",
		}, []string{"op"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_world_inputs_ignored_total",
			Help: "World inputs turned away by the world's state (move or typing outside the participant's rooms, move out of bounds).",
		}, []string{"op"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_world_inputs_invalid_total",
			Help: "World commands refused as bad requests (undecodable, unknown operation, missing fields).",
		}, []string{"op"}),
		online: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mesh_world_online_participants",
			Help: "Participants with at least one open socket.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mesh_world_leader",
			Help: "1 while this node leads the world, 0 otherwise.",
		}),
		positions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_world_positions_events_total",
			Help: "Positions events published (one per room with movers per tick).",
		}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_world_events_dropped_total",
			Help: "Events and replies dropped because the publishers could not keep up.",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_world_publish_errors_total",
			Help: "Events and replies the bus refused to publish.",
		}),
		queueLength: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mesh_world_input_queue_length",
			Help: "Inputs waiting for the world's owner goroutine.",
		}, queueLength),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_world_log_entries_total",
			Help: "Entries this node proposed to the world's replicated log, by result (committed, failed).",
		}, []string{"result"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mesh_world_log_commit_seconds",
			Help:    "Time from proposing an entry to the world's replicated log to its being committed and applied here.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12), // 0.5 ms .. 1 s
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_world_log_deferred_total",
			Help: "Entries kept for the next tick because the replicated log was behind (their tick's step is skipped).",
		}),
	}
	m.collectorsList = []prometheus.Collector{
		m.tick, m.inputs, m.dropped, m.retried, m.ignored, m.invalid, m.online, m.leader,
		m.positions, m.eventsDropped, m.publishErrors, m.queueLength, m.entries, m.commit, m.deferred,
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var (
		errs []error
		done []prometheus.Collector
	)
	for _, c := range m.collectorsList {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, c)
	}
	if err := errors.Join(errs...); err != nil {
		for _, c := range done { // all or nothing
			reg.Unregister(c)
		}
		return fmt.Errorf("worldsvc: register metrics: %w", err)
	}
	return nil
}

// opLabel bounds the op label to the world's operations.
func opLabel(op string) string {
	switch op {
	case mesh.WorldConnect, mesh.WorldDisconnect, mesh.WorldTyping, mesh.WorldMove,
		mesh.WorldMembership, mesh.WorldGateway:
		return op
	}
	return "unknown"
}
