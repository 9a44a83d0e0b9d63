package gateway

import (
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"github.com/themesh/mesh/pkg/mesh"
)

// restLimiter rate-limits REST requests per participant (per client address for requests
// without a valid token), with a token bucket each. Buckets idle long enough to be full again
// are dropped. It is this gateway's own: a client keeps its connection to one gateway.
type restLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newRESTLimiter(perSecond float64, burst int) *restLimiter {
	return &restLimiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

// allow takes one request for key at now; if it is refused, it says how long until one is
// allowed.
func (l *restLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= time.Minute {
		// A bucket refills from empty in burst/rate: past that (and a margin) it is as good
		// as new, and can go.
		idle := time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Minute
		for k, b := range l.buckets {
			if now.Sub(b.last) > idle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limitREST is the middleware of every /api route: a participant's requests (or an address's,
// without a valid token) beyond its rate are answered rate_limited with Retry-After.
func (g *Gateway) limitREST(c *fiber.Ctx) error {
	key := "addr:" + c.IP()
	if claims, err := g.claims(c); err == nil {
		key = "p:" + claims.ParticipantID
	}
	if ok, wait := g.restLimits.allow(key, time.Now()); !ok {
		g.metrics.rateLimited.Inc()
		secs := int(wait.Seconds() + 0.999)
		return writeError(c, mesh.Errorf(mesh.CodeRateLimited, "too many requests; try again in %d s", secs).
			WithDetails(map[string]any{"retryAfter": secs}))
	}
	return c.Next()
}
