package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			_, _ = w.Write([]byte(`{"status":"ready"}`))
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable"}}`))
		case "/slow":
			<-release
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/readyz"
	l.Close()

	for _, tc := range []struct {
		name, url string
		want      int
		say       string
	}{
		{"ready", srv.URL + "/readyz", 0, ""},
		{"503", srv.URL + "/down", 1, "503"},
		{"404", srv.URL + "/nope", 1, "404"},
		{"slow", srv.URL + "/slow", 1, "deadline"},
		{"refused", closed, 1, "refused"},
		{"not a URL", "127.0.0.1:4000/readyz", 1, "not an http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if got := check(tc.url, 200*time.Millisecond, &out); got != tc.want {
				t.Fatalf("check(%s) = %d, want %d (output %q)", tc.url, got, tc.want, out.String())
			}
			if !strings.Contains(out.String(), tc.say) {
				t.Errorf("check(%s) said %q, want it to mention %q", tc.url, out.String(), tc.say)
			}
		})
	}
}
