package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseFrame(t *testing.T) {
	type want struct {
		typ       frameType
		typeName  string
		ref       string
		code      string
		errMsg    string
		messageID string
		seq       int64
		hasSeq    bool
		hasMsg    bool
		msgSeq    int64
		msgHasSeq bool
		roomID    string
		content   string
		escaped   bool
		clientID  string
		id        string
	}
	tests := []struct {
		name  string
		frame string
		want  want
	}{
		{
			name: "message, encoding/json order",
			frame: `{"type":"message","message":{"id":"01J1","roomId":"R1","seq":42,"authorId":"A",` +
				`"content":"mb1 abc 1 1700000000000000000 3.4","threadId":null,"to":null,"clientMsgId":"c-1",` +
				`"createdAt":"2026-01-01T00:00:00.000Z","editedAt":null,"deleted":false,"reactions":{"👍":["p1","p\"2"]}}}`,
			want: want{typ: ftMessage, typeName: "message", hasMsg: true, msgSeq: 42, msgHasSeq: true, roomID: "R1",
				content: "mb1 abc 1 1700000000000000000 3.4", clientID: "c-1", id: "01J1"},
		},
		{
			name: "type after the message, whitespace everywhere",
			frame: " {\n \"message\" : { \"reactions\" : { } , \"seq\" : 7 , \"roomId\" : \"R 2\" ,\"content\":\"a\\\"b\"} ," +
				" \"type\" :\t\"message\" } ",
			want: want{typ: ftMessage, typeName: "message", hasMsg: true, msgSeq: 7, msgHasSeq: true, roomID: "R 2",
				content: `a\"b`, escaped: true},
		},
		{
			name:  "ack with top-level result",
			frame: `{"type":"ack","ref":"123","messageId":"01JX","seq":9}`,
			want:  want{typ: ftAck, typeName: "ack", ref: "123", messageID: "01JX", seq: 9, hasSeq: true},
		},
		{
			name:  "ack with the message nested",
			frame: `{"type":"ack","ref":"5","message":{"id":"M","seq":11,"roomId":"R"}}`,
			want:  want{typ: ftAck, typeName: "ack", ref: "5", hasMsg: true, msgSeq: 11, msgHasSeq: true, roomID: "R", id: "M"},
		},
		{
			name:  "error with a message string",
			frame: `{"type":"error","ref":"77","code":"rate_limited","message":"slow down","details":{"retryAfterMs":20}}`,
			want:  want{typ: ftError, typeName: "error", ref: "77", code: "rate_limited", errMsg: "slow down"},
		},
		{
			name:  "auth_ok",
			frame: `{"type":"auth_ok","participantId":"P","role":"member"}`,
			want:  want{typ: ftAuthOK, typeName: "auth_ok"},
		},
		{
			name: "snapshot with nested arrays and a type-like key inside",
			frame: `{"type":"snapshot","rooms":[{"id":"R","members":["a","b"],"type":"x"}],` +
				`"participants":[{"id":"a","status":"online"}],"positions":{"R":[{"participantId":"a","x":1.5,"y":-2e3}]}}`,
			want: want{typ: ftSnapshot, typeName: "snapshot"},
		},
		{
			name:  "pong",
			frame: `{"type":"pong"}`,
			want:  want{typ: ftPong, typeName: "pong"},
		},
		{
			name:  "unknown type",
			frame: `{"type":"positions","roomId":"R","tick":12,"positions":[]}`,
			want:  want{typ: ftOther, typeName: "positions"},
		},
		{
			name:  "integral float seq",
			frame: `{"type":"ack","ref":"1","seq":4.2e1}`,
			want:  want{typ: ftAck, typeName: "ack", ref: "1", seq: 42, hasSeq: true},
		},
		{
			name:  "fractional seq is not a seq",
			frame: `{"type":"ack","ref":"1","seq":4.5}`,
			want:  want{typ: ftAck, typeName: "ack", ref: "1"},
		},
		{
			name:  "null and non-string fields are skipped",
			frame: `{"type":"ack","ref":null,"seq":null,"message":null,"code":5}`,
			want:  want{typ: ftAck, typeName: "ack"},
		},
		{
			name:  "empty object",
			frame: `{}`,
			want:  want{typ: ftOther},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f frame
			if err := parseFrame([]byte(tt.frame), &f); err != nil {
				t.Fatalf("parseFrame: %v", err)
			}
			got := want{typ: f.Type, typeName: string(f.TypeName), ref: string(f.Ref), code: string(f.Code),
				errMsg: string(f.ErrMsg), messageID: string(f.MessageID), seq: f.Seq, hasSeq: f.HasSeq,
				hasMsg: f.HasMsg, msgSeq: f.Msg.Seq, msgHasSeq: f.Msg.HasSeq, roomID: string(f.Msg.RoomID),
				content: string(f.Msg.Content), escaped: f.Msg.ContentEscaped, clientID: string(f.Msg.ClientMsgID),
				id: string(f.Msg.ID)}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseFrameRejectsMalformed(t *testing.T) {
	for _, in := range []string{
		``, `   `, `[]`, `"x"`, `{`, `{"type"`, `{"type":`, `{"type":"ack"`, `{"type":"ack",`,
		`{"type":"ack","seq":}`, `{"type":"ack","message":{"seq":1}`, `{"a":[1,2}`, `{"a":"\`,
		`{"a":tru`, `{type:"ack"}`, `{"a" 1}`,
	} {
		var f frame
		if err := parseFrame([]byte(in), &f); err == nil {
			t.Errorf("parseFrame(%q) accepted it", in)
		}
	}
}

// Every prefix of a valid frame must be handled without a panic.
func TestParseFrameTruncated(t *testing.T) {
	full := []byte(`{"type":"message","message":{"id":"01J1","roomId":"R1","seq":42,"content":"mb1 abc 1 2 3.4",` +
		`"reactions":{"x":["a\"b"]},"deleted":false}}`)
	for i := 0; i < len(full); i++ {
		var f frame
		if err := parseFrame(full[:i], &f); err == nil {
			t.Errorf("prefix %d %q accepted", i, full[:i])
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add([]byte(`{"type":"message","message":{"id":"1","roomId":"R","seq":3,"content":"x"}}`))
	f.Add([]byte(`{"type":"ack","ref":"9","seq":1e3}`))
	f.Add([]byte(`{"type":"error","message":"a\\\"b","code":"x"}`))
	f.Add([]byte(`{"a":[{"b":[[]]}],"type":"pong"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		if err := parseFrame(b, &fr); err != nil {
			return
		}
		// What the scanner accepts as an object with a string type, encoding/json reads the same way
		// whenever it accepts it too.
		var std struct {
			Type string `json:"type"`
		}
		// (encoding/json also matches keys case-insensitively: leave such inputs out.)
		caseFolded := strings.Count(strings.ToLower(string(b)), `"type"`) != strings.Count(string(b), `"type"`)
		if !caseFolded && json.Unmarshal(b, &std) == nil && !strings.Contains(string(fr.TypeName), `\`) &&
			std.Type != string(fr.TypeName) {
			t.Fatalf("type %q, encoding/json says %q", fr.TypeName, std.Type)
		}
	})
}

func TestContentRoundTrip(t *testing.T) {
	for _, size := range []int{0, 10, 40, 41, 100, 16 << 10} {
		c := appendContent(nil, "a1b2c3d4", 7, 1_700_000_000_123_456_789, 42, 999, size)
		if len(c) < size {
			t.Errorf("size %d: content is %d bytes", size, len(c))
		}
		if size > 50 && len(c) != size {
			t.Errorf("size %d: content is %d bytes, want exactly %d", size, len(c), size)
		}
		b, _ := json.Marshal(string(c))
		if string(b) != `"`+string(c)+`"` {
			t.Errorf("content needs JSON escapes: %s", b)
		}
		epoch, sent, ok := parseContent(c, []byte("a1b2c3d4"))
		if !ok || epoch != 7 || sent != 1_700_000_000_123_456_789 {
			t.Errorf("size %d: parseContent(%q) = %d, %d, %v", size, c, epoch, sent, ok)
		}
	}
}

func TestParseContentRejects(t *testing.T) {
	run := []byte("run1")
	for _, c := range []string{
		"", "hello", "mb1 ", "mb1 run1", "mb1 run1 ", "mb1 run2 1 2 3.4", "mb1 run12 1 2 3.4",
		"mb1 run1 x 2 3.4", "mb1 run1 1 y 3.4", "mb1 run1 1 2", "mb1 run1 -1 2 3.4", "mb1 run1 1 -2 3.4",
		"mb1 run1 99999999999 2 3.4", "mb2 run1 1 2 3.4",
	} {
		if _, _, ok := parseContent([]byte(c), run); ok {
			t.Errorf("parseContent(%q) accepted", c)
		}
	}
}

var benchFrame = []byte(`{"type":"message","message":{"id":"01JD8X3Q4N7Y2K5M9P0R1S2T3U","roomId":"01JD8X3Q4N7Y2K5M9P0R1S2T3V",` +
	`"seq":123456,"authorId":"01JD8X3Q4N7Y2K5M9P0R1S2T3W","content":"mb1 a1b2c3d4 3 1700000000123456789 42.999",` +
	`"threadId":null,"to":null,"clientMsgId":"mb-a1b2c3d4-42-999","createdAt":"2026-11-26T10:00:00.123Z",` +
	`"editedAt":null,"deleted":false,"reactions":{}}}`)

// BenchmarkParseFrame is the reader's hot path: parse a message event and its content.
func BenchmarkParseFrame(b *testing.B) {
	run := []byte("a1b2c3d4")
	b.ReportAllocs()
	b.SetBytes(int64(len(benchFrame)))
	var f frame
	for i := 0; i < b.N; i++ {
		if err := parseFrame(benchFrame, &f); err != nil || f.Type != ftMessage {
			b.Fatal(err)
		}
		if _, _, ok := parseContent(f.Msg.Content, run); !ok {
			b.Fatal("content")
		}
	}
}

// BenchmarkParseFrameStdlib is the same with encoding/json, for comparison.
func BenchmarkParseFrameStdlib(b *testing.B) {
	run := []byte("a1b2c3d4")
	b.ReportAllocs()
	b.SetBytes(int64(len(benchFrame)))
	for i := 0; i < b.N; i++ {
		var f struct {
			Type    string `json:"type"`
			Message struct {
				RoomID  string `json:"roomId"`
				Seq     int64  `json:"seq"`
				Content string `json:"content"`
			} `json:"message"`
		}
		if err := json.Unmarshal(benchFrame, &f); err != nil || f.Type != "message" {
			b.Fatal(err)
		}
		if _, _, ok := parseContent([]byte(f.Message.Content), run); !ok {
			b.Fatal("content")
		}
	}
}
