package worldsvc

import (
	"encoding/json"
	"math"
	"strconv"
)

// The world writes its frames by hand: Step writes one per room with movers, 20 times a
// second. The output is byte for byte what encoding/json writes for the same values.

// appendString appends s as a JSON string, escaped as encoding/json escapes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s) // rare: escapes, HTML characters, non-ASCII
			if err != nil {
				break // a string always marshals; fall back to the plain form regardless
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat appends f as encoding/json writes a float64 (f must be finite).
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }

func appendBool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// appendPosition appends {"participantId":id,"x":p.x,"y":p.y}.
func appendPosition(b []byte, id string, p point) []byte {
	b = append(b, `{"participantId":`...)
	b = appendString(b, id)
	b = append(b, `,"x":`...)
	b = appendFloat(b, p.x)
	b = append(b, `,"y":`...)
	b = appendFloat(b, p.y)
	return append(b, '}')
}
