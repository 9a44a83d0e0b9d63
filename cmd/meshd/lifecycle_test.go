package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// A restart keeps accounts, tokens and history: nobody is logged out.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	m := startAllInOneIn(t, dir, nil)
	c := mt.NewClient(m.base)
	a := c.Register(t, "Persist")
	room := c.Must(t, 201, "POST", "/api/rooms", a.Token, M{"name": "durable"})["id"].(string)
	for i := 0; i < 5; i++ {
		c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", a.Token, M{"content": fmt.Sprintf("m%d", i)})
	}
	if err := m.procs[0].stop(syscall.SIGTERM); err != nil {
		t.Fatalf("meshd exited with %v after SIGTERM", err)
	}

	m2 := startAllInOneIn(t, dir, nil)
	c2 := mt.NewClient(m2.base)
	if me := c2.Must(t, 200, "GET", "/api/auth/me", a.Token, nil); me["id"] != a.ID {
		t.Fatalf("old token after restart: %v", me)
	}
	c2.Must(t, 200, "POST", "/api/auth/login", "", M{"email": a.Email, "password": "password-123"})
	items := c2.Must(t, 200, "GET", "/api/rooms/"+room+"/messages", a.Token, nil)["items"].([]any)
	if len(items) != 5 || items[4].(M)["content"] != "m4" {
		t.Fatalf("history after restart: %v", items)
	}
	w, _ := mt.Connect(t, m2.base, a.Token)
	if ack := w.Ack(t, M{"type": "send_message", "roomId": room, "content": "after restart"}); ack["seq"] != 6.0 {
		t.Fatalf("seq after restart: %v", ack)
	}
}

// SIGTERM drains: sockets close with 1001 and the process exits cleanly.
func TestSIGTERMDrains(t *testing.T) {
	m := startAllInOne(t, nil)
	c := mt.NewClient(m.base)
	u := c.Register(t, "Drain")
	w, _ := mt.Connect(t, m.base, u.Token)
	w2, _ := mt.Connect(t, m.base, u.Token)
	if err := m.procs[0].stop(syscall.SIGTERM); err != nil {
		t.Fatalf("meshd exited with %v after SIGTERM\n%s", err, m.procs[0].Log())
	}
	for _, ws := range []*mt.WS{w, w2} {
		if code := ws.WaitClosed(t, 5*time.Second); code != websocket.CloseGoingAway {
			t.Fatalf("socket closed with %d, want 1001", code)
		}
	}
}

// Limits: frame size, authentication time, frame rate, slow consumers.
func TestSocketLimits(t *testing.T) {
	m := startAllInOne(t, map[string]string{
		"MESH_WS_AUTH_TIMEOUT":      "1s",
		"MESH_WS_FRAMES_PER_SECOND": "50",
		"MESH_WS_FRAME_BURST":       "100",
	})
	c := mt.NewClient(m.base)

	t.Run("frame over 64 KiB closes with 1009", func(t *testing.T) {
		u := c.Register(t, "Big")
		w, _ := mt.Connect(t, m.base, u.Token)
		w.SendRaw(t, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 64<<10)+`"}`))
		if code := w.WaitClosed(t, 5*time.Second); code != websocket.CloseMessageTooBig {
			t.Fatalf("closed with %d, want 1009", code)
		}
	})
	t.Run("no authenticate in time", func(t *testing.T) {
		w := mt.DialWS(t, m.base)
		if code := w.WaitClosed(t, 5*time.Second); code != 4000 {
			t.Fatalf("closed with %d, want 4000", code)
		}
	})
	t.Run("frame rate", func(t *testing.T) {
		u := c.Register(t, "Fast")
		w, _ := mt.Connect(t, m.base, u.Token)
		for i := 0; i < 300; i++ {
			w.Send(t, M{"type": "ping", "ref": fmt.Sprint(i)})
		}
		limited, pongs := 0, 0
		for limited+pongs < 300 {
			f := w.Next(5 * time.Second)
			if f == nil {
				break
			}
			switch {
			case f["type"] == "pong":
				pongs++
			case f["type"] == "error" && f["code"] == "rate_limited":
				limited++
			}
		}
		if limited == 0 || pongs < 95 || limited+pongs != 300 {
			t.Fatalf("%d pongs, %d rate_limited of 300 frames (close %d)", pongs, limited, w.CloseCode())
		}
		// The socket stays usable once the rate drops.
		time.Sleep(200 * time.Millisecond) // let the token bucket refill: time is what is tested
		if p := w.Request(t, M{"type": "ping"}); p["type"] != "pong" {
			t.Fatalf("after the burst: %v", p)
		}
	})
}

// A socket that cannot keep up is closed (its client resumes from seq); the others miss
// nothing.
func TestSlowSocketClosed(t *testing.T) {
	// The sender posts as fast as REST answers: its request rate is not what is tested.
	m := startAllInOne(t, map[string]string{"MESH_WS_SEND_QUEUE": "64", "MESH_REST_RATE": "100000", "MESH_REST_BURST": "100000"})
	c := mt.NewClient(m.base)
	{
		sender, fast, slow := c.Register(t, "Sender"), c.Register(t, "Fast2"), c.Register(t, "Slow")
		room := newRoom(t, c, sender, fast, slow)
		ws, _ := mt.Connect(t, m.base, slow.Token)
		// The slow client stops reading: the kernel buffers fill, then its queue.
		ws.Pause()
		wf, _ := mt.Connect(t, m.base, fast.Token)
		const n = 600
		pad := strings.Repeat("p", 14<<10)
		resumed := false
		for i := 0; i < n; i++ {
			c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", sender.Token, M{"content": fmt.Sprintf("%d %s", i, pad)})
			// Once the server has given up on the slow client, it reads again, to be told.
			if !resumed && i%20 == 0 && strings.Contains(string(c.Do(t, "GET", "/metrics", "", nil).Body), "mesh_gateway_slow_sockets_closed_total 1") {
				ws.Resume()
				resumed = true
			}
		}
		for i := 1; i <= n; i++ {
			if got := wf.Expect(t, "message")["message"].(M)["seq"]; got != float64(i) {
				t.Fatalf("fast socket got seq %v, want %d", got, i)
			}
		}
		if !resumed {
			t.Fatal("the slow socket was never closed")
		}
		if code := ws.WaitClosed(t, 10*time.Second); code != 4008 {
			t.Fatalf("slow socket closed with %d, want 4008", code)
		}
	}
}
