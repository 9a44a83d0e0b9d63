package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// fakeMesh is a small in-memory server speaking the subset of the contract meshbench uses,
// with knobs to inject the faults the tool must detect.
type fakeMesh struct {
	mu       sync.Mutex
	setUp    bool
	users    map[string]*fakeUser // by email
	byToken  map[string]*fakeUser
	rooms    map[string]*fakeRoom
	nextID   int
	sockets  map[*fakeConn]bool
	openSock atomic.Int64

	// Faults.
	dropEvery     int64 // drop one delivery in this many (0: none)
	skipStore     int64 // do not store one message in this many (0: none)
	dropAfterMsgs int64 // drop every delivery once this many messages were sent (0: never)
	register429   atomic.Int32
	rejectAuth    int64 // refuse one authenticate in this many (0: none)
	stallAuth     bool  // never answer authenticate
	closeAtMsg    int64 // close one socket when this message is sent (0: never)
	auths         atomic.Int64
	deliveries    atomic.Int64
	messages      atomic.Int64
}

type fakeUser struct {
	id, email, password, token string
}

type fakeRoom struct {
	id      string
	members map[string]bool
	msgs    []map[string]any
	seq     int64
}

type fakeConn struct {
	ws   *websocket.Conn
	wmu  sync.Mutex
	user *fakeUser
}

func (c *fakeConn) write(v any) {
	b, _ := json.Marshal(v)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = c.ws.WriteMessage(websocket.TextMessage, b)
}

func newFakeMesh() *fakeMesh {
	return &fakeMesh{users: map[string]*fakeUser{}, byToken: map[string]*fakeUser{},
		rooms: map[string]*fakeRoom{}, sockets: map[*fakeConn]bool{}}
}

func (f *fakeMesh) id(prefix string) string {
	f.nextID++
	return fmt.Sprintf("%s%05d", prefix, f.nextID)
}

func writeJSONResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, code string) {
	writeJSONResp(w, status, map[string]any{"error": map[string]string{"code": code, "message": code}})
}

func (f *fakeMesh) handler() http.Handler {
	mux := http.NewServeMux()
	body := func(r *http.Request) map[string]any {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		return m
	}
	auth := func(r *http.Request) *fakeUser {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.byToken[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	}
	newUser := func(b map[string]any) *fakeUser {
		email, _ := b["email"].(string)
		pw, _ := b["password"].(string)
		u := &fakeUser{id: f.id("U"), email: email, password: pw}
		u.token = "tok-" + u.id
		f.users[email], f.byToken[u.token] = u, u
		return u
	}
	mux.HandleFunc("GET /api/setup", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSONResp(w, 200, map[string]any{"needsSetup": !f.setUp, "meshName": "fake"})
	})
	mux.HandleFunc("POST /api/setup", func(w http.ResponseWriter, r *http.Request) {
		b := body(r)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.setUp {
			apiErr(w, 409, "conflict")
			return
		}
		f.setUp = true
		u := newUser(b)
		writeJSONResp(w, 201, map[string]any{"token": u.token, "participant": map[string]any{"id": u.id, "role": "owner"}})
	})
	mux.HandleFunc("POST /api/auth/register", func(w http.ResponseWriter, r *http.Request) {
		if f.register429.Add(-1) >= 0 {
			w.Header().Set("Retry-After", "0.05")
			apiErr(w, 429, "rate_limited")
			return
		}
		b := body(r)
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.users[b["email"].(string)]; ok {
			apiErr(w, 409, "conflict")
			return
		}
		f.setUp = true
		u := newUser(b)
		writeJSONResp(w, 201, map[string]any{"token": u.token, "participant": map[string]any{"id": u.id, "role": "member"}})
	})
	mux.HandleFunc("POST /api/auth/login", func(w http.ResponseWriter, r *http.Request) {
		b := body(r)
		f.mu.Lock()
		defer f.mu.Unlock()
		u, ok := f.users[b["email"].(string)]
		if !ok || u.password != b["password"] {
			apiErr(w, 401, "invalid_credentials")
			return
		}
		writeJSONResp(w, 200, map[string]any{"token": u.token, "participant": map[string]any{"id": u.id}})
	})
	mux.HandleFunc("POST /api/rooms", func(w http.ResponseWriter, r *http.Request) {
		u := auth(r)
		if u == nil {
			apiErr(w, 401, "unauthorized")
			return
		}
		b := body(r)
		f.mu.Lock()
		defer f.mu.Unlock()
		rm := &fakeRoom{id: f.id("R"), members: map[string]bool{u.id: true}}
		f.rooms[rm.id] = rm
		writeJSONResp(w, 201, map[string]any{"id": rm.id, "name": b["name"], "memberCount": 1})
	})
	mux.HandleFunc("POST /api/rooms/{id}/join", func(w http.ResponseWriter, r *http.Request) {
		u := auth(r)
		f.mu.Lock()
		defer f.mu.Unlock()
		rm := f.rooms[r.PathValue("id")]
		if u == nil || rm == nil {
			apiErr(w, 404, "not_found")
			return
		}
		rm.members[u.id] = true
		writeJSONResp(w, 200, map[string]any{"id": rm.id})
	})
	mux.HandleFunc("DELETE /api/rooms/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.rooms, r.PathValue("id"))
		w.WriteHeader(204)
	})
	mux.HandleFunc("GET /api/rooms/{id}/messages", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 || limit > 200 {
			limit = 50
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		rm := f.rooms[r.PathValue("id")]
		if rm == nil {
			apiErr(w, 404, "not_found")
			return
		}
		// Like the real server: zero after/before are unset; before alone is the last page
		// before it.
		items := []map[string]any{}
		if after == 0 && before > 0 {
			for _, m := range rm.msgs {
				if m["seq"].(int64) < before {
					items = append(items, m)
				}
			}
			if len(items) > limit {
				items = items[len(items)-limit:]
			}
		} else {
			for _, m := range rm.msgs {
				if m["seq"].(int64) > after && len(items) < limit {
					items = append(items, m)
				}
			}
		}
		writeJSONResp(w, 200, map[string]any{"items": items, "nextCursor": nil})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		n := f.openSock.Load()
		fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n"+
			"process_cpu_seconds_total 1.5\ngo_memstats_heap_inuse_bytes %d\ngo_goroutines %d\n",
			10<<20+50<<10*n, 4<<20+20<<10*n, 12+2*n)
	})
	up := websocket.Upgrader{}
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f.serveWS(&fakeConn{ws: ws})
	})
	return mux
}

func (f *fakeMesh) serveWS(c *fakeConn) {
	defer func() {
		f.mu.Lock()
		if f.sockets[c] {
			delete(f.sockets, c)
			f.openSock.Add(-1)
		}
		f.mu.Unlock()
		_ = c.ws.Close()
	}()
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			c.write(map[string]any{"type": "error", "code": "bad_request", "message": "not JSON"})
			continue
		}
		ref, _ := m["ref"].(string)
		switch m["type"] {
		case "authenticate":
			if f.stallAuth {
				continue
			}
			tok, _ := m["token"].(string)
			f.mu.Lock()
			u := f.byToken[tok]
			if n := f.auths.Add(1); f.rejectAuth > 0 && n%f.rejectAuth == 0 {
				u = nil
			}
			if u != nil {
				c.user = u
				f.sockets[c] = true
				f.openSock.Add(1)
			}
			f.mu.Unlock()
			if u == nil {
				c.write(map[string]any{"type": "error", "code": "unauthorized", "message": "bad token"})
				return
			}
			// Sorted keys, like the real server's map-built frames.
			c.write(map[string]any{"type": "auth_ok", "ref": nil, "participantId": u.id, "role": "member"})
			c.write(map[string]any{"type": "snapshot", "rooms": []any{}, "participants": []any{}, "positions": map[string]any{}})
		case "ping":
			c.write(map[string]any{"type": "pong"})
		case "send_message":
			f.send(c, ref, m)
		default:
			c.write(map[string]any{"type": "error", "ref": ref, "code": "bad_request", "message": "unknown type"})
		}
	}
}

func (f *fakeMesh) send(c *fakeConn, ref string, m map[string]any) {
	roomID, _ := m["roomId"].(string)
	f.mu.Lock()
	rm := f.rooms[roomID]
	if rm == nil || !rm.members[c.user.id] {
		f.mu.Unlock()
		c.write(map[string]any{"type": "error", "ref": ref, "code": "forbidden", "message": "not a member"})
		return
	}
	n := f.messages.Add(1)
	rm.seq++
	msg := map[string]any{"id": f.id("M"), "roomId": rm.id, "seq": rm.seq, "authorId": c.user.id,
		"content": m["content"], "clientMsgId": m["clientMsgId"], "threadId": nil, "to": nil,
		"deleted": false, "reactions": map[string]any{}}
	if f.skipStore == 0 || n%f.skipStore != 0 {
		rm.msgs = append(rm.msgs, msg)
	}
	var targets []*fakeConn
	for s := range f.sockets {
		if rm.members[s.user.id] {
			targets = append(targets, s)
		}
	}
	f.mu.Unlock()
	if n == f.closeAtMsg {
		for _, s := range targets {
			if s != c {
				_ = s.ws.Close()
				break
			}
		}
	}
	c.write(map[string]any{"type": "ack", "ref": ref, "messageId": msg["id"], "seq": msg["seq"]})
	for _, s := range targets {
		d := f.deliveries.Add(1)
		if f.dropEvery > 0 && d%f.dropEvery == 0 {
			continue
		}
		if f.dropAfterMsgs > 0 && n > f.dropAfterMsgs {
			continue
		}
		s.write(map[string]any{"message": msg, "type": "message"})
	}
}

// runAgainst runs meshbench with args against a fresh fake mesh.
func runAgainst(t *testing.T, f *fakeMesh, args ...string) (*report, int) {
	t.Helper()
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	cfg, err := parseFlags(append([]string{"-url", srv.URL}, args...), io.Discard)
	if err != nil {
		t.Fatalf("flags: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logf := func(format string, a ...any) { t.Logf(format, a...) }
	return execute(ctx, cfg, logf, func(string, ...any) {})
}

func TestEndToEndFanout(t *testing.T) {
	f := newFakeMesh()
	f.register429.Store(2)
	rep, code := runAgainst(t, f, "-sockets", "30", "-users", "10", "-rooms", "3", "-rate", "300",
		"-duration", "1s", "-drain", "2s", "-keepalive", "100ms")
	if code != exitOK || rep.Error != "" {
		t.Fatalf("code %d, error %q", code, rep.Error)
	}
	fo := rep.Fanout
	if fo == nil {
		t.Fatal("no fanout result")
	}
	if fo.Sent < 250 || fo.Acked != fo.Sent || fo.Errored+fo.RateLimited+fo.Unacked+fo.WriteErrors != 0 {
		t.Fatalf("sending: %+v", fo)
	}
	// 3 rooms of 10 sockets each: every message reaches 10 sockets.
	if fo.Deliveries.Expected != fo.Acked*10 || fo.Deliveries.Received != fo.Deliveries.Expected || fo.Deliveries.Lost != 0 {
		t.Fatalf("deliveries %+v (acked %d)", fo.Deliveries, fo.Acked)
	}
	if fo.Latency.Count != uint64(fo.Deliveries.Received) || fo.Latency.P99Ms <= 0 || fo.Latency.MaxMs < fo.Latency.P99Ms {
		t.Fatalf("latency %+v", fo.Latency)
	}
	if fo.Senders != 3 || fo.SocketsLive != 30 {
		t.Fatalf("senders %d live %d", fo.Senders, fo.SocketsLive)
	}
	// The store check covers the measured messages and the warm-up's (one per room).
	if rep.Store == nil || !rep.Store.OK() || rep.Store.Stored != fo.Acked+3 || rep.WarmupSec <= 0 {
		t.Fatalf("store %+v", rep.Store)
	}
	if rep.Setup.RateLimited != 2 || rep.Setup.UsersRegistered != 10 || !rep.Setup.OwnerCreated {
		t.Fatalf("setup %+v", rep.Setup)
	}
	m := rep.Memory
	if m.ServerPerSocket == nil || *m.ServerPerSocket != 50<<10 {
		t.Fatalf("memory %+v", m)
	}
	if rep.Readers.OrderViolations != 0 || rep.Readers.SeqGaps != 0 || rep.Readers.ParseErrors != 0 {
		t.Fatalf("readers %+v", rep.Readers)
	}
	// The JSON report is one line that decodes.
	var sb strings.Builder
	if err := writeJSON(&sb, rep); err != nil || strings.Count(sb.String(), "\n") != 1 {
		t.Fatalf("json: %v %q", err, sb.String())
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(sb.String()), &back); err != nil || back["mode"] != "fanout" {
		t.Fatalf("json decodes to %v, %v", back, err)
	}
	var human strings.Builder
	printSummary(&human, rep)
	for _, want := range []string{"latency", "deliveries", "stored     OK"} {
		if !strings.Contains(human.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, human.String())
		}
	}
}

func TestEndToEndReusesUsers(t *testing.T) {
	f := newFakeMesh()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	for run := 0; run < 2; run++ {
		cfg, err := parseFlags([]string{"-url", srv.URL, "-sockets", "4", "-users", "4", "-rooms", "2",
			"-rate", "20", "-duration", "200ms", "-drain", "1s"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		rep, code := execute(context.Background(), cfg, t.Logf, func(string, ...any) {})
		if code != exitOK {
			t.Fatalf("run %d: code %d, %s", run, code, rep.Error)
		}
		if run == 1 && (rep.Setup.OwnerCreated || rep.Setup.UsersLoggedIn != 4 || rep.Setup.UsersRegistered != 0) {
			t.Fatalf("second run setup %+v", rep.Setup)
		}
	}
}

func TestEndToEndDetectsLoss(t *testing.T) {
	f := newFakeMesh()
	f.dropEvery = 37
	f.skipStore = 11
	rep, code := runAgainst(t, f, "-sockets", "20", "-users", "10", "-rooms", "2", "-rate", "200",
		"-duration", "1s", "-drain", "300ms")
	if code != exitProblem {
		t.Fatalf("code %d, want %d", code, exitProblem)
	}
	d := rep.Fanout.Deliveries
	if d.Lost == 0 || d.Lost != d.Expected-d.Received || d.LossPct <= 0 {
		t.Fatalf("deliveries %+v", d)
	}
	want := f.deliveries.Load() / 37
	if d.Lost < want-1 || d.Lost > want+1 {
		t.Fatalf("lost %d, the fake dropped %d", d.Lost, want)
	}
	if rep.Readers.SeqGaps == 0 {
		t.Fatal("per-socket seq gaps not noticed")
	}
	if rep.Store.Missing == 0 || rep.Store.Missing != f.messages.Load()/11 || rep.Store.Gaps != rep.Store.Missing || rep.Store.OK() {
		t.Fatalf("store %+v (fake skipped %d)", rep.Store, f.messages.Load()/11)
	}
}

func TestEndToEndStep(t *testing.T) {
	f := newFakeMesh()
	// The first steps (50, 100/s for 0.3 s) send about 45 messages; then deliveries stop.
	f.dropAfterMsgs = 60
	rep, code := runAgainst(t, f, "-mode", "step", "-sockets", "10", "-users", "5", "-rooms", "1",
		"-step-start", "50", "-step-factor", "2", "-step-duration", "300ms", "-drain", "300ms", "-max-p99", "1s")
	if rep.Error != "" {
		t.Fatalf("error %s", rep.Error)
	}
	if len(rep.Steps) < 2 {
		t.Fatalf("%d steps", len(rep.Steps))
	}
	last := rep.Steps[len(rep.Steps)-1]
	if last.Pass || !strings.Contains(last.Reason, "loss") {
		t.Fatalf("last step %+v", last)
	}
	for _, st := range rep.Steps[:len(rep.Steps)-1] {
		if !st.Pass {
			t.Fatalf("step %d failed before the last: %s", st.Step, st.Reason)
		}
	}
	if rep.LastGoodRate != rep.Steps[len(rep.Steps)-2].TargetRate {
		t.Fatalf("last good rate %v, steps %+v", rep.LastGoodRate, rep.Steps)
	}
	// Messages of every step, the failed one included, are stored.
	if rep.Store == nil || !rep.Store.OK() {
		t.Fatalf("store %+v", rep.Store)
	}
	_ = code
}

func TestEndToEndIdle(t *testing.T) {
	f := newFakeMesh()
	rep, code := runAgainst(t, f, "-mode", "idle", "-sockets", "40", "-users", "8", "-rooms", "1",
		"-duration", "1500ms", "-dial-rate", "200", "-dial-concurrency", "4")
	if code != exitOK {
		t.Fatalf("code %d %s", code, rep.Error)
	}
	if rep.Sockets.Opened != 40 || rep.Sockets.Failed != 0 {
		t.Fatalf("sockets %+v", rep.Sockets)
	}
	// 40 sockets at 200/s take about 0.2 s; at least 0.15 s.
	if rep.Sockets.Seconds < 0.15 {
		t.Fatalf("40 sockets opened in %.2fs despite -dial-rate 200", rep.Sockets.Seconds)
	}
	m := rep.Memory
	if m.ServerPerSocket == nil || *m.ServerPerSocket != 50<<10 || *m.ServerBaselineBytes != 10<<20 {
		t.Fatalf("memory %+v", m)
	}
	if m.ServerHeapPerSocket == nil || *m.ServerHeapPerSocket != 20<<10 || m.ServerGoroutinesPerSock == nil ||
		*m.ServerGoroutinesPerSock != 2 || *m.ServerGoroutinesBase != 12 {
		t.Fatalf("server heap/goroutines %+v", m)
	}
	if m.ToolPerSocket == nil || m.ToolLoadedBytes == nil {
		t.Fatalf("tool memory %+v", m)
	}
	if rep.Fanout != nil || rep.Store != nil {
		t.Fatal("idle run sent messages")
	}
}

func TestEndToEndSocketFailures(t *testing.T) {
	f := newFakeMesh()
	f.rejectAuth = 4
	rep, code := runAgainst(t, f, "-sockets", "20", "-users", "10", "-rooms", "2", "-rate", "100",
		"-duration", "500ms", "-drain", "2s")
	if code != exitProblem {
		t.Fatalf("code %d, want %d (%s)", code, exitProblem, rep.Error)
	}
	if rep.Sockets.Opened != 15 || rep.Sockets.Failed != 5 || rep.Sockets.Failures[failAuth] != 5 || len(rep.Sockets.Samples) == 0 {
		t.Fatalf("sockets %+v", rep.Sockets)
	}
	// Expected deliveries count the sockets that opened, and nothing is lost.
	fo := rep.Fanout
	if fo.SocketsLive != 15 || fo.Deliveries.Lost != 0 || fo.Deliveries.Received != fo.Deliveries.Expected || fo.Acked == 0 {
		t.Fatalf("fanout %+v", fo)
	}
}

func TestEndToEndSetupFailsOnBadLogin(t *testing.T) {
	f := newFakeMesh()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	cfg, err := parseFlags([]string{"-url", srv.URL, "-mode", "idle", "-sockets", "6", "-users", "3",
		"-rooms", "1", "-duration", "100ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := newAPIClient(cfg.base, 2, nil)
	// Bench user 2 exists with another password: its login fails, and set-up must stop.
	if _, err := api.Setup(ctx, "m", cfg.OwnerEmail, cfg.OwnerPassword, "Owner"); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Register(ctx, cfg.userEmail(1), "another-password", "Y"); err != nil {
		t.Fatal(err)
	}
	rep, code := execute(ctx, cfg, t.Logf, func(string, ...any) {})
	if code != exitFatal || !strings.Contains(rep.Error, "invalid_credentials") || !strings.Contains(rep.Error, cfg.userEmail(1)) {
		t.Fatalf("code %d, error %q", code, rep.Error)
	}
}

func TestEndToEndNoServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	cfg, err := parseFlags([]string{"-url", url, "-timeout", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, code := execute(context.Background(), cfg, t.Logf, func(string, ...any) {})
	if code != exitFatal || rep.Error == "" {
		t.Fatalf("code %d error %q", code, rep.Error)
	}
}

func TestEndToEndStalledServer(t *testing.T) {
	f := newFakeMesh()
	f.stallAuth = true
	start := time.Now()
	rep, code := runAgainst(t, f, "-sockets", "10", "-users", "2", "-rooms", "1", "-auth-timeout", "300ms")
	if code != exitFatal || rep.Sockets.Failures[failTimeout] != 10 {
		t.Fatalf("code %d, sockets %+v, error %q", code, rep.Sockets, rep.Error)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestEndToEndTimeoutBoundsTheRun(t *testing.T) {
	f := newFakeMesh()
	start := time.Now()
	rep, code := runAgainst(t, f, "-sockets", "10", "-users", "5", "-rooms", "1", "-rate", "50",
		"-duration", "1m", "-timeout", "1500ms")
	if code != exitFatal || !strings.Contains(rep.Error, "timeout") {
		t.Fatalf("code %d, error %q", code, rep.Error)
	}
	if rep.Fanout == nil || rep.Fanout.Sent == 0 {
		t.Fatalf("the partial fanout result is missing: %+v", rep.Fanout)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a run with -timeout 1.5s took %s", d)
	}
}

func TestEndToEndServerClosesASocket(t *testing.T) {
	f := newFakeMesh()
	f.closeAtMsg = 20
	rep, code := runAgainst(t, f, "-sockets", "10", "-users", "5", "-rooms", "1", "-rate", "100",
		"-duration", "600ms", "-drain", "300ms")
	if code != exitProblem {
		t.Fatalf("code %d, want %d", code, exitProblem)
	}
	if rep.Fanout.Disconnects != 1 || rep.Readers.Disconnects != 1 || len(rep.Readers.DisconnectSamples) != 1 {
		t.Fatalf("disconnects: fanout %d, readers %+v", rep.Fanout.Disconnects, rep.Readers)
	}
	if rep.Fanout.Deliveries.Lost == 0 {
		t.Fatal("the closed socket's missed deliveries are not counted as lost")
	}
}

func TestEndToEndWarmupTimesOut(t *testing.T) {
	f := newFakeMesh()
	f.dropEvery = 1 // nothing is ever delivered
	rep, code := runAgainst(t, f, "-sockets", "4", "-users", "2", "-rooms", "1", "-rate", "20",
		"-duration", "200ms", "-drain", "200ms", "-warmup-timeout", "300ms")
	if code != exitProblem || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "warm-up") {
		t.Fatalf("code %d, warnings %q", code, rep.Warnings)
	}
	if rep.WarmupSec < 0.3 || rep.Fanout == nil || rep.Fanout.Deliveries.Received != 0 || rep.Fanout.Deliveries.Lost == 0 {
		t.Fatalf("warm-up %.2fs, fanout %+v", rep.WarmupSec, rep.Fanout)
	}
}
