package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Modes of a run.
const (
	modeIdle   = "idle"
	modeFanout = "fanout"
	modeStep   = "step"
)

// contractFrameRate is the contract's sustained per-socket frame limit (PROTOCOL.md, Limits).
const contractFrameRate = 200

type config struct {
	URL         string
	Gateways    string
	AllowRemote bool
	Mode        string

	Sockets int
	Users   int
	Rooms   int

	Rate          float64
	Duration      time.Duration
	Drain         time.Duration
	Timeout       time.Duration
	MaxSenderRate float64
	MsgSize       int

	StepStart    float64
	StepFactor   float64
	StepDuration time.Duration
	MaxP99       time.Duration
	MaxSteps     int

	DialRate         float64
	DialConcurrency  int
	SetupConcurrency int
	AuthTimeout      time.Duration
	Keepalive        time.Duration
	WarmupTimeout    time.Duration

	OwnerEmail    string
	OwnerPassword string
	UserPrefix    string
	UserPassword  string

	ServerPID  int
	MetricsURL string

	JSON       bool
	CPUProfile string
	Verify     bool
	Cleanup    bool
	Verbose    bool

	// Derived.
	base  *url.URL
	wsURL string
	// wsURLs are the WebSocket URLs sockets are spread over (-url's, then -gateways').
	wsURLs []string
}

const usageHeader = `meshbench: load tool for a Mesh server, over its public REST and WebSocket contract.

Usage:
  meshbench [flags]

Modes:
  idle    open -sockets sockets, hold them for -duration; report the server's RSS per socket
  fanout  send -rate messages/s in total across the rooms for -duration; report deliveries,
          loss, latency percentiles, server RSS, and check every acked message was stored
  step    fanout at -step-start, raising the rate by -step-factor every -step-duration until
          loss, errors or p99 latency over -max-p99; report each step and the last good rate

Set-up: the first run sets the mesh up with the -owner-* account (or logs in as it), registers
(or logs in) -users users named <-user-prefix>-NNNNN@example.com, the owner creates -rooms
fresh rooms, and each user joins exactly one of them (user i joins room i mod rooms).
Sockets are spread round-robin over the users (socket j belongs to user j mod users), so
several sockets per user is fine. Sockets open at -dial-rate, -dial-concurrency at once; each
sends authenticate and waits for auth_ok and snapshot; failures are counted by kind.

Measuring:
  - fanout/step: each room's rate is spread over as few of its sockets as keep each under
    -max-sender-rate. A message's content carries its send time; latency runs from just
    before the sender writes the frame to the moment a reader has parsed the message event
    (one clock: the tool's host). Expected deliveries = acked messages x the room's open
    sockets (the sender's own included); loss = expected - received, counted after the
    drain. deliveries/s = deliveries received / sending window.
  - Memory per socket is (loaded - baseline) / sockets opened. It means something in idle
    mode, on a freshly started server: Go keeps freed memory, so a server that has already
    run shows little growth. The Go heap and goroutine counts come from /metrics when it
    answers; -server-pid reads RSS and CPU from /proc instead.
  - The tool shares the machine with the server: watch "tool cpu" (and -cpuprofile).
  - Set-up is fast only on a server with relaxed limits, e.g. meshd with
    MESH_REGISTRATIONS_PER_MINUTE=1000000 MESH_REST_RATE=100000 MESH_BCRYPT_COST=4; otherwise 429 answers are
    waited out as Retry-After says.
  - Loopback servers only, unless -allow-remote. Everything stops by -timeout (closing the
    sockets and deleting the rooms take a few seconds more at most).

Flags:
`

// parseFlags reads the command line into a config, or returns flag.ErrHelp for -h.
func parseFlags(args []string, output io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprint(output, usageHeader)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:4000", "base `URL` of the mesh server (its WebSocket is <url>/ws)")
	fs.StringVar(&c.Gateways, "gateways", "", "more gateways' base `URLs`, comma-separated: sockets are spread round-robin over -url and these (a cluster)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a server that is not on a loopback address")
	fs.StringVar(&c.Mode, "mode", modeFanout, "run mode: idle, fanout or step")
	fs.IntVar(&c.Sockets, "sockets", 1000, "number of WebSocket connections in total")
	fs.IntVar(&c.Users, "users", 100, "number of bench users (each has sockets/users sockets, give or take one)")
	fs.IntVar(&c.Rooms, "rooms", 10, "number of bench rooms (each user is a member of exactly one)")
	fs.Float64Var(&c.Rate, "rate", 1000, "fanout: messages sent per second, in total across all rooms")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to send (fanout) or hold the sockets (idle)")
	fs.DurationVar(&c.Drain, "drain", 2*time.Second, "after sending stops, how long at most to wait for in-flight deliveries and acks")
	fs.DurationVar(&c.Timeout, "timeout", 20*time.Minute, "hard limit on the whole run, set-up included")
	fs.Float64Var(&c.MaxSenderRate, "max-sender-rate", 150, "messages/s one socket may send; more senders are used above it (contract limit: 200 frames/s)")
	fs.IntVar(&c.MsgSize, "msg-size", 0, "pad message contents to at least this many `bytes`")
	fs.Float64Var(&c.StepStart, "step-start", 100, "step: first rate (messages/s)")
	fs.Float64Var(&c.StepFactor, "step-factor", 2, "step: rate multiplier between steps (> 1)")
	fs.DurationVar(&c.StepDuration, "step-duration", 10*time.Second, "step: sending time of each step")
	fs.DurationVar(&c.MaxP99, "max-p99", 100*time.Millisecond, "step: a step whose p99 latency is above this fails")
	fs.IntVar(&c.MaxSteps, "max-steps", 30, "step: stop after this many steps")
	fs.Float64Var(&c.DialRate, "dial-rate", 500, "sockets opened per second at most")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", 64, "sockets being opened (dial, upgrade, authenticate) at once at most")
	fs.IntVar(&c.SetupConcurrency, "setup-concurrency", 8, "concurrent REST calls during set-up (register, login, join)")
	fs.DurationVar(&c.AuthTimeout, "auth-timeout", 10*time.Second, "time for a socket to connect and get auth_ok and snapshot")
	fs.DurationVar(&c.WarmupTimeout, "warmup-timeout", 60*time.Second, "fanout/step: before measuring, send one message per room and wait up to this long for all its deliveries (0: no warm-up)")
	fs.DurationVar(&c.Keepalive, "keepalive", 30*time.Second, "send a ping frame on every socket this often (0: never)")
	fs.StringVar(&c.OwnerEmail, "owner-email", "bench-owner@example.com", "owner account: created if the mesh needs set-up, logged in otherwise")
	fs.StringVar(&c.OwnerPassword, "owner-password", "bench-password-1", "owner account password")
	fs.StringVar(&c.UserPrefix, "user-prefix", "bench-user", "bench users are <prefix>-00001@example.com, ...")
	fs.StringVar(&c.UserPassword, "user-password", "bench-password-1", "password of the bench users")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "read the server's RSS from /proc/`PID`/status instead of /metrics")
	fs.StringVar(&c.MetricsURL, "metrics-url", "", "Prometheus endpoint with process_resident_memory_bytes (default <url>/metrics)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object per run on stdout (the summary goes to stderr)")
	fs.BoolVar(&c.Verify, "verify", true, "fanout/step: check over REST that every acked message is stored, gap-free")
	fs.BoolVar(&c.Cleanup, "cleanup", true, "delete the bench rooms at the end")
	fs.BoolVar(&c.Verbose, "v", false, "verbose progress")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the tool's own CPU profile to `file` (to check the tool is not the bottleneck)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Mode == modeIdle || c.Mode == modeFanout || c.Mode == modeStep, "-mode must be idle, fanout or step, not %q", c.Mode)
	check(c.Sockets >= 1, "-sockets must be at least 1")
	check(c.Users >= 1, "-users must be at least 1")
	check(c.Rooms >= 1, "-rooms must be at least 1")
	check(c.Rooms <= c.Users, "-rooms (%d) cannot exceed -users (%d): every room needs a member", c.Rooms, c.Users)
	check(c.Duration > 0, "-duration must be positive")
	check(c.Drain >= 0, "-drain cannot be negative")
	check(c.Timeout > 0, "-timeout must be positive")
	check(c.MaxSenderRate > 0 && c.MaxSenderRate <= contractFrameRate,
		"-max-sender-rate must be in (0, %d]", contractFrameRate)
	check(c.MsgSize >= 0 && c.MsgSize <= 16<<10, "-msg-size must be in [0, 16384]")
	check(c.DialRate > 0, "-dial-rate must be positive")
	check(c.DialConcurrency >= 1, "-dial-concurrency must be at least 1")
	check(c.SetupConcurrency >= 1, "-setup-concurrency must be at least 1")
	check(c.AuthTimeout > 0, "-auth-timeout must be positive")
	check(c.Keepalive >= 0, "-keepalive cannot be negative")
	check(c.WarmupTimeout >= 0, "-warmup-timeout cannot be negative")
	check(len(c.OwnerPassword) >= 8 && len(c.UserPassword) >= 8, "passwords need at least 8 characters")
	check(c.OwnerEmail != "" && strings.Contains(c.OwnerEmail, "@"), "-owner-email must be an email address")
	check(c.UserPrefix != "" && !strings.ContainsAny(c.UserPrefix, "@ \t"), "-user-prefix must be non-empty, without '@' or spaces")
	check(c.ServerPID >= 0, "-server-pid cannot be negative")
	switch c.Mode {
	case modeFanout:
		check(c.Rate > 0, "-rate must be positive")
	case modeStep:
		check(c.StepStart > 0, "-step-start must be positive")
		check(c.StepFactor > 1, "-step-factor must be greater than 1")
		check(c.StepDuration > 0, "-step-duration must be positive")
		check(c.MaxP99 > 0, "-max-p99 must be positive")
		check(c.MaxSteps >= 1, "-max-steps must be at least 1")
	}
	explicitMetrics := c.MetricsURL != ""
	base, err := parseBaseURL(c.URL)
	if err != nil {
		errs = append(errs, err)
	} else {
		c.base = base
		ws := *base
		ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[base.Scheme]
		ws.Path = strings.TrimSuffix(base.Path, "/") + "/ws"
		c.wsURL = ws.String()
		c.wsURLs = []string{c.wsURL}
		for _, g := range strings.Split(c.Gateways, ",") {
			if g = strings.TrimSpace(g); g == "" {
				continue
			}
			gu, err := parseBaseURL(g)
			if err != nil {
				errs = append(errs, fmt.Errorf("-gateways: %w", err))
				continue
			}
			if !c.AllowRemote {
				if err := requireLoopback(gu.Hostname()); err != nil {
					errs = append(errs, fmt.Errorf("-gateways: %w", err))
					continue
				}
			}
			gw := *gu
			gw.Scheme = map[string]string{"http": "ws", "https": "wss"}[gu.Scheme]
			gw.Path = strings.TrimSuffix(gu.Path, "/") + "/ws"
			c.wsURLs = append(c.wsURLs, gw.String())
		}
		if !explicitMetrics {
			m := *base
			m.Path = strings.TrimSuffix(base.Path, "/") + "/metrics"
			c.MetricsURL = m.String()
		}
		if !c.AllowRemote {
			if err := requireLoopback(base.Hostname()); err != nil {
				errs = append(errs, fmt.Errorf("-url: %w", err))
			}
		}
	}
	if c.MetricsURL == "" {
		// -url is wrong: already reported.
	} else if mu, err := url.Parse(c.MetricsURL); err != nil || (mu.Scheme != "http" && mu.Scheme != "https") || mu.Host == "" {
		errs = append(errs, fmt.Errorf("-metrics-url %q is not an http(s) URL", c.MetricsURL))
	} else if !c.AllowRemote && explicitMetrics {
		if err := requireLoopback(mu.Hostname()); err != nil {
			errs = append(errs, fmt.Errorf("-metrics-url: %w", err))
		}
	}
	return errors.Join(errs...)
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-url %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("-url %q has no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("-url %q: no query or fragment, please", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// requireLoopback accepts "localhost" and loopback IP literals only. Other names are not
// resolved: a load tool pointed at a name by mistake should stop, not guess.
func requireLoopback(host string) error {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not a loopback address; pass -allow-remote to load a remote server", host)
}

// userEmail is the email of bench user i (from 0).
func (c *config) userEmail(i int) string {
	return fmt.Sprintf("%s-%05d@example.com", c.UserPrefix, i+1)
}
