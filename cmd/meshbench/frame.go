package main

import (
	"errors"
	"strconv"
)

// The reader of every socket parses each frame with the small scanner below instead of
// encoding/json: it walks the top-level object once, keeps slices into the frame for the
// few fields the tool needs, and skips the rest without allocating (see
// BenchmarkParseFrame). It is not a validator: it accepts what a JSON encoder produces and
// reports malformed input as an error without ever reading out of bounds.

type frameType uint8

const (
	ftOther frameType = iota
	ftMessage
	ftAck
	ftError
	ftAuthOK
	ftSnapshot
	ftPong
)

var frameTypeNames = map[frameType]string{
	ftOther: "other", ftMessage: "message", ftAck: "ack", ftError: "error",
	ftAuthOK: "auth_ok", ftSnapshot: "snapshot", ftPong: "pong",
}

func (t frameType) String() string { return frameTypeNames[t] }

// frameMessage is what the tool reads of a message object.
type frameMessage struct {
	ID          []byte
	RoomID      []byte
	ClientMsgID []byte
	Content     []byte // raw JSON string contents; meaningful only when !ContentEscaped
	Seq         int64
	HasSeq      bool
	// ContentEscaped is set when the content holds JSON escapes (the tool's own contents
	// never do, so such a message is not one of ours).
	ContentEscaped bool
}

// frame is the parsed view of one server frame. Its byte slices point into the frame's
// buffer and are valid only until the buffer is reused.
type frame struct {
	Type      frameType
	TypeName  []byte
	Ref       []byte
	Code      []byte // error code
	ErrMsg    []byte // error message (raw)
	MessageID []byte // top-level messageId (ack)
	Seq       int64  // top-level seq (ack)
	HasSeq    bool
	HasMsg    bool
	Msg       frameMessage
}

var errBadFrame = errors.New("malformed JSON frame")

// parseFrame fills f from the JSON object b.
func parseFrame(b []byte, f *frame) error {
	*f = frame{}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errBadFrame
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return errBadFrame
		}
		if b[i] == '}' {
			return nil
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		ks, ke, _, next, err := scanString(b, i)
		if err != nil {
			return err
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return errBadFrame
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return errBadFrame
		}
		key := b[ks:ke]
		switch string(key) {
		case "type", "ref", "code", "messageId":
			if b[i] != '"' {
				i, err = skipValue(b, i)
				break
			}
			var vs, ve int
			vs, ve, _, i, err = scanString(b, i)
			if err != nil {
				return err
			}
			v := b[vs:ve]
			switch string(key) {
			case "type":
				f.TypeName = v
				f.Type = lookupFrameType(v)
			case "ref":
				f.Ref = v
			case "code":
				f.Code = v
			case "messageId":
				f.MessageID = v
			}
		case "seq":
			f.Seq, f.HasSeq, i, err = scanInt(b, i)
		case "message":
			switch b[i] {
			case '{':
				f.HasMsg = true
				i, err = parseMessage(b, i, &f.Msg)
			case '"':
				var vs, ve int
				vs, ve, _, i, err = scanString(b, i)
				if err == nil {
					f.ErrMsg = b[vs:ve]
				}
			default:
				i, err = skipValue(b, i)
			}
		default:
			i, err = skipValue(b, i)
		}
		if err != nil {
			return err
		}
	}
}

func lookupFrameType(v []byte) frameType {
	switch string(v) {
	case "message":
		return ftMessage
	case "ack":
		return ftAck
	case "error":
		return ftError
	case "auth_ok":
		return ftAuthOK
	case "snapshot":
		return ftSnapshot
	case "pong":
		return ftPong
	}
	return ftOther
}

// parseMessage reads the message object starting at b[i] == '{' and returns the index after it.
func parseMessage(b []byte, i int, m *frameMessage) (int, error) {
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return i, errBadFrame
		}
		if b[i] == '}' {
			return i + 1, nil
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		ks, ke, _, next, err := scanString(b, i)
		if err != nil {
			return i, err
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return i, errBadFrame
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return i, errBadFrame
		}
		switch string(b[ks:ke]) {
		case "seq":
			m.Seq, m.HasSeq, i, err = scanInt(b, i)
		case "content", "roomId", "id", "clientMsgId":
			if b[i] != '"' {
				i, err = skipValue(b, i)
				break
			}
			var vs, ve int
			var escaped bool
			vs, ve, escaped, i, err = scanString(b, i)
			if err != nil {
				return i, err
			}
			switch string(b[ks:ke]) {
			case "content":
				m.Content, m.ContentEscaped = b[vs:ve], escaped
			case "roomId":
				m.RoomID = b[vs:ve]
			case "id":
				m.ID = b[vs:ve]
			case "clientMsgId":
				m.ClientMsgID = b[vs:ve]
			}
		default:
			i, err = skipValue(b, i)
		}
		if err != nil {
			return i, err
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString reads the JSON string at b[i] == '"'. It returns the bounds of its raw
// contents, whether they hold escapes, and the index after the closing quote.
func scanString(b []byte, i int) (start, end int, escaped bool, next int, err error) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false, i, errBadFrame
	}
	start = i + 1
	j := start
	for j < len(b) {
		switch b[j] {
		case '"':
			return start, j, escaped, j + 1, nil
		case '\\':
			escaped = true
			j += 2 // skip the backslash and the escaped byte (\uXXXX's digits are plain)
		default:
			j++
		}
	}
	return 0, 0, false, len(b), errBadFrame
}

// scanInt reads a JSON number at b[i] as an int64. Numbers with a fraction or an exponent
// are accepted when they hold an integer value; anything else is (0, false) and skipped.
func scanInt(b []byte, i int) (v int64, ok bool, next int, err error) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	digits := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == digits {
		next, err = skipValue(b, i)
		return 0, false, next, err
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		end, err := skipValue(b, i)
		if err != nil {
			return 0, false, end, err
		}
		fv, perr := strconv.ParseFloat(string(b[i:end]), 64)
		if perr != nil || fv != float64(int64(fv)) {
			return 0, false, end, nil
		}
		return int64(fv), true, end, nil
	}
	n, ok := atoi64(b[i:j])
	return n, ok, j, nil
}

// atoi64 parses an optionally negative decimal integer without allocating.
func atoi64(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		n = -n
	}
	return n, true
}

// skipValue returns the index just after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, errBadFrame
	}
	switch b[i] {
	case '"':
		_, _, _, next, err := scanString(b, i)
		return next, err
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				_, _, _, next, err := scanString(b, i)
				if err != nil {
					return next, err
				}
				i = next
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return i, errBadFrame
	default:
		// A number or a literal: up to the next delimiter.
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return j, errBadFrame
				}
				return j, nil
			}
			j++
		}
		return j, errBadFrame // a value cannot end the top-level object
	}
}
