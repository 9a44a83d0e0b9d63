package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	histShards      = 8
	senderMaxBurst  = 8           // a late sender catches up at most this many sends at once
	senderMaxLag    = time.Second // a sender further behind skips (and counts) the backlog
	drainPoll       = 20 * time.Millisecond
	closeWorkers    = 32
	closeGrace      = 2 * time.Second
	readerExitWait  = 5 * time.Second
	stepPassMinRate = 0.9 // a step must send at least this share of its target rate
)

// runner holds one run's state.
type runner struct {
	cfg   *config
	api   *apiClient
	hub   *hub
	probe *serverProbe
	logf  func(string, ...any)
	vlogf func(string, ...any)
	runID string

	setup     *setupResult
	socks     []*sock   // by socket index; nil for sockets that failed to open
	roomSocks [][]*sock // open sockets per room index, by socket index
	epoch     uint32
	allAcks   [][]ackRecord // per room, over all measurements

	keepaliveStop chan struct{}
	keepaliveDone chan struct{}
}

// openReport describes how the sockets opened.
type openReport struct {
	Requested  int            `json:"requested"`
	Opened     int            `json:"opened"`
	Failed     int            `json:"failed"`
	Failures   map[string]int `json:"failures,omitempty"`
	Samples    []string       `json:"failureSamples,omitempty"`
	Seconds    float64        `json:"seconds"`
	PerSecond  float64        `json:"perSecond"`
	PerRoomMin int            `json:"perRoomMin"`
	PerRoomMax int            `json:"perRoomMax"`
}

// openSockets opens cfg.Sockets sockets at cfg.DialRate with cfg.DialConcurrency at once.
// Socket i belongs to user i mod users, in that user's room.
func (r *runner) openSockets(ctx context.Context) openReport {
	cfg := r.cfg
	rep := openReport{Requested: cfg.Sockets, Failures: map[string]int{}}
	r.socks = make([]*sock, cfg.Sockets)
	d := newDialer(cfg.wsURLs, cfg.AuthTimeout)
	start := time.Now()

	jobs := make(chan int)
	go func() {
		defer close(jobs)
		next := 0
		maxBurst := int(cfg.DialRate / 100) // 10 ms worth
		p := newPacer(time.Now(), cfg.DialRate, maxBurst, 50*time.Millisecond)
		runPaced(ctx, realClock{}, p, time.Now().Add(100*365*24*time.Hour), func() bool {
			if next >= cfg.Sockets {
				return false
			}
			select {
			case jobs <- next:
				next++
				return next < cfg.Sockets
			case <-ctx.Done():
				return false
			}
		})
	}()

	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		done atomic.Int64
	)
	prog := newProgress("sockets attempted", cfg.Sockets, r.logf)
	for w := 0; w < cfg.DialConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u := &r.setup.Users[i%len(r.setup.Users)]
				s, err := d.open(ctx, i, u, &r.setup.Rooms[u.Room])
				prog.Add(1)
				if err != nil {
					class := failDial
					var de *dialError
					if errors.As(err, &de) {
						class = de.class
					}
					mu.Lock()
					rep.Failures[class]++
					if len(rep.Samples) < 5 {
						rep.Samples = append(rep.Samples, fmt.Sprintf("socket %d (%s): %v", i, u.Email, err))
					}
					mu.Unlock()
					continue
				}
				r.socks[i] = s
				done.Add(1)
				go s.readLoop(r.hub)
			}
		}()
	}
	wg.Wait()
	// Sockets never attempted (the run was cut short) count as failed too.
	attempted := int(prog.done.Load())
	if attempted < cfg.Sockets {
		rep.Failures[failCanceled] += cfg.Sockets - attempted
	}
	rep.Opened = int(done.Load())
	rep.Failed = cfg.Sockets - rep.Opened
	if len(rep.Failures) == 0 {
		rep.Failures = nil
	}
	rep.Seconds = round2(time.Since(start).Seconds())
	if rep.Seconds > 0 {
		rep.PerSecond = round2(float64(cfg.Sockets) / time.Since(start).Seconds())
	}
	r.roomSocks = make([][]*sock, len(r.setup.Rooms))
	for _, s := range r.socks {
		if s != nil {
			r.roomSocks[s.room.Index] = append(r.roomSocks[s.room.Index], s)
		}
	}
	rep.PerRoomMin = -1
	for _, rs := range r.roomSocks {
		if rep.PerRoomMin < 0 || len(rs) < rep.PerRoomMin {
			rep.PerRoomMin = len(rs)
		}
		if len(rs) > rep.PerRoomMax {
			rep.PerRoomMax = len(rs)
		}
	}
	return rep
}

// liveRoomSocks are the open sockets whose reader still runs, per room.
func (r *runner) liveRoomSocks() [][]*sock {
	out := make([][]*sock, len(r.roomSocks))
	for i, rs := range r.roomSocks {
		for _, s := range rs {
			select {
			case <-s.done:
			default:
				out[i] = append(out[i], s)
			}
		}
	}
	return out
}

// startKeepalive pings every open socket once per cfg.Keepalive, spread over the interval.
func (r *runner) startKeepalive(ctx context.Context) {
	r.keepaliveStop = make(chan struct{})
	r.keepaliveDone = make(chan struct{})
	if r.cfg.Keepalive <= 0 {
		close(r.keepaliveDone)
		return
	}
	go func() {
		defer close(r.keepaliveDone)
		var open []*sock
		for _, s := range r.socks {
			if s != nil {
				open = append(open, s)
			}
		}
		if len(open) == 0 {
			return
		}
		ping := []byte(`{"type":"ping"}`)
		gap := r.cfg.Keepalive / time.Duration(len(open))
		if gap <= 0 {
			gap = time.Microsecond
		}
		t := time.NewTicker(gap)
		defer t.Stop()
		// Start one interval from now: the sockets have just authenticated.
		select {
		case <-time.After(r.cfg.Keepalive):
		case <-r.keepaliveStop:
			return
		case <-ctx.Done():
			return
		}
		for i := 0; ; i = (i + 1) % len(open) {
			select {
			case <-t.C:
			case <-r.keepaliveStop:
				return
			case <-ctx.Done():
				return
			}
			if s := open[i]; !s.closing.Load() {
				_ = s.write(ping) // a broken socket is noticed by its reader
			}
		}
	}()
}

// closeSockets closes every socket and waits (briefly) for the readers to return.
func (r *runner) closeSockets() {
	if r.keepaliveStop != nil {
		close(r.keepaliveStop)
		<-r.keepaliveDone
		r.keepaliveStop = nil
	}
	var open []*sock
	for _, s := range r.socks {
		if s != nil {
			open = append(open, s)
		}
	}
	// Close frames get closeGrace in all; past it sockets are just closed.
	deadline := time.Now().Add(closeGrace)
	_ = forEach(context.Background(), len(open), closeWorkers, func(_ context.Context, i int) error {
		open[i].close(deadline)
		return nil
	})
	wait := time.NewTimer(readerExitWait)
	defer wait.Stop()
	for _, s := range open {
		select {
		case <-s.done:
		case <-wait.C:
			r.logf("some socket readers did not stop within %s", readerExitWait)
			return
		}
	}
}

// fanoutResult is one measurement of the fanout (or one step).
type fanoutResult struct {
	TargetRate       float64          `json:"targetRate"`
	Senders          int              `json:"senders"`
	SenderRate       float64          `json:"senderRate"` // messages/s each sender was asked for
	Seconds          float64          `json:"seconds"`    // sending window
	DrainSeconds     float64          `json:"drainSeconds"`
	Sent             int64            `json:"sent"`
	SendRate         float64          `json:"sendRate"` // sent / seconds
	Acked            int64            `json:"acked"`
	Errored          int64            `json:"errored"`
	RateLimited      int64            `json:"rateLimited"`
	ErrorCodes       map[string]int64 `json:"errorCodes,omitempty"`
	Unacked          int64            `json:"unacked"`     // no ack nor error by the end of the drain
	WriteErrors      int64            `json:"writeErrors"` // frames that could not be written
	Skipped          int64            `json:"skipped"`     // sends the tool skipped, being over 1 s late
	AckWithoutSeq    int64            `json:"ackWithoutSeq"`
	Deliveries       deliveryTotals   `json:"deliveries"`
	DeliveriesPerSec float64          `json:"deliveriesPerSec"`
	SocketsLive      int              `json:"socketsLive"`
	Disconnects      int64            `json:"disconnects"` // sockets lost during the measurement
	OrderViolations  uint64           `json:"orderViolations"`
	SeqGaps          uint64           `json:"seqGaps"`
	Latency          latencySummary   `json:"latency"`
	AckLatency       latencySummary   `json:"ackLatency"`
	ServerRSSBytes   *uint64          `json:"serverRssBytes"`
	ServerCPUPct     *float64         `json:"serverCpuPct"` // percent of one core
	ToolCPUPct       *float64         `json:"toolCpuPct"`
}

// readerTotals sums the sockets' reader counters.
type readerTotals struct {
	Frames          uint64 `json:"frames"`
	Messages        uint64 `json:"messages"`
	Foreign         uint64 `json:"foreign"`
	Stale           uint64 `json:"stale"`
	OrderViolations uint64 `json:"orderViolations"`
	SeqGaps         uint64 `json:"seqGaps"`
	ParseErrors     uint64 `json:"parseErrors"`
	Disconnects     int64  `json:"disconnects"`
	UnrefErrors     int64  `json:"unrefErrors"`
	LateAcks        int64  `json:"lateAcks"`
	// DisconnectSamples are the first few reasons sockets were lost.
	DisconnectSamples []string `json:"disconnectSamples,omitempty"`
}

func (r *runner) readerTotals() readerTotals {
	var t readerTotals
	for _, s := range r.socks {
		if s == nil {
			continue
		}
		t.Frames += s.frames.Load()
		t.Messages += s.messages.Load()
		t.Foreign += s.foreign.Load()
		t.Stale += s.stale.Load()
		t.OrderViolations += s.order.Load()
		t.SeqGaps += s.seqGaps.Load()
		t.ParseErrors += s.parseErrs.Load()
	}
	t.Disconnects = r.hub.disconnects.Load()
	t.UnrefErrors = r.hub.unrefErrors.Load()
	t.LateAcks = r.hub.lateAcks.Load()
	r.hub.discMu.Lock()
	t.DisconnectSamples = append([]string(nil), r.hub.discSamples...)
	r.hub.discMu.Unlock()
	return t
}

// measure runs one fanout window at rate for dur, then drains.
func (r *runner) measure(ctx context.Context, rate float64, dur time.Duration) (*fanoutResult, error) {
	live := r.liveRoomSocks()
	plan, err := planSenders(live, rate, r.cfg.MaxSenderRate)
	if err != nil {
		return nil, err
	}
	res := &fanoutResult{TargetRate: rate, Senders: len(plan.Senders)}
	if len(plan.Senders) > 0 {
		res.SenderRate = round2(plan.Senders[0].Rate)
	}
	for _, rs := range live {
		res.SocketsLive += len(rs)
	}
	r.epoch++
	m := newMeasurement(r.epoch, len(r.socks), len(r.setup.Rooms), histShards)
	before := r.readerTotals()
	srvBefore, srvErr := r.probe.Read(ctx)
	selfBefore := selfSample()
	r.hub.cur.Store(m)

	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(dur)
	var (
		wg      sync.WaitGroup
		skipped atomic.Int64
	)
	for j, sp := range plan.Senders {
		wg.Add(1)
		go func(j int, sp senderSpec) {
			defer wg.Done()
			interval := time.Duration(float64(time.Second) / sp.Rate)
			phase := time.Duration(float64(interval) * float64(j) / float64(len(plan.Senders)))
			p := newPacer(start.Add(phase), sp.Rate, senderMaxBurst, senderMaxLag)
			buf := make([]byte, 0, 256+r.cfg.MsgSize)
			runPaced(ctx, realClock{}, p, end, func() bool { return r.sendOne(sp.Sock, m, &buf) })
			skipped.Add(int64(p.Skipped()))
		}(j, sp)
	}
	wg.Wait()
	sendEnd := time.Now()
	window := sendEnd.Sub(start)
	srvAfter, srvErr2 := r.probe.Read(ctx)
	selfAfter := selfSample()

	// Drain: wait for the deliveries and answers still in flight.
	senders := make([]*sock, len(plan.Senders))
	for i, sp := range plan.Senders {
		senders[i] = sp.Sock
	}
	drainEnd := time.Now().Add(r.cfg.Drain)
	for time.Now().Before(drainEnd) && ctx.Err() == nil {
		if r.settled(m, live, senders) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(drainPoll):
		}
	}
	res.DrainSeconds = round2(time.Since(sendEnd).Seconds())
	r.hub.cur.Store(nil)

	res.Seconds = round2(window.Seconds())
	res.Sent = m.sent.Load()
	res.Acked = m.ackedN.Load()
	res.Errored = m.errored.Load()
	res.RateLimited = m.rateLimited.Load()
	res.WriteErrors = m.writeErrs.Load()
	res.Skipped = skipped.Load()
	res.AckWithoutSeq = m.ackNoSeq.Load()
	for _, s := range senders {
		res.Unacked += int64(s.pendingFor(m.epoch))
	}
	m.mu.Lock()
	if len(m.errCodes) > 0 {
		res.ErrorCodes = make(map[string]int64, len(m.errCodes))
		for k, v := range m.errCodes {
			res.ErrorCodes[k] = v
		}
	}
	for i, a := range m.acks {
		r.allAcks[i] = append(r.allAcks[i], a...)
	}
	m.mu.Unlock()
	if window > 0 {
		res.SendRate = round2(float64(res.Sent) / window.Seconds())
	}
	res.Deliveries = accountDeliveries(r.roomCounts(m, live))
	if window > 0 {
		res.DeliveriesPerSec = round2(float64(res.Deliveries.Received) / window.Seconds())
	}
	after := r.readerTotals()
	res.Disconnects = after.Disconnects - before.Disconnects
	res.OrderViolations = after.OrderViolations - before.OrderViolations
	res.SeqGaps = after.SeqGaps - before.SeqGaps
	res.Latency = m.hist.Snapshot().Summary()
	res.AckLatency = m.ack.Snapshot().Summary()
	if srvErr2 == nil {
		v := srvAfter.RSS
		res.ServerRSSBytes = &v
		if srvErr == nil {
			if pct := cpuPercent(srvBefore, srvAfter); pct >= 0 {
				res.ServerCPUPct = &pct
			}
		}
	}
	if pct := cpuPercent(selfBefore, selfAfter); pct >= 0 {
		res.ToolCPUPct = &pct
	}
	return res, nil
}

// warmUp sends one message in each room and waits, up to timeout, until every socket of the
// room has it. The probe goes through the same pipeline as the measured messages, so a
// server still busy with the sockets just opened (sessions, presence) finishes that first
// instead of delaying the first measurement. It returns how long that took.
func (r *runner) warmUp(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	live := r.liveRoomSocks()
	r.epoch++
	m := newMeasurement(r.epoch, len(r.socks), len(r.setup.Rooms), 1)
	r.hub.cur.Store(m)
	defer r.hub.cur.Store(nil)
	start := time.Now()
	var senders []*sock
	for _, rs := range live {
		if len(rs) == 0 {
			continue
		}
		buf := make([]byte, 0, 256+r.cfg.MsgSize)
		if !r.sendOne(rs[0], m, &buf) {
			return 0, fmt.Errorf("warm-up: socket %d cannot be written", rs[0].idx)
		}
		senders = append(senders, rs[0])
	}
	defer func() {
		m.mu.Lock()
		for i, a := range m.acks {
			r.allAcks[i] = append(r.allAcks[i], a...)
		}
		m.mu.Unlock()
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if n := m.errored.Load() + m.rateLimited.Load(); n > 0 {
			m.mu.Lock()
			codes := fmtCodes(m.errCodes)
			m.mu.Unlock()
			return time.Since(start), fmt.Errorf("warm-up: %d probes answered with errors%s", n, codes)
		}
		if m.ackedN.Load() == int64(len(senders)) && r.settled(m, live, senders) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), context.Cause(ctx)
		case <-deadline.C:
			t := accountDeliveries(r.roomCounts(m, live))
			return time.Since(start), fmt.Errorf("warm-up: after %s, %d of %d probes acked, %d of %d deliveries",
				timeout, m.ackedN.Load(), len(senders), t.Received, t.Expected)
		case <-time.After(drainPoll):
		}
	}
}

// settled reports whether every expected delivery arrived and every send was answered.
func (r *runner) settled(m *measurement, live [][]*sock, senders []*sock) bool {
	t := accountDeliveries(r.roomCounts(m, live))
	if t.Received < t.Expected {
		return false
	}
	for _, s := range senders {
		if s.pendingFor(m.epoch) > 0 {
			return false
		}
	}
	return true
}

func (r *runner) roomCounts(m *measurement, live [][]*sock) []roomCount {
	rc := make([]roomCount, len(live))
	for i, rs := range live {
		rc[i].Acked = m.roomAcked[i].Load()
		rc[i].Sockets = int64(len(rs))
		for _, s := range rs {
			rc[i].Received += m.perSock[s.idx].Load()
		}
	}
	return rc
}

// sendOne writes one send_message on s. It returns false when the socket cannot be written.
func (r *runner) sendOne(s *sock, m *measurement, buf *[]byte) bool {
	ref := s.nextRef
	s.nextRef++
	now := time.Now().UnixNano()
	b := (*buf)[:0]
	b = append(b, `{"type":"send_message","ref":"`...)
	b = strconv.AppendUint(b, ref, 10)
	b = append(b, `","roomId":`...)
	b = append(b, s.room.idJSON...)
	b = append(b, `,"clientMsgId":"mb-`...)
	b = append(b, r.hub.run...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(s.idx), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, ref, 10)
	b = append(b, `","content":"`...)
	b = appendContent(b, r.runID, m.epoch, now, s.idx, ref, r.cfg.MsgSize)
	b = append(b, `"}`...)
	*buf = b
	s.addPending(ref, pendingSend{epoch: m.epoch, sent: now})
	if err := s.write(b); err != nil {
		s.dropPending(ref)
		m.writeErrs.Add(1)
		return false
	}
	m.sent.Add(1)
	return true
}

// stepVerdict tells whether a step passed, and why not.
func stepVerdict(res *fanoutResult, maxP99 time.Duration) (bool, string) {
	switch {
	case res.Disconnects > 0:
		return false, fmt.Sprintf("%d sockets disconnected", res.Disconnects)
	case res.WriteErrors > 0:
		return false, fmt.Sprintf("%d frames could not be written", res.WriteErrors)
	case res.Errored > 0:
		return false, fmt.Sprintf("%d send errors", res.Errored)
	case res.RateLimited > 0:
		return false, fmt.Sprintf("%d sends rate limited", res.RateLimited)
	case res.Unacked > 0:
		return false, fmt.Sprintf("%d sends unanswered", res.Unacked)
	case res.Deliveries.Lost > 0:
		return false, fmt.Sprintf("loss %d (%.4f%%)", res.Deliveries.Lost, res.Deliveries.LossPct)
	case res.Latency.P99Ms > float64(maxP99)/float64(time.Millisecond):
		return false, fmt.Sprintf("p99 %.1f ms > %s", res.Latency.P99Ms, maxP99)
	case res.Skipped > 0 || res.SendRate < stepPassMinRate*res.TargetRate:
		return false, fmt.Sprintf("sent only %.0f/s of %.0f/s (writes blocked: server or tool saturated)", res.SendRate, res.TargetRate)
	}
	return true, ""
}

// stepResult is one step of the step mode.
type stepResult struct {
	Step   int    `json:"step"`
	Pass   bool   `json:"pass"`
	Reason string `json:"reason,omitempty"`
	fanoutResult
}

func hostInfo() map[string]any {
	return map[string]any{"goos": runtime.GOOS, "goarch": runtime.GOARCH, "cpus": runtime.NumCPU(),
		"go": runtime.Version()}
}
