package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connections prometheus.Gauge
	framesIn    prometheus.Counter
	framesOut   prometheus.Counter
	eventsIn    prometheus.Counter
	reordered   prometheus.Counter
	slowClosed  prometheus.Counter
	writes      prometheus.Counter
	commands    *prometheus.HistogramVec
	requests    *prometheus.HistogramVec
	uploads     prometheus.Gauge
	rateLimited prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesh_gateway_connections", Help: "Open WebSocket connections."}),
		framesIn:    prometheus.NewCounter(prometheus.CounterOpts{Name: "mesh_gateway_frames_in_total", Help: "Frames received from clients."}),
		framesOut:   prometheus.NewCounter(prometheus.CounterOpts{Name: "mesh_gateway_frames_out_total", Help: "Frames sent to clients."}),
		eventsIn:    prometheus.NewCounter(prometheus.CounterOpts{Name: "mesh_gateway_events_in_total", Help: "Events received from the bus."}),
		reordered:   prometheus.NewCounter(prometheus.CounterOpts{Name: "mesh_gateway_events_reordered_total", Help: "Message events that arrived out of seq order and were held."}),
		slowClosed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "mesh_gateway_slow_sockets_closed_total", Help: "Sockets closed because they could not keep up."}),
		writes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "mesh_gateway_socket_writes_total", Help: "Batched writes to sockets (frames out / writes = frames per system call)."}),
		commands: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mesh_gateway_command_seconds", Help: "Time from a client event to its answer, by event type.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"type"}),
		uploads:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesh_gateway_uploads_in_progress", Help: "File uploads being streamed to the blob store."}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "mesh_gateway_rest_rate_limited_total", Help: "REST requests refused by the per-participant rate limit."}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mesh_gateway_request_seconds", Help: "REST request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"route", "method"}),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.framesIn, m.framesOut, m.eventsIn, m.reordered, m.slowClosed, m.writes, m.commands, m.requests, m.uploads, m.rateLimited)
	}
	return m
}
