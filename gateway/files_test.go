package gateway

import (
	"testing"
	"time"
)

func TestByteRange(t *testing.T) {
	for _, tt := range []struct {
		h               string
		start, end      int64
		ok, satisfiable bool
	}{
		{"bytes=0-9", 0, 9, true, true},
		{"bytes=10-", 10, 99, true, true},
		{"bytes=90-200", 90, 99, true, true},
		{"bytes=-5", 95, 99, true, true},
		{"bytes=-500", 0, 99, true, true},
		{"bytes=100-", 0, 0, true, false},
		{"bytes=-0", 0, 0, true, false},
		{"bytes=5-2", 0, 0, false, false},
		{"bytes=0-1,5-6", 0, 0, false, false},
		{"bytes=x-1", 0, 0, false, false},
		{"items=0-1", 0, 0, false, false},
		{"bytes=7", 0, 0, false, false},
	} {
		start, end, ok, sat := byteRange(tt.h, 100)
		if ok != tt.ok || sat != tt.satisfiable || (sat && (start != tt.start || end != tt.end)) {
			t.Errorf("%q: %d-%d ok=%v satisfiable=%v, want %d-%d %v %v", tt.h, start, end, ok, sat, tt.start, tt.end, tt.ok, tt.satisfiable)
		}
	}
}

func TestRESTLimiter(t *testing.T) {
	l := newRESTLimiter(1, 2)
	now := time.Unix(1000, 0)
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allow("a", now); ok != want {
			t.Fatalf("request %d: %v", i, ok)
		}
	}
	if ok, wait := l.allow("a", now); ok || wait <= 0 || wait > time.Second {
		t.Fatalf("refused with wait %v", wait)
	}
	if ok, _ := l.allow("b", now); !ok {
		t.Fatal("another key was refused")
	}
	if ok, _ := l.allow("a", now.Add(1100*time.Millisecond)); !ok {
		t.Fatal("a refilled token was refused")
	}
	// Idle buckets go once they would be full again.
	l.allow("c", now.Add(10*time.Minute))
	if _, kept := l.buckets["a"]; kept || len(l.buckets) != 1 {
		t.Fatalf("buckets after ten idle minutes: %d", len(l.buckets))
	}
}
