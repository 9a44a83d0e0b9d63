package raftelect

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/worldsvc"
)

// BenchmarkPropose measures entries through a three-replica Raft cluster on loopback (all in
// this process, so every entry is applied three times on the same cores), each entry a tick
// holding moves of 100 online participants. serial waits for each entry before the next:
// its time per op is the commit latency an input that must not be lost waits for. pipelined
// keeps up to 64 entries in flight: entries/s is the log's throughput. (Pipelined entries of
// 1,000 moves saturate two cores shared by three replicas: heartbeats starve and the leader
// loses its lease, so that case is not run.)
func BenchmarkPropose(b *testing.B) {
	for _, moves := range []int{0, 100, 1000} {
		for _, window := range []int{1, 64} {
			if moves >= 1000 && window > 1 {
				continue
			}
			name := "moves=" + strconv.Itoa(moves) + "/serial"
			if window > 1 {
				name = "moves=" + strconv.Itoa(moves) + "/pipelined"
			}
			b.Run(name, func(b *testing.B) { benchPropose(b, moves, window) })
		}
	}
}

func benchPropose(b *testing.B, moves, window int) {
	c := newCluster(b, 3, false, nil)
	l := c.leader()
	ctx := context.Background()
	args := func(v any) json.RawMessage {
		data, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	entry := func(e worldsvc.Entry) []byte {
		e.V, e.Now = worldsvc.EntryVersion, time.Now().UnixNano()
		data, err := json.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	const online = 100
	var conn worldsvc.Entry
	for i := range online {
		id := "p" + strconv.Itoa(i)
		conn.Inputs = append(conn.Inputs, worldsvc.EntryInput{Op: mesh.WorldConnect,
			Args: args(mesh.WorldConnectArgs{ParticipantID: id, SocketID: id, GatewayID: "g1", Rooms: []string{"r1"}})})
	}
	if _, err := l.node.Propose(entry(conn)).Wait(ctx); err != nil {
		b.Fatal(err)
	}
	tick := worldsvc.Entry{Step: true}
	for i := range moves {
		tick.Inputs = append(tick.Inputs, worldsvc.EntryInput{Op: mesh.WorldMove,
			Args: args(mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "p" + strconv.Itoa(i%online), X: float64(i), Y: 1})})
	}
	data := entry(tick)

	inflight := make([]worldsvc.Proposal, 0, window)
	start := time.Now()
	n := 0
	for b.Loop() {
		if len(inflight) == window {
			if _, err := inflight[0].Wait(ctx); err != nil {
				b.Fatal(err)
			}
			inflight = inflight[1:]
		}
		inflight = append(inflight, l.node.Propose(data))
		n++
	}
	for _, p := range inflight {
		if _, err := p.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(n)/secs, "entries/s")
	b.ReportMetric(float64(n*moves)/secs, "inputs/s")
	b.ReportMetric(float64(len(data)), "bytes/entry")
}
