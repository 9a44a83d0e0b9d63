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
	collectorsList []prometheus.Collector
}

// Reasons for dropping an input.
const (
	dropQueueFull = "queue_full" // a lossy input (move, typing) met a full queue
	dropNotLeader = "not_leader" // queued while leader, leadership lost before it was applied
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
			Help: "World inputs dropped: lossy ones (moves, typing) on a full input queue, or inputs left when leadership was lost.",
		}, []string{"op", "reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_world_inputs_retried_total",
			Help: "World inputs that must not be lost refused on a full input queue and left on the stream for redelivery.",
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
	}
	m.collectorsList = []prometheus.Collector{
		m.tick, m.inputs, m.dropped, m.retried, m.ignored, m.invalid, m.online, m.leader,
		m.positions, m.eventsDropped, m.publishErrors, m.queueLength,
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
