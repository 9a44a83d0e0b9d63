package apisvc

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/mesh"
)

// decode reads the request body into v, strictly: a body that is not one JSON object of the
// expected shape is bad_request. An empty body decodes as {}.
func decode(c *call, v any) error {
	body := bytes.TrimSpace(c.req.Body)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '{' {
		return mesh.Errorf(mesh.CodeBadRequest, "the body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok {
			return mesh.Errorf(mesh.CodeBadRequest, "field %q has the wrong type", te.Field)
		}
		return mesh.Errorf(mesh.CodeBadRequest, "the body is not valid JSON")
	}
	return nil
}

func asTypeError(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = t
	}
	return ok
}

// param is a path parameter (or, for WebSocket frames, the field of the same name).
func param(c *call, name string) (string, error) {
	v := c.req.Params[name]
	if v == "" {
		return "", mesh.Errorf(mesh.CodeBadRequest, "%s is required", name)
	}
	if len(v) > 128 {
		return "", mesh.Errorf(mesh.CodeBadRequest, "%s is too long", name)
	}
	return v, nil
}

// queryInt reads a non-negative integer query parameter (0 when absent).
func queryInt(c *call, name string) (int64, error) {
	v := c.req.Query[name]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, mesh.Errorf(mesh.CodeBadRequest, "%s must be a non-negative integer", name)
	}
	return n, nil
}

// listLimit reads limit: default 50, at most 200.
func listLimit(c *call) (int, error) {
	n, err := queryInt(c, "limit")
	if err != nil {
		return 0, err
	}
	switch {
	case c.req.Query["limit"] == "":
		return mesh.DefaultListLimit, nil
	case n == 0:
		return 0, mesh.Errorf(mesh.CodeBadRequest, "limit must be at least 1")
	case n > mesh.MaxListLimit:
		return mesh.MaxListLimit, nil
	}
	return int(n), nil
}

// text checks a user-supplied string: trimmed, required or not, at most max runes, no
// control characters but newlines and tabs.
func text(field, v string, required bool, max int) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		if required {
			return "", mesh.Errorf(mesh.CodeBadRequest, "%s is required", field)
		}
		return "", nil
	}
	if !utf8.ValidString(v) {
		return "", mesh.Errorf(mesh.CodeBadRequest, "%s must be UTF-8", field)
	}
	if utf8.RuneCountInString(v) > max {
		return "", mesh.Errorf(mesh.CodeBadRequest, "%s is longer than %d characters", field, max)
	}
	for _, r := range v {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return "", mesh.Errorf(mesh.CodeBadRequest, "%s contains control characters", field)
		}
	}
	return v, nil
}

// list is the contract's list shape.
type list[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

func strp(s string) *string { return &s }

// Rate limits count events in fixed one-minute windows, in Deps.Limits: shared by every API
// worker of a cluster (Redis), or this process's own (all-in-one).
const limitWindow = time.Minute

// Kinds of rate-limited events, the first part of their counters' keys.
const (
	limitRegistrations = "registrations"
	limitFailedLogins  = "failed-logins"
	limitUploads       = "uploads"
)

// take counts one event of kind for key and reports whether it is within max; if not, how
// long until the window ends. A counter that cannot be reached lets the event through (a
// limit protects; it must not take the mesh down with Redis): logged.
func (s *Service) take(ctx context.Context, kind, key string, max int, now time.Time) (bool, time.Duration) {
	n, end, err := s.counter.Add(ctx, kind+":"+key, 1, limitWindow, now)
	if err != nil {
		s.log.Warn("rate limit not counted", "kind", kind, "err", err)
		return true, 0
	}
	if n > max {
		return false, end.Sub(now)
	}
	return true, 0
}

// over reports whether key's events of kind already reached max (without counting one).
func (s *Service) over(ctx context.Context, kind, key string, max int, now time.Time) (bool, time.Duration) {
	n, end, err := s.counter.Add(ctx, kind+":"+key, 0, limitWindow, now)
	if err != nil {
		s.log.Warn("rate limit not read", "kind", kind, "err", err)
		return false, 0
	}
	if n >= max {
		return true, end.Sub(now)
	}
	return false, 0
}

func rateLimited(retry time.Duration, what string) error {
	secs := int(retry.Seconds() + 0.999)
	if secs < 1 {
		secs = 1
	}
	return mesh.Errorf(mesh.CodeRateLimited, "too many %s; try again in %d s", what, secs).
		WithDetails(map[string]any{"retryAfter": secs})
}

// presence follows the world's presence events, so REST answers can say who is online.
type presence struct {
	mu     sync.RWMutex
	online map[string]bool
}

func newPresence() *presence { return &presence{online: map[string]bool{}} }

func (p *presence) follow(ctx context.Context, sub bus.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-sub.Messages():
			if !ok {
				return
			}
			var ev mesh.Event
			if json.Unmarshal(m.Data, &ev) != nil {
				continue
			}
			var f struct {
				ParticipantID string `json:"participantId"`
				Status        string `json:"status"`
			}
			if json.Unmarshal(ev.Frame, &f) != nil || f.ParticipantID == "" {
				continue
			}
			p.mu.Lock()
			if f.Status == mesh.StatusOffline {
				delete(p.online, f.ParticipantID)
			} else {
				p.online[f.ParticipantID] = true
			}
			p.mu.Unlock()
		}
	}
}

func (p *presence) status(id string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.online[id] {
		return mesh.StatusOnline
	}
	return mesh.StatusOffline
}

type metrics struct {
	commands *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	expired  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_api_commands_total", Help: "Commands handled by the API service, by operation and result code.",
		}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mesh_api_command_seconds", Help: "Time to handle an API command.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"op"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_api_commands_expired_total", Help: "Commands dropped because their caller's deadline had passed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.commands, m.latency, m.expired)
	}
	return m
}

func (m *metrics) observe(op string, r mesh.Reply, d time.Duration) {
	code := "ok"
	if r.Error != nil {
		code = string(r.Error.Code)
	}
	m.commands.WithLabelValues(op, code).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}
