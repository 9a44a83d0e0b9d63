// Command meshbench loads a running Mesh server through its public contract only (REST and
// WebSocket, shared/PROTOCOL.md) and measures it: memory per idle socket, message fan-out
// throughput, loss and latency, and the highest rate that stays within a latency budget.
//
// Run meshbench -h for the modes, the flags and the output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK      = 0 // measured, and nothing went wrong
	exitFatal   = 1 // the run could not be done (set-up failed, no socket opened, ...)
	exitUsage   = 2 // bad flags
	exitProblem = 3 // measured, but with loss, errors, failed sockets or unstored messages
)

const exitHelp = `
Output: progress on stderr; the summary on stdout (on stderr with -json, when stdout gets a
single-line JSON object with the same figures, for docs/BENCHMARKS.md).

Exit status: 0 measured and clean; 1 the run could not be done; 2 bad flags; 3 measured, but
with loss, errors, failed sockets or missing stored messages (for step mode: only failures
outside the measured steps, such as sockets that did not open).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, exitHelp)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshbench: %v\n(meshbench -h for help)\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger := log.New(stderr, "meshbench: ", log.Ltime|log.Lmicroseconds)
	logf := func(format string, args ...any) { logger.Printf(format, args...) }
	vlogf := func(string, ...any) {}
	if cfg.Verbose {
		vlogf = logf
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			fmt.Fprintf(stderr, "meshbench: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "meshbench: cpu profile: %v\n", err)
			return exitUsage
		}
		defer pprof.StopCPUProfile()
	}
	rep, code := execute(ctx, cfg, logf, vlogf)
	summaryOut := stdout
	if cfg.JSON {
		summaryOut = stderr
		if err := writeJSON(stdout, rep); err != nil {
			logf("write JSON: %v", err)
			return exitFatal
		}
	}
	printSummary(summaryOut, rep)
	return code
}

// execute does one run and returns its report, however far it got.
func execute(ctx context.Context, cfg *config, logf, vlogf func(string, ...any)) (*report, int) {
	started := time.Now()
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, fmt.Errorf("-timeout %s reached", cfg.Timeout))
	defer cancel()
	runID := newID()[:8]
	rep := newReport(cfg, runID, started)
	api := newAPIClient(cfg.base, cfg.SetupConcurrency, vlogf)
	api.warnf = logf
	r := &runner{
		cfg: cfg, api: api, logf: logf, vlogf: vlogf, runID: runID,
		hub:   &hub{run: []byte(runID)},
		probe: &serverProbe{pid: cfg.ServerPID, metricsURL: cfg.MetricsURL, client: api.http},
	}
	fail := func(err error) (*report, int) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) && !strings.Contains(err.Error(), cause.Error()) {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		rep.Error = err.Error()
		rep.ElapsedSec = round2(time.Since(started).Seconds())
		logf("%v", err)
		return rep, exitFatal
	}

	logf("run %s: %s mode against %s (%d sockets, %d users, %d rooms)", runID, cfg.Mode, cfg.URL,
		cfg.Sockets, cfg.Users, cfg.Rooms)
	setup, err := runSetup(ctx, cfg, api, runID, logf)
	if err != nil {
		rep.Setup = &setupReport{RateLimited: api.rateLimited.Load(), Retries: api.retried.Load()}
		return fail(fmt.Errorf("set-up: %w", err))
	}
	r.setup = setup
	if cfg.Users > cfg.Sockets {
		logf("note: %d users but %d sockets: %d users have no socket", cfg.Users, cfg.Sockets, cfg.Users-cfg.Sockets)
	}
	if cfg.Rooms > cfg.Sockets {
		logf("note: %d rooms but %d sockets: %d rooms have no socket", cfg.Rooms, cfg.Sockets, cfg.Rooms-cfg.Sockets)
	}
	r.allAcks = make([][]ackRecord, len(setup.Rooms))
	r.probe.token = setup.OwnerToken
	rep.Setup = &setup.report
	logf("set-up done in %.1fs (%d registered, %d logged in, %d rooms)", setup.report.Seconds,
		setup.report.UsersRegistered, setup.report.UsersLoggedIn, setup.report.RoomsCreated)
	defer func() {
		if cfg.Cleanup {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			cleanupRooms(cctx, api, setup, logf)
			ccancel()
		}
	}()

	// Memory before any socket.
	mem := &memoryReport{Source: r.probe.Source()}
	rep.Memory = mem
	if s, err := r.probe.Read(ctx); err == nil {
		mem.baseline(s)
	} else {
		mem.Note = "server RSS unavailable (-server-pid reads it from /proc): " + err.Error()
		logf("%s", mem.Note)
	}
	self0 := selfSample()
	mem.ToolBaselineBytes = u64p(self0.RSS)

	logf("opening %d sockets at %.0f/s, %d at once", cfg.Sockets, cfg.DialRate, cfg.DialConcurrency)
	open := r.openSockets(ctx)
	rep.Sockets = &open
	defer r.closeSockets()
	logf("%d sockets open, %d failed in %.1fs", open.Opened, open.Failed, open.Seconds)
	for _, s := range open.Samples {
		logf("  failure: %s", s)
	}
	if open.Opened == 0 {
		return fail(errors.New("no socket opened"))
	}
	r.startKeepalive(ctx)

	code := exitOK
	if open.Failed > 0 {
		code = exitProblem
	}
	sampleLoaded := func() {
		if s, err := r.probe.Read(ctx); err == nil {
			mem.loaded(s)
		}
		if s := selfSample(); s.HasRSS {
			mem.ToolLoadedBytes = u64p(s.RSS)
		}
		mem.compute(open.Opened)
	}

	if cfg.Mode != modeIdle && cfg.WarmupTimeout > 0 {
		logf("warm-up: one message per room, waiting for every delivery")
		d, err := r.warmUp(ctx, cfg.WarmupTimeout)
		rep.WarmupSec = round2(d.Seconds())
		if err != nil {
			rep.Warnings = append(rep.Warnings, err.Error())
			logf("%v; measuring anyway", err)
		} else {
			logf("warm-up: the server delivered the probes in %.2fs", d.Seconds())
		}
	}

	switch cfg.Mode {
	case modeIdle:
		logf("holding %d sockets for %s", open.Opened, cfg.Duration)
		srv0, srvErr := r.probe.Read(ctx)
		self1 := selfSample()
		holdEnd := time.NewTimer(cfg.Duration)
		tick := time.NewTicker(time.Second)
	hold:
		for {
			select {
			case <-ctx.Done():
				break hold
			case <-holdEnd.C:
				break hold
			case <-tick.C:
				if s, err := r.probe.Read(ctx); err == nil {
					mem.peak(s)
				}
			}
		}
		tick.Stop()
		holdEnd.Stop()
		sampleLoaded()
		if srv1, err := r.probe.Read(ctx); err == nil && srvErr == nil {
			if pct := cpuPercent(srv0, srv1); pct >= 0 {
				mem.ServerIdleCPUPct = &pct
			}
		}
		if pct := cpuPercent(self1, selfSample()); pct >= 0 {
			mem.ToolIdleCPUPct = &pct
		}
		rep.Readers = r.readerTotals()
		if rep.Readers.Disconnects > 0 {
			code = exitProblem
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("interrupted while holding the sockets: %w", context.Cause(ctx)))
		}

	case modeFanout:
		sampleLoaded()
		logf("fanout: %.0f msg/s for %s", cfg.Rate, cfg.Duration)
		res, err := r.measure(ctx, cfg.Rate, cfg.Duration)
		if err != nil {
			return fail(fmt.Errorf("fanout: %w", err))
		}
		rep.Fanout = res
		if ok, _ := stepVerdict(res, time.Duration(1<<62)); !ok {
			code = exitProblem
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("fanout interrupted: %w", context.Cause(ctx)))
		}

	case modeStep:
		sampleLoaded()
		rate := cfg.StepStart
		for step := 1; step <= cfg.MaxSteps; step++ {
			if ctx.Err() != nil {
				rep.StopReason = "interrupted: " + context.Cause(ctx).Error()
				break
			}
			logf("step %d: %.0f msg/s for %s", step, rate, cfg.StepDuration)
			res, err := r.measure(ctx, rate, cfg.StepDuration)
			if err != nil {
				rep.StopReason = "tool limit: " + err.Error()
				break
			}
			pass, why := stepVerdict(res, cfg.MaxP99)
			if ctx.Err() != nil {
				pass, why = false, "interrupted: "+context.Cause(ctx).Error()
			}
			st := stepResult{Step: step, Pass: pass, Reason: why, fanoutResult: *res}
			rep.Steps = append(rep.Steps, st)
			logf("%s", stepLine(st))
			if !pass {
				rep.StopReason = fmt.Sprintf("step %d at %.0f msg/s: %s", step, rate, why)
				break
			}
			rep.LastGoodRate = rate
			rate *= cfg.StepFactor
			if step == cfg.MaxSteps {
				rep.StopReason = fmt.Sprintf("-max-steps %d reached", cfg.MaxSteps)
			}
		}
	}

	if cfg.Mode != modeIdle && cfg.Verify {
		logf("checking that every acked message is stored")
		sc := verifyStored(ctx, api, setup.OwnerToken, setup.Rooms, r.allAcks, r.hub.run)
		rep.Store = &sc
		if !sc.OK() {
			code = exitProblem
		}
	}
	rep.Readers = r.readerTotals()
	rep.ElapsedSec = round2(time.Since(started).Seconds())
	rep.OK = code == exitOK
	return rep, code
}
