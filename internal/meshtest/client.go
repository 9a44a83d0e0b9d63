// Package meshtest drives a running mesh over its public contract (REST and WebSocket) for
// end-to-end tests. It knows nothing of the server's insides.
package meshtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// M is a decoded JSON object.
type M = map[string]any

// Client is an HTTP client of one mesh base URL (http://host:port).
type Client struct {
	Base string
	HTTP *http.Client
}

// NewClient makes a client of base.
func NewClient(base string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: 15 * time.Second}}
}

// Response is an HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as an object (nil if it is not one).
func (r Response) JSON() M {
	var m M
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// ErrorCode is error.code of an error answer.
func (r Response) ErrorCode() string {
	e, _ := r.JSON()["error"].(M)
	s, _ := e["code"].(string)
	return s
}

// Do sends a request; body is JSON-encoded unless it is []byte. headers are pairs.
func (c *Client) Do(t testing.TB, method, path, token string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Must sends a request and fails the test unless the status is want; it returns the object.
func (c *Client) Must(t testing.TB, want int, method, path, token string, body any) M {
	t.Helper()
	r := c.Do(t, method, path, token, body)
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r.JSON()
}

// Upload posts a file to /api/files as a multipart form: the field roomId (unless empty),
// then the part file named name, whose part says it is claimedType (which the server must not
// believe). headers are pairs.
func (c *Client) Upload(t testing.TB, token, roomID, name, claimedType string, content []byte, headers ...string) Response {
	t.Helper()
	return c.UploadTo(t, "/api/files", token, roomID, name, claimedType, content, headers...)
}

// UploadTo is Upload to another path (such as /api/files?roomId=...).
func (c *Client) UploadTo(t testing.TB, path, token, roomID, name, claimedType string, content []byte, headers ...string) Response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if roomID != "" {
		_ = w.WriteField("roomId", roomID)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	h.Set("Content-Type", claimedType)
	part, err := w.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = part.Write(content)
	_ = w.Close()
	return c.Do(t, "POST", path, token, body.Bytes(), append([]string{"Content-Type", w.FormDataContentType()}, headers...)...)
}

// User is a registered participant with its token.
type User struct {
	ID, Token, Email, Name string
}

// Register registers a user (password "password-123") and returns it.
func (c *Client) Register(t testing.TB, name string) User {
	t.Helper()
	email := strings.ToLower(name) + "-" + fmt.Sprint(time.Now().UnixNano()) + "@example.com"
	m := c.Must(t, 201, "POST", "/api/auth/register", "", M{"email": email, "password": "password-123", "displayName": name})
	p := m["participant"].(M)
	return User{ID: p["id"].(string), Token: m["token"].(string), Email: email, Name: name}
}

// WS is a WebSocket client that reads frames in the background.
type WS struct {
	Conn   *websocket.Conn
	frames chan M
	// backlog holds frames read while looking for another one, for later calls.
	backlog []M
	mu      sync.Mutex
	closed  bool
	paused  chan struct{}
	code    int
	text    string
	done    chan struct{}
}

// DialWS opens a socket to base's /ws (without authenticating).
func DialWS(t testing.TB, base string) *WS {
	t.Helper()
	u := "ws" + strings.TrimPrefix(strings.TrimRight(base, "/"), "http") + "/ws"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10) // bounded, so a paused client is really slow
		}
		return c, err
	}}
	conn, _, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	w := &WS{Conn: conn, frames: make(chan M, 10000), done: make(chan struct{})}
	go w.read()
	t.Cleanup(func() { conn.Close() })
	return w
}

func (w *WS) read() {
	defer close(w.done)
	defer close(w.frames)
	for {
		w.mu.Lock()
		gate := w.paused
		w.mu.Unlock()
		if gate != nil {
			<-gate
		}
		_, data, err := w.Conn.ReadMessage()
		if err != nil {
			w.mu.Lock()
			w.closed = true
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				w.code, w.text = ce.Code, ce.Text
			}
			w.mu.Unlock()
			return
		}
		var m M
		if json.Unmarshal(data, &m) == nil {
			select {
			case w.frames <- m:
			default: // a test that reads nothing does not block the reader
			}
		}
	}
}

// Pause stops reading from the socket after the frame being read (a slow client).
func (w *WS) Pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused == nil {
		w.paused = make(chan struct{})
	}
}

// Resume reads again.
func (w *WS) Resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused != nil {
		close(w.paused)
		w.paused = nil
	}
}

// Connect dials and authenticates; it returns the socket after auth_ok and snapshot.
func Connect(t testing.TB, base, token string) (*WS, M) {
	t.Helper()
	w := DialWS(t, base)
	w.Send(t, M{"type": "authenticate", "token": token})
	ok := w.Expect(t, "auth_ok")
	if ok["participantId"] == nil {
		t.Fatalf("auth_ok without participantId: %v", ok)
	}
	snap := w.Expect(t, "snapshot")
	return w, snap
}

// Send writes one frame.
func (w *WS) Send(t testing.TB, frame any) {
	t.Helper()
	b, err := json.Marshal(frame)
	if err != nil {
		t.Fatalf("encode frame: %v", err)
	}
	w.SendRaw(t, b)
}

// SendRaw writes one text frame as it is.
func (w *WS) SendRaw(t testing.TB, b []byte) {
	t.Helper()
	_ = w.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := w.Conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

// Wait is how long Expect waits.
var Wait = 5 * time.Second

// Next returns the next frame, or nil if none came within d (or the socket closed).
func (w *WS) Next(d time.Duration) M {
	if len(w.backlog) > 0 {
		m := w.backlog[0]
		w.backlog = w.backlog[1:]
		return m
	}
	select {
	case m, ok := <-w.frames:
		if !ok {
			return nil
		}
		return m
	case <-time.After(d):
		return nil
	}
}

// Expect returns the next frame of type typ, skipping others; it fails the test if none
// comes within Wait.
func (w *WS) Expect(t testing.TB, typ string) M {
	t.Helper()
	return w.ExpectWhere(t, typ, func(M) bool { return true })
}

// ExpectWhere returns the next frame of type typ for which ok holds.
func (w *WS) ExpectWhere(t testing.TB, typ string, ok func(M) bool) M {
	t.Helper()
	for i, m := range w.backlog {
		if m["type"] == typ && ok(m) {
			w.backlog = append(w.backlog[:i:i], w.backlog[i+1:]...)
			return m
		}
	}
	deadline := time.After(Wait)
	var skipped []string
	for {
		select {
		case m, open := <-w.frames:
			if !open {
				t.Fatalf("socket closed (%d %q) while waiting for %s; skipped %v", w.CloseCode(), w.text, typ, skipped)
			}
			if m["type"] == typ && ok(m) {
				return m
			}
			w.backlog = append(w.backlog, m)
			skipped = append(skipped, fmt.Sprint(m["type"]))
		case <-deadline:
			t.Fatalf("no %s frame within %v; skipped %v", typ, Wait, skipped)
		}
	}
}

// Ack sends frame with ref and returns the ack (failing on an error frame).
func (w *WS) Ack(t testing.TB, frame M) M {
	t.Helper()
	r := w.Request(t, frame)
	if r["type"] != "ack" && !(frame["type"] == "ping" && r["type"] == "pong") {
		t.Fatalf("%v: got %v, want ack", frame["type"], r)
	}
	return r
}

var refs struct {
	sync.Mutex
	n int
}

// Request sends frame with a fresh ref and returns the ack or error with that ref.
func (w *WS) Request(t testing.TB, frame M) M {
	t.Helper()
	refs.Lock()
	refs.n++
	ref := fmt.Sprintf("r%d", refs.n)
	refs.Unlock()
	f := M{}
	for k, v := range frame {
		f[k] = v
	}
	f["ref"] = ref
	w.Send(t, f)
	deadline := time.After(Wait)
	for {
		select {
		case m, open := <-w.frames:
			if !open {
				t.Fatalf("socket closed (%d) while waiting for the answer to %v", w.CloseCode(), frame["type"])
			}
			if m["ref"] == ref && (m["type"] == "ack" || m["type"] == "error" || m["type"] == "pong") {
				return m
			}
			w.backlog = append(w.backlog, m)
		case <-deadline:
			t.Fatalf("no answer to %v within %v", frame["type"], Wait)
		}
	}
}

// Quiet asserts no frame of type typ arrives within d (frames that arrived before the call,
// and frames of other types, are kept for later calls).
func (w *WS) Quiet(t testing.TB, typ string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, open := <-w.frames:
			if !open {
				return
			}
			if m["type"] == typ {
				t.Fatalf("unexpected %s frame: %v", typ, m)
			}
			w.backlog = append(w.backlog, m)
		case <-deadline:
			return
		}
	}
}

// WaitClosed waits for the server to close the socket and returns the close code.
func (w *WS) WaitClosed(t testing.TB, d time.Duration) int {
	t.Helper()
	go func() {
		for range w.frames {
		}
	}()
	select {
	case <-w.done:
		return w.CloseCode()
	case <-time.After(d):
		t.Fatalf("socket not closed within %v", d)
		return 0
	}
}

// CloseCode is the close code the server sent (0 if none yet).
func (w *WS) CloseCode() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.code
}

// Close closes the socket from the client side.
func (w *WS) Close() {
	_ = w.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	w.Conn.Close()
}
