package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err) // test helper with constant input
	}
	return t
}

func TestRequireLoopback(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST", "mesh.localhost"} {
		if err := requireLoopback(h); err != nil {
			t.Errorf("%s refused: %v", h, err)
		}
	}
	for _, h := range []string{"10.0.0.1", "0.0.0.0", "example.com", "localhost.example.com", "::", "192.168.1.1", ""} {
		if err := requireLoopback(h); err == nil {
			t.Errorf("%s accepted", h)
		}
	}
}

func TestParseFlags(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c, err := parseFlags(nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.wsURL != "ws://127.0.0.1:4000/ws" || c.MetricsURL != "http://127.0.0.1:4000/metrics" ||
			c.Mode != modeFanout || c.DialRate != 500 || c.MaxP99 != 100*time.Millisecond ||
			c.OwnerEmail != "bench-owner@example.com" || c.OwnerPassword != "bench-password-1" {
			t.Fatalf("config %+v", c)
		}
	})
	t.Run("https base path", func(t *testing.T) {
		c, err := parseFlags([]string{"-url", "https://localhost:8443/mesh/", "-mode", "idle"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.wsURL != "wss://localhost:8443/mesh/ws" || c.MetricsURL != "https://localhost:8443/mesh/metrics" {
			t.Fatalf("ws %s metrics %s", c.wsURL, c.MetricsURL)
		}
	})
	t.Run("remote refused", func(t *testing.T) {
		_, err := parseFlags([]string{"-url", "http://10.1.2.3:4000"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-allow-remote") {
			t.Fatalf("err %v", err)
		}
		if _, err := parseFlags([]string{"-url", "http://10.1.2.3:4000", "-allow-remote"}, io.Discard); err != nil {
			t.Fatalf("with -allow-remote: %v", err)
		}
		if _, err := parseFlags([]string{"-metrics-url", "http://example.com/metrics"}, io.Discard); err == nil {
			t.Fatal("remote metrics URL accepted")
		}
	})
	t.Run("help", func(t *testing.T) {
		var out strings.Builder
		_, err := parseFlags([]string{"-h"}, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("err %v", err)
		}
		for _, want := range []string{"-sockets", "-dial-rate", "-step-factor", "-server-pid", "-json", "Modes:"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("help lacks %q", want)
			}
		}
	})
	bad := [][]string{
		{"-mode", "burst"},
		{"-sockets", "0"},
		{"-rooms", "5", "-users", "4"},
		{"-rate", "0"},
		{"-mode", "step", "-step-factor", "1"},
		{"-max-sender-rate", "250"},
		{"-url", "ftp://127.0.0.1"},
		{"-url", "http://127.0.0.1:4000?x=1"},
		{"-owner-password", "short"},
		{"-user-prefix", "a@b"},
		{"extra-arg"},
	}
	for _, args := range bad {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := mustTime("2026-01-01T00:00:00Z")
	tests := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"0.25":                          250 * time.Millisecond,
		"-1":                            0,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:07 GMT": 7 * time.Second,
		"Wed, 31 Dec 2025 23:00:00 GMT": 0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestAPIClientRetries(t *testing.T) {
	var calls atomic.Int32
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		switch n {
		case 1:
			w.Header().Set("Retry-After", "0.01")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"token":"tok","participant":{"id":"P1","role":"member"}}`))
		}
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	api := newAPIClient(base, 2, nil)
	ar, err := api.Register(context.Background(), "a@example.com", "password1", "A")
	if err != nil || ar.Token != "tok" || ar.Participant.ID != "P1" {
		t.Fatalf("register: %+v %v", ar, err)
	}
	if calls.Load() != 3 || api.rateLimited.Load() != 1 || api.retried.Load() != 1 {
		t.Fatalf("calls %d, 429s %d, retries %d", calls.Load(), api.rateLimited.Load(), api.retried.Load())
	}
	if keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("idempotency keys differ across retries: %q", keys)
	}
}

func TestAPIClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":{"code":"conflict","message":"email taken"}}`))
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	_, err := newAPIClient(base, 1, nil).Register(context.Background(), "a@example.com", "password1", "A")
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Code != "conflict" || !isAPIStatus(err, 409) {
		t.Fatalf("err %v", err)
	}
}
