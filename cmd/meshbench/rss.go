package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Prometheus metric names of the standard process collector.
const (
	metricRSS = "process_resident_memory_bytes"
	metricCPU = "process_cpu_seconds_total"
	// Go runtime gauges: the heap is a truer per-socket cost than RSS on a server that has
	// run before (Go returns freed pages to the OS only slowly).
	metricHeap       = "go_memstats_heap_inuse_bytes"
	metricGoroutines = "go_goroutines"
)

// promMetrics finds, for each wanted metric, the value of its unlabelled sample (or, failing
// that, of its first labelled one) in a Prometheus text exposition. Missing metrics are
// absent from the map; a malformed value of a wanted metric is an error.
func promMetrics(r io.Reader, wanted ...string) (map[string]float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	out := make(map[string]float64, len(wanted))
	labelled := make(map[string]float64, len(wanted))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		for _, name := range wanted {
			if !strings.HasPrefix(line, name) {
				continue
			}
			rest := line[len(name):]
			isLabelled := false
			switch {
			case rest == "":
				continue
			case rest[0] == '{':
				end := strings.LastIndexByte(rest, '}')
				if end < 0 {
					continue
				}
				rest, isLabelled = rest[end+1:], true
			case rest[0] != ' ' && rest[0] != '\t':
				continue // a longer name, such as <name>_total
			}
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				continue
			}
			v, err := strconv.ParseFloat(fields[0], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("metric %s: bad value %q", name, fields[0])
			}
			if !isLabelled {
				if _, ok := out[name]; !ok {
					out[name] = v
				}
			} else if _, ok := labelled[name]; !ok {
				labelled[name] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	for name, v := range labelled {
		if _, ok := out[name]; !ok {
			out[name] = v
		}
	}
	return out, nil
}

// procVmRSS reads VmRSS (in bytes) from a /proc/PID/status file.
func procVmRSS(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		fields := strings.Fields(line[len("VmRSS:"):])
		if len(fields) < 1 {
			break
		}
		v, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		unit := uint64(1024) // the kernel writes kB
		if len(fields) > 1 {
			switch strings.ToLower(fields[1]) {
			case "kb":
			case "mb":
				unit = 1 << 20
			case "b":
				unit = 1
			default:
				return 0, fmt.Errorf("VmRSS: unknown unit %q", fields[1])
			}
		}
		return v * unit, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("VmRSS not found")
}

// procCPUSeconds reads utime+stime from a /proc/PID/stat line (clock ticks of 1/100 s,
// USER_HZ on every Linux this tool runs on).
func procCPUSeconds(stat string) (float64, error) {
	// The command name (field 2) is in parentheses and may hold spaces: split after it.
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("stat: no command name")
	}
	fields := strings.Fields(stat[end+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	ut, err1 := strconv.ParseUint(fields[11], 10, 64)
	st, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("stat: bad utime/stime")
	}
	return float64(ut+st) / 100, nil
}

func procPath(pid int, file string) string {
	if pid > 0 {
		return fmt.Sprintf("/proc/%d/%s", pid, file)
	}
	return "/proc/self/" + file
}

func readProcRSS(pid int) (uint64, error) {
	f, err := os.Open(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return procVmRSS(f)
}

func readProcCPU(pid int) (float64, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	return procCPUSeconds(string(b))
}

// selfCPUSeconds is the tool's own user+system CPU time.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procSample is one reading of a process's resident memory and CPU time, and, for the
// server when its metrics answer, its Go heap in use and goroutines.
type procSample struct {
	At         time.Time
	RSS        uint64
	HasRSS     bool
	CPUSeconds float64
	HasCPU     bool
	HeapInuse  uint64
	HasHeap    bool
	Goroutines uint64
	HasGor     bool
}

// serverProbe reads the server's resident memory and CPU time, from /proc when a pid is
// given, otherwise from the server's Prometheus metrics; the Go heap and goroutine gauges
// come from the metrics when they answer.
type serverProbe struct {
	pid        int
	metricsURL string
	token      string
	client     *http.Client
}

func (p *serverProbe) Source() string {
	if p.pid > 0 {
		return procPath(p.pid, "status")
	}
	return p.metricsURL
}

// Read samples the server. An error means no RSS could be read.
func (p *serverProbe) Read(ctx context.Context) (procSample, error) {
	s := procSample{At: time.Now()}
	m, merr := p.metrics(ctx)
	if merr == nil {
		if v, ok := m[metricHeap]; ok && v >= 0 {
			s.HeapInuse, s.HasHeap = uint64(v), true
		}
		if v, ok := m[metricGoroutines]; ok && v >= 0 {
			s.Goroutines, s.HasGor = uint64(v), true
		}
	}
	if p.pid > 0 {
		rss, err := readProcRSS(p.pid)
		if err != nil {
			return s, err
		}
		s.RSS, s.HasRSS = rss, true
		if cpu, err := readProcCPU(p.pid); err == nil {
			s.CPUSeconds, s.HasCPU = cpu, true
		}
		return s, nil
	}
	if merr != nil {
		return s, merr
	}
	rss, ok := m[metricRSS]
	if !ok {
		return s, fmt.Errorf("%s: no %s", p.metricsURL, metricRSS)
	}
	if rss < 0 {
		return s, fmt.Errorf("%s is negative: %v", metricRSS, rss)
	}
	s.RSS, s.HasRSS = uint64(rss), true
	if cpu, ok := m[metricCPU]; ok && cpu >= 0 {
		s.CPUSeconds, s.HasCPU = cpu, true
	}
	return s, nil
}

func (p *serverProbe) metrics(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", p.metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("GET %s: status %d", p.metricsURL, resp.StatusCode)
	}
	return promMetrics(io.LimitReader(resp.Body, 32<<20), metricRSS, metricCPU, metricHeap, metricGoroutines)
}

// selfSample reads the tool's own RSS and CPU time.
func selfSample() procSample {
	s := procSample{At: time.Now(), CPUSeconds: selfCPUSeconds(), HasCPU: true}
	if rss, err := readProcRSS(0); err == nil {
		s.RSS, s.HasRSS = rss, true
	}
	return s
}

// cpuPercent is the CPU use between two samples, in percent of one core; -1 when unknown.
func cpuPercent(a, b procSample) float64 {
	wall := b.At.Sub(a.At).Seconds()
	if !a.HasCPU || !b.HasCPU || wall <= 0 {
		return -1
	}
	return math.Round((b.CPUSeconds-a.CPUSeconds)/wall*1000) / 10
}
