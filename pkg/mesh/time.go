package mesh

import (
	"strconv"
	"time"
)

// TimeLayout is the contract's time format: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Time is an instant that marshals as TimeLayout. The zero Time marshals as null.
type Time struct{ time.Time }

// Now is the current time truncated to the contract's precision.
func Now() Time { return Time{time.Now().UTC().Truncate(time.Millisecond)} }

// TimeOf wraps t at the contract's precision.
func TimeOf(t time.Time) Time { return Time{t.UTC().Truncate(time.Millisecond)} }

// UnixMilli is t as milliseconds since the epoch (0 for the zero Time).
func (t Time) UnixMilli() int64 {
	if t.IsZero() {
		return 0
	}
	return t.Time.UnixMilli()
}

// TimeFromMilli is the inverse of UnixMilli.
func TimeFromMilli(ms int64) Time {
	if ms == 0 {
		return Time{}
	}
	return Time{time.UnixMilli(ms).UTC()}
}

func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*t = TimeOf(v)
	return nil
}
