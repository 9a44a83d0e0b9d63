package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const promSample = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes_extra 1
process_resident_memory_bytes 5.1339008e+07
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
`

func TestPromMetrics(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    map[string]float64
		wantErr bool
	}{
		{"standard exposition", promSample, map[string]float64{metricRSS: 51339008, metricCPU: 12.34}, false},
		{"labelled, with a timestamp", `process_resident_memory_bytes{instance="a b}"} 1024 1700000000000` + "\n",
			map[string]float64{metricRSS: 1024}, false},
		{"unlabelled wins over labelled", "process_resident_memory_bytes{x=\"1\"} 1\nprocess_resident_memory_bytes 2\n",
			map[string]float64{metricRSS: 2}, false},
		{"first labelled sample", "process_resident_memory_bytes{x=\"1\"} 7\nprocess_resident_memory_bytes{x=\"2\"} 9\n",
			map[string]float64{metricRSS: 7}, false},
		{"CRLF and blank lines", "\r\n\r\nprocess_resident_memory_bytes 3e3\r\n", map[string]float64{metricRSS: 3000}, false},
		{"missing", "go_goroutines 1\n", map[string]float64{}, false},
		{"longer names only", "process_resident_memory_bytes_max 1\n", map[string]float64{}, false},
		{"garbage value", "process_resident_memory_bytes abc\n", nil, true},
		{"NaN", "process_resident_memory_bytes NaN\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := promMetrics(strings.NewReader(tt.text), metricRSS, metricCPU)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestProcVmRSS(t *testing.T) {
	status := "Name:\tmeshd\nVmPeak:\t  999 kB\nVmRSS:\t   51200 kB\nRssAnon:\t 1 kB\n"
	got, err := procVmRSS(strings.NewReader(status))
	if err != nil || got != 51200*1024 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := procVmRSS(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("no VmRSS accepted")
	}
	if _, err := procVmRSS(strings.NewReader("VmRSS:\tlots kB\n")); err == nil {
		t.Fatal("bad VmRSS accepted")
	}
	// This process's own status file parses.
	if rss, err := readProcRSS(0); err != nil || rss == 0 {
		t.Fatalf("own RSS: %d, %v", rss, err)
	}
}

func TestProcCPUSeconds(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "1234 (mesh d) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0"
	got, err := procCPUSeconds(stat)
	if err != nil || got != 3.0 {
		t.Fatalf("got %v, %v; want 3 (300 ticks)", got, err)
	}
	if _, err := procCPUSeconds("1234 (x) S 1 2"); err == nil {
		t.Fatal("short stat accepted")
	}
	if _, err := readProcCPU(0); err != nil {
		t.Fatalf("own stat: %v", err)
	}
}

func TestServerProbeMetrics(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(promSample))
	}))
	defer srv.Close()
	p := &serverProbe{metricsURL: srv.URL + "/metrics", token: "T", client: srv.Client()}
	s, err := p.Read(context.Background())
	if err != nil || !s.HasRSS || s.RSS != 51339008 || !s.HasCPU || s.CPUSeconds != 12.34 {
		t.Fatalf("sample %+v, err %v", s, err)
	}
	if gotAuth != "Bearer T" {
		t.Fatalf("Authorization %q", gotAuth)
	}
	p.metricsURL = srv.URL + "/nope"
	if _, err := p.Read(context.Background()); err == nil {
		t.Fatal("404 accepted")
	}
}

func TestCPUPercent(t *testing.T) {
	a := procSample{At: mustTime("2026-01-01T00:00:00Z"), CPUSeconds: 10, HasCPU: true}
	b := procSample{At: mustTime("2026-01-01T00:00:02Z"), CPUSeconds: 11.5, HasCPU: true}
	if got := cpuPercent(a, b); got != 75 {
		t.Fatalf("got %v, want 75", got)
	}
	b.HasCPU = false
	if got := cpuPercent(a, b); got != -1 {
		t.Fatalf("unknown CPU: got %v", got)
	}
}
