package gateway

import "testing"

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
