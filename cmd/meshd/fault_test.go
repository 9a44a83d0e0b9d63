package main

// Fault tests: the cluster as separate processes sharing Redis, with one part killed under
// load. Each ends by checking that no acknowledged message was lost or duplicated.

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	mt "github.com/themesh/mesh/internal/meshtest"
	"github.com/themesh/mesh/internal/testmongo"
	"github.com/themesh/mesh/internal/testredis"
)

// cluster is gateways, API workers and a world as processes on one Redis and one
// MongoDB-wire server (FerretDB).
type cluster struct {
	gateways []string // base URLs
	procs    map[string]*proc
	redis    *testredis.Server
	mongo    *testmongo.Server
}

func startCluster(t *testing.T, gateways, apis int) *cluster {
	t.Helper()
	// Answers may take the gateways' whole request deadline (5 s) while a part is down.
	old := mt.Wait
	mt.Wait = 15 * time.Second
	t.Cleanup(func() { mt.Wait = old })
	srv := testredis.New(t)
	mongo := testmongo.Start(t)
	common := map[string]string{
		"REDIS_URL":         "redis://" + srv.Addr(),
		"MESH_REDIS_PREFIX": testredis.Prefix(t),
		"MESH_JWT_SECRET":   strings.Repeat("s", 40),
		"MONGODB_URI":       mongo.URI() + mongo.DB(t),
	}
	env := func(extra ...string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			out[extra[i]] = extra[i+1]
		}
		return out
	}
	c := &cluster{procs: map[string]*proc{}, redis: srv, mongo: mongo}
	for i := 1; i <= apis; i++ {
		c.procs[fmt.Sprintf("api-%d", i)] = startMeshd(t, "api", env())
	}
	c.procs["world"] = startMeshd(t, "world", env())
	var all []*proc
	for i := 1; i <= gateways; i++ {
		addr := freeAddr(t)
		p := startMeshd(t, "gateway", env("MESH_ADDR", addr, "MESH_GATEWAY_ID", fmt.Sprintf("gw-%d", i)))
		c.procs[fmt.Sprintf("gateway-%d", i)] = p
		c.gateways = append(c.gateways, "http://"+addr)
	}
	for _, p := range c.procs {
		all = append(all, p)
	}
	for _, g := range c.gateways {
		waitReady(t, g, all...)
	}
	return c
}

// sendAll sends n messages with clientMsgIds over a socket, retrying each (same clientMsgId,
// with a pause) until it is acknowledged; it returns the seqs acknowledged, by clientMsgId,
// and how many answers were unavailable. kill is called once, after the n/3-th message.
func sendAll(t *testing.T, base, token, room string, n int, kill func()) map[string]int64 {
	acked, _ := sendAllCounting(t, base, token, room, n, kill)
	return acked
}

func sendAllCounting(t *testing.T, base, token, room string, n int, kill func()) (map[string]int64, int) {
	t.Helper()
	acked := map[string]int64{}
	unavailable := 0
	w, _ := mt.Connect(t, base, token)
	for i := 0; i < n; i++ {
		if i == n/3 && kill != nil {
			kill()
		}
		id := fmt.Sprintf("m-%d", i)
		for attempt := 0; ; attempt++ {
			r := w.Request(t, M{"type": "send_message", "roomId": room, "content": id, "clientMsgId": id})
			if r["type"] == "ack" {
				acked[id] = int64(r["seq"].(float64))
				break
			}
			if r["code"] != "unavailable" || attempt == 30 {
				t.Fatalf("send %s: %v", id, r)
			}
			unavailable++
			time.Sleep(300 * time.Millisecond) // a client's back-off: time is what is tested
		}
	}
	return acked, unavailable
}

// checkStored checks that the room's history holds every acknowledged message exactly once,
// with gap-free seqs.
func checkStored(t *testing.T, c *mt.Client, token, room string, acked map[string]int64) {
	t.Helper()
	seen := map[string]int{}
	var last int64
	for after := int64(0); ; {
		page := c.Must(t, 200, "GET", fmt.Sprintf("/api/rooms/%s/messages?after=%d&limit=200", room, after), token, nil)
		items := page["items"].([]any)
		for _, it := range items {
			m := it.(M)
			seq := int64(m["seq"].(float64))
			if seq != last+1 {
				t.Fatalf("history jumps from seq %d to %d", last, seq)
			}
			last = seq
			if id, ok := m["clientMsgId"].(string); ok {
				seen[id]++
			}
		}
		if page["nextCursor"] == nil {
			break
		}
		after = last
	}
	for id, seq := range acked {
		if seen[id] != 1 {
			t.Fatalf("acknowledged message %s (seq %d) stored %d times", id, seq, seen[id])
		}
	}
	if len(seen) != len(acked) {
		t.Fatalf("history holds %d messages, %d were acknowledged", len(seen), len(acked))
	}
}

func TestFaultKillAPIWorker(t *testing.T) {
	cl := startCluster(t, 1, 2)
	c := mt.NewClient(cl.gateways[0])
	u := c.Register(t, "Sender")
	room := c.Must(t, 201, "POST", "/api/rooms", u.Token, M{"name": "faults"})["id"].(string)
	watcher, _ := mt.Connect(t, cl.gateways[0], u.Token)
	acked := sendAll(t, cl.gateways[0], u.Token, room, 300, func() {
		_ = cl.procs["api-1"].stop(syscall.SIGKILL)
	})
	checkStored(t, c, u.Token, room, acked)
	// The watcher saw every message live, in order (a gap would have been filled from the
	// store; here the surviving worker published everything).
	got := map[string]bool{}
	for len(got) < len(acked) {
		m := watcher.Expect(t, "message")["message"].(M)
		got[m["clientMsgId"].(string)] = true
	}
}

func TestFaultKillGateway(t *testing.T) {
	cl := startCluster(t, 2, 1)
	c1, c2 := mt.NewClient(cl.gateways[0]), mt.NewClient(cl.gateways[1])
	a, b := c1.Register(t, "OnOne"), c2.Register(t, "OnTwo")
	room := c1.Must(t, 201, "POST", "/api/rooms", a.Token, M{"name": "two gateways"})["id"].(string)
	c2.Must(t, 200, "POST", "/api/rooms/"+room+"/join", b.Token, nil)

	// b listens on gateway 2, a talks on gateway 1: they hear each other, whispers stay private.
	wb, _ := mt.Connect(t, cl.gateways[1], b.Token)
	wa, _ := mt.Connect(t, cl.gateways[0], a.Token)
	wa.Ack(t, M{"type": "send_message", "roomId": room, "content": "across gateways"})
	if m := wb.Expect(t, "message")["message"].(M); m["content"] != "across gateways" {
		t.Fatalf("b got %v", m)
	}
	// A whisper from a (gateway 1) to b (gateway 2) reaches b only, not c on gateway 2.
	cc := c2.Register(t, "Third")
	c2.Must(t, 200, "POST", "/api/rooms/"+room+"/join", cc.Token, nil)
	wc, _ := mt.Connect(t, cl.gateways[1], cc.Token)
	wa.Ack(t, M{"type": "send_message", "roomId": room, "content": "just for b", "to": b.ID})
	if m := wb.Expect(t, "message")["message"].(M); m["content"] != "just for b" {
		t.Fatalf("b got %v", m)
	}
	wa.Ack(t, M{"type": "send_message", "roomId": room, "content": "for everyone"})
	if m := wc.Expect(t, "message")["message"].(M); m["content"] != "for everyone" {
		t.Fatalf("the third participant got %v first", m)
	}
	// b's gateway dies; b reconnects to gateway 1 and fills its gap from seq.
	lastSeen := int64(3)
	_ = cl.procs["gateway-2"].stop(syscall.SIGKILL)
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("while-away-%d", i)
		wa.Ack(t, M{"type": "send_message", "roomId": room, "content": id, "clientMsgId": id})
	}
	wb2, _ := mt.Connect(t, cl.gateways[0], b.Token)
	missed := c1.Must(t, 200, "GET", fmt.Sprintf("/api/rooms/%s/messages?after=%d", room, lastSeen), b.Token, nil)["items"].([]any)
	if len(missed) != 20 || missed[0].(M)["seq"] != 4.0 || missed[19].(M)["seq"] != 23.0 {
		t.Fatalf("gap fill after reconnect: %d messages", len(missed))
	}
	wa.Ack(t, M{"type": "send_message", "roomId": room, "content": "welcome back"})
	if m := wb2.Expect(t, "message")["message"].(M); m["content"] != "welcome back" || m["seq"] != 24.0 {
		t.Fatalf("after reconnect b got %v", m)
	}
}

func TestFaultRestartRedis(t *testing.T) {
	cl := startCluster(t, 1, 1)
	c := mt.NewClient(cl.gateways[0])
	u := c.Register(t, "Persistent")
	room := c.Must(t, 201, "POST", "/api/rooms", u.Token, M{"name": "redis restart"})["id"].(string)
	acked := sendAll(t, cl.gateways[0], u.Token, room, 60, func() {
		if err := cl.redis.Stop(); err != nil {
			t.Fatalf("stop redis: %v", err)
		}
		if err := cl.redis.Start(); err != nil {
			t.Fatalf("start redis: %v", err)
		}
	})
	checkStored(t, c, u.Token, room, acked)
	// Live delivery works again after the restart: a new socket gets a new message.
	w, _ := mt.Connect(t, cl.gateways[0], u.Token)
	w.Ack(t, M{"type": "send_message", "roomId": room, "content": "after the restart"})
	w.ExpectWhere(t, "message", func(m M) bool { return m["message"].(M)["content"] == "after the restart" })
}

func TestFaultStopMongo(t *testing.T) {
	cl := startCluster(t, 1, 1)
	c := mt.NewClient(cl.gateways[0])
	u := c.Register(t, "Patient")
	room := c.Must(t, 201, "POST", "/api/rooms", u.Token, M{"name": "mongo outage"})["id"].(string)
	restarted := make(chan error, 1)
	acked, unavailable := sendAllCounting(t, cl.gateways[0], u.Token, room, 40, func() {
		if err := cl.mongo.Stop(); err != nil {
			t.Fatalf("stop the Mongo-wire server: %v", err)
		}
		go func() {
			time.Sleep(4 * time.Second) // the outage
			restarted <- cl.mongo.Start()
		}()
	})
	if err := <-restarted; err != nil {
		t.Fatalf("restart the Mongo-wire server: %v", err)
	}
	if unavailable == 0 {
		t.Fatal("no request was answered unavailable while the database was down")
	}
	checkStored(t, c, u.Token, room, acked)
	// REST works again too.
	c.Must(t, 200, "GET", "/api/auth/me", u.Token, nil)
}
