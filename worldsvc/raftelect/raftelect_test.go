package raftelect

import (
	"log/slog"
	"reflect"
	"testing"
)

func TestParsePeers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want map[string]string
	}{
		{"w1=10.0.0.1:7000", map[string]string{"w1": "10.0.0.1:7000"}},
		{" w1=world-1:7000, w2=world-2:7000 ,w3=world-3:7000,", map[string]string{
			"w1": "world-1:7000", "w2": "world-2:7000", "w3": "world-3:7000"}},
		{"", nil},
		{"w1", nil},
		{"=h:1", nil},
		{"w1=h", nil},
		{"w1=h:1,w1=h:2", nil},
		{"w1=h:1,w2=h:1", nil},
	} {
		got, err := ParsePeers(c.in)
		if c.want == nil {
			if err == nil {
				t.Errorf("ParsePeers(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParsePeers(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	peers := map[string]string{"w1": "127.0.0.1:1"}
	quiet := slog.New(slog.DiscardHandler)
	for name, cfg := range map[string]Config{
		"no id":         {Peers: peers, DataDir: dir},
		"no peers":      {ID: "w1", DataDir: dir},
		"not a peer":    {ID: "w2", Peers: peers, DataDir: dir},
		"no data":       {ID: "w1", Peers: peers},
		"empty address": {ID: "w1", Peers: map[string]string{"w1": "127.0.0.1:1", "w2": ""}, DataDir: dir},
		"lease too long": {ID: "w1", Peers: peers, DataDir: dir, Logger: quiet,
			HeartbeatTimeout: 100e6, ElectionTimeout: 100e6, LeaderLeaseTimeout: 200e6},
		"bad bind": {ID: "w1", Peers: peers, DataDir: dir, Logger: quiet, BindAddr: "256.0.0.1:1"},
	} {
		if n, err := Open(cfg); err == nil {
			_ = n.Close()
			t.Errorf("%s: Open accepted %+v", name, cfg)
		}
	}
	// Nothing was left open: the folder opens again.
	n, err := Open(Config{ID: "w1", Peers: map[string]string{"w1": freeAddrs(t, 1)[0]}, DataDir: dir, Logger: quiet, SegmentSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A single replica is a cluster of one: it elects itself.
func TestSingleReplica(t *testing.T) {
	c := newCluster(t, 1, true, nil)
	l := c.leader()
	gw := newClient(t, c.bus, "g1")
	gw.call("world.connect", map[string]any{"participantId": "ada", "socketId": "s1", "gatewayId": "g1", "rooms": []string{"r1"}})
	if st := l.node.Machine().Stats(); st.Online != 1 {
		t.Fatalf("world %+v", st)
	}
	if id, addr := l.node.Leader(); id != "w1" || addr != c.peers["w1"] {
		t.Fatalf("Leader() = %s %s", id, addr)
	}
}
