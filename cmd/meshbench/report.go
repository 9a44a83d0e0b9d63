package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// report is everything one run measured; -json prints it as one line.
type report struct {
	Tool       string         `json:"tool"`
	Version    int            `json:"version"`
	Run        string         `json:"run"`
	Mode       string         `json:"mode"`
	StartedAt  string         `json:"startedAt"`
	URL        string         `json:"url"`
	Host       map[string]any `json:"host"`
	Config     reportConfig   `json:"config"`
	OK         bool           `json:"ok"`
	Error      string         `json:"error,omitempty"`
	Warnings   []string       `json:"warnings,omitempty"`
	ElapsedSec float64        `json:"elapsedSec"`

	Setup   *setupReport  `json:"setup,omitempty"`
	Sockets *openReport   `json:"sockets,omitempty"`
	Memory  *memoryReport `json:"memory,omitempty"`
	Fanout  *fanoutResult `json:"fanout,omitempty"`
	// WarmupSec is how long the server took to deliver one probe message per room before
	// the measurement (long when it was still busy with the sockets just opened).
	WarmupSec float64 `json:"warmupSec,omitempty"`

	Steps        []stepResult `json:"steps,omitempty"`
	LastGoodRate float64      `json:"lastGoodRate,omitempty"`
	StopReason   string       `json:"stopReason,omitempty"`

	Store   *storeCheck  `json:"store,omitempty"`
	Readers readerTotals `json:"readers"`
}

type reportConfig struct {
	Sockets         int     `json:"sockets"`
	Users           int     `json:"users"`
	Rooms           int     `json:"rooms"`
	Rate            float64 `json:"rate,omitempty"`
	DurationSec     float64 `json:"durationSec"`
	DrainSec        float64 `json:"drainSec"`
	DialRate        float64 `json:"dialRate"`
	DialConcurrency int     `json:"dialConcurrency"`
	MaxSenderRate   float64 `json:"maxSenderRate"`
	MsgSize         int     `json:"msgSize"`
	StepStart       float64 `json:"stepStart,omitempty"`
	StepFactor      float64 `json:"stepFactor,omitempty"`
	StepDurationSec float64 `json:"stepDurationSec,omitempty"`
	MaxP99Ms        float64 `json:"maxP99Ms,omitempty"`
	ServerPID       int     `json:"serverPid,omitempty"`
}

// memoryReport: the server's resident memory before and with the sockets open, and the
// tool's own. Unknown values are null.
type memoryReport struct {
	Source              string   `json:"source"`
	Note                string   `json:"note,omitempty"`
	ServerBaselineBytes *uint64  `json:"serverBaselineBytes"`
	ServerLoadedBytes   *uint64  `json:"serverLoadedBytes"`
	ServerPeakBytes     *uint64  `json:"serverPeakBytes"`
	ServerPerSocket     *float64 `json:"serverBytesPerSocket"`
	ServerIdleCPUPct    *float64 `json:"serverIdleCpuPct,omitempty"`
	// From the server's Go metrics, when /metrics answers.
	ServerHeapBaselineBytes *uint64  `json:"serverHeapBaselineBytes"`
	ServerHeapLoadedBytes   *uint64  `json:"serverHeapLoadedBytes"`
	ServerHeapPerSocket     *float64 `json:"serverHeapBytesPerSocket"`
	ServerGoroutinesBase    *uint64  `json:"serverGoroutinesBaseline"`
	ServerGoroutinesLoaded  *uint64  `json:"serverGoroutinesLoaded"`
	ServerGoroutinesPerSock *float64 `json:"serverGoroutinesPerSocket"`
	ToolBaselineBytes       *uint64  `json:"toolBaselineBytes"`
	ToolLoadedBytes         *uint64  `json:"toolLoadedBytes"`
	ToolPerSocket           *float64 `json:"toolBytesPerSocket"`
	ToolIdleCPUPct          *float64 `json:"toolIdleCpuPct,omitempty"`
}

// baseline records the server's sample before the sockets open.
func (m *memoryReport) baseline(s procSample) {
	if s.HasRSS {
		m.ServerBaselineBytes = u64p(s.RSS)
	}
	if s.HasHeap {
		m.ServerHeapBaselineBytes = u64p(s.HeapInuse)
	}
	if s.HasGor {
		m.ServerGoroutinesBase = u64p(s.Goroutines)
	}
}

// loaded records the server's sample with the sockets open.
func (m *memoryReport) loaded(s procSample) {
	if s.HasRSS {
		m.ServerLoadedBytes = u64p(s.RSS)
	}
	if s.HasHeap {
		m.ServerHeapLoadedBytes = u64p(s.HeapInuse)
	}
	if s.HasGor {
		m.ServerGoroutinesLoaded = u64p(s.Goroutines)
	}
	m.peak(s)
}

func (m *memoryReport) peak(s procSample) {
	if s.HasRSS && (m.ServerPeakBytes == nil || s.RSS > *m.ServerPeakBytes) {
		m.ServerPeakBytes = u64p(s.RSS)
	}
}

// compute derives the per-socket figures from the samples.
func (m *memoryReport) compute(sockets int) {
	m.ServerPerSocket = perSocket(m.ServerBaselineBytes, m.ServerLoadedBytes, sockets)
	m.ServerHeapPerSocket = perSocket(m.ServerHeapBaselineBytes, m.ServerHeapLoadedBytes, sockets)
	m.ServerGoroutinesPerSock = perSocketFrac(m.ServerGoroutinesBase, m.ServerGoroutinesLoaded, sockets)
	m.ToolPerSocket = perSocket(m.ToolBaselineBytes, m.ToolLoadedBytes, sockets)
}

// perSocketFrac is like perSocket with two decimals (for counts such as goroutines).
func perSocketFrac(base, loaded *uint64, sockets int) *float64 {
	if base == nil || loaded == nil || sockets <= 0 {
		return nil
	}
	v := round2((float64(*loaded) - float64(*base)) / float64(sockets))
	return &v
}

// perSocket is (loaded - baseline) / sockets, which may be negative (a GC in between).
func perSocket(base, loaded *uint64, sockets int) *float64 {
	if base == nil || loaded == nil || sockets <= 0 {
		return nil
	}
	v := math.Round((float64(*loaded) - float64(*base)) / float64(sockets))
	return &v
}

func u64p(v uint64) *uint64 { return &v }

func newReport(cfg *config, runID string, started time.Time) *report {
	rc := reportConfig{
		Sockets: cfg.Sockets, Users: cfg.Users, Rooms: cfg.Rooms,
		DurationSec: cfg.Duration.Seconds(), DrainSec: cfg.Drain.Seconds(),
		DialRate: cfg.DialRate, DialConcurrency: cfg.DialConcurrency,
		MaxSenderRate: cfg.MaxSenderRate, MsgSize: cfg.MsgSize, ServerPID: cfg.ServerPID,
	}
	switch cfg.Mode {
	case modeFanout:
		rc.Rate = cfg.Rate
	case modeStep:
		rc.DurationSec = 0
		rc.StepStart, rc.StepFactor = cfg.StepStart, cfg.StepFactor
		rc.StepDurationSec = cfg.StepDuration.Seconds()
		rc.MaxP99Ms = float64(cfg.MaxP99) / float64(time.Millisecond)
	}
	return &report{
		Tool: "meshbench", Version: 1, Run: runID, Mode: cfg.Mode,
		StartedAt: started.UTC().Format(time.RFC3339), URL: cfg.URL, Host: hostInfo(), Config: rc,
	}
}

func writeJSON(w io.Writer, rep *report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func fmtBytes(v *uint64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(*v)/(1<<20))
}

func fmtPerSocket(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f B (%.1f KiB)", *v, *v/1024)
}

func fmtPct(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", *v)
}

func fmtCodes(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func stepLine(st stepResult) string {
	verdict := "PASS"
	if !st.Pass {
		verdict = "FAIL: " + st.Reason
	}
	return fmt.Sprintf("step %2d  rate %7.0f/s  sent %7.0f/s  deliveries %9.0f/s  loss %d  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  cpu server %s tool %s  %s",
		st.Step, st.TargetRate, st.SendRate, st.DeliveriesPerSec, st.Deliveries.Lost,
		st.Latency.P50Ms, st.Latency.P99Ms, st.Latency.MaxMs, fmtPct(st.ServerCPUPct), fmtPct(st.ToolCPUPct), verdict)
}

// printSummary writes the human-readable summary.
func printSummary(w io.Writer, r *report) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("== meshbench %s: %s mode, %s, %s", r.Run, r.Mode, r.URL, r.StartedAt)
	p("config     sockets %d, users %d, rooms %d", r.Config.Sockets, r.Config.Users, r.Config.Rooms)
	if r.Setup != nil {
		s := r.Setup
		p("set-up     %.1fs: %d users registered, %d logged in, %d rooms, %d joins, %d×429, %d retries",
			s.Seconds, s.UsersRegistered, s.UsersLoggedIn, s.RoomsCreated, s.Joins, s.RateLimited, s.Retries)
	}
	if o := r.Sockets; o != nil {
		p("sockets    %d/%d open, %d failed%s in %.1fs (%.0f/s); %d–%d per room", o.Opened, o.Requested,
			o.Failed, fmtFailures(o.Failures), o.Seconds, o.PerSecond, o.PerRoomMin, o.PerRoomMax)
	}
	if m := r.Memory; m != nil {
		p("memory     server %s → %s (peak %s): %s per socket  [%s]", fmtBytes(m.ServerBaselineBytes),
			fmtBytes(m.ServerLoadedBytes), fmtBytes(m.ServerPeakBytes), fmtPerSocket(m.ServerPerSocket), m.Source)
		if m.ServerHeapPerSocket != nil {
			p("           server Go heap in use %s → %s: %s per socket", fmtBytes(m.ServerHeapBaselineBytes),
				fmtBytes(m.ServerHeapLoadedBytes), fmtPerSocket(m.ServerHeapPerSocket))
		}
		if m.ServerGoroutinesPerSock != nil {
			p("           server goroutines %d → %d: %.2f per socket", *m.ServerGoroutinesBase,
				*m.ServerGoroutinesLoaded, *m.ServerGoroutinesPerSock)
		}
		p("           tool   %s → %s: %s per socket", fmtBytes(m.ToolBaselineBytes), fmtBytes(m.ToolLoadedBytes),
			fmtPerSocket(m.ToolPerSocket))
		if m.ServerIdleCPUPct != nil || m.ToolIdleCPUPct != nil {
			p("           cpu while idle: server %s, tool %s (of one core)", fmtPct(m.ServerIdleCPUPct), fmtPct(m.ToolIdleCPUPct))
		}
		if m.Note != "" {
			p("           %s", m.Note)
		}
	}
	if r.WarmupSec > 0 {
		p("warm-up    %.2fs for one probe message per room to reach every socket", r.WarmupSec)
	}
	if f := r.Fanout; f != nil {
		printFanout(p, f)
	}
	if len(r.Steps) > 0 {
		for _, st := range r.Steps {
			p("%s", stepLine(st))
		}
		p("last good rate  %.0f msg/s", r.LastGoodRate)
	}
	if r.StopReason != "" {
		p("stopped    %s", r.StopReason)
	}
	if s := r.Store; s != nil {
		verdict := "OK"
		if !s.OK() {
			verdict = "PROBLEM"
		}
		p("stored     %s: %d rooms, %d acked, %d stored, %d missing, %d gaps, %d repeats, %d clientMsgId mismatches, %d seq conflicts",
			verdict, s.Rooms, s.Acked, s.Stored, s.Missing, s.Gaps, s.Repeats, s.Mismatch, s.Conflicts)
		for _, e := range s.Errors {
			p("           %s", e)
		}
	}
	rd := r.Readers
	p("readers    %d frames, %d bench messages, %d late (after their drain), %d foreign, %d parse errors, %d order violations, %d seq gaps, %d disconnects, %d unref errors",
		rd.Frames, rd.Messages, rd.Stale, rd.Foreign, rd.ParseErrors, rd.OrderViolations, rd.SeqGaps, rd.Disconnects, rd.UnrefErrors)
	for _, d := range rd.DisconnectSamples {
		p("           lost %s", d)
	}
	for _, w := range r.Warnings {
		p("WARNING    %s", w)
	}
	if r.Error != "" {
		p("ERROR      %s", r.Error)
	}
	p("elapsed    %.1fs, ok=%v", r.ElapsedSec, r.OK)
}

func printFanout(p func(string, ...any), f *fanoutResult) {
	p("fanout     target %.0f msg/s over %d senders (%.1f/s each), %d live sockets", f.TargetRate, f.Senders, f.SenderRate, f.SocketsLive)
	p("messages   sent %d (%.1f/s in %.2fs), acked %d, errors %d%s, rate_limited %d, unacked %d, write errors %d, skipped %d",
		f.Sent, f.SendRate, f.Seconds, f.Acked, f.Errored, fmtCodes(f.ErrorCodes), f.RateLimited, f.Unacked, f.WriteErrors, f.Skipped)
	d := f.Deliveries
	p("deliveries received %d of %d expected (%.0f/s), lost %d (%.4f%%; not received by the end of the drain), extra %d; drain %.2fs",
		d.Received, d.Expected, f.DeliveriesPerSec, d.Lost, d.LossPct, d.Extra, f.DrainSeconds)
	l := f.Latency
	p("latency    p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, mean %.2f ms (%d samples)",
		l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.MeanMs, l.Count)
	a := f.AckLatency
	p("ack        p50 %.2f ms, p99 %.2f ms, max %.2f ms", a.P50Ms, a.P99Ms, a.MaxMs)
	rss := "n/a"
	if f.ServerRSSBytes != nil {
		rss = fmtBytes(f.ServerRSSBytes)
	}
	p("server     rss %s at the end of sending, cpu %s; tool cpu %s (of one core); %d disconnects, %d order violations, %d seq gaps",
		rss, fmtPct(f.ServerCPUPct), fmtPct(f.ToolCPUPct), f.Disconnects, f.OrderViolations, f.SeqGaps)
}

func fmtFailures(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = int64(v)
	}
	return fmtCodes(c)
}
