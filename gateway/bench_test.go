package gateway

import (
	"context"
	"fmt"
	"testing"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/mesh"
)

// BenchmarkFanout is a gateway's work for one message event in a room of 1,000 sockets:
// decode the event once, order it by seq, queue the same frame for every socket.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("sockets=%d", n), func(b *testing.B) {
			t := &testing.T{}
			h := testHub(t, 1<<62)
			socks := make([]*socket, n)
			for i := range socks {
				socks[i] = testSocket(fmt.Sprint(i))
				socks[i].maxQueue = 1 << 30
				_ = h.register(context.Background(), socks[i], []string{"r"}, map[string]int64{"r": 0})
				h.activate(socks[i])
			}
			msgs := make([]bus.Msg, b.N)
			for i := range msgs {
				msgs[i] = bus.Msg{Subject: mesh.RoomSubject("r"), Data: msgEvent("r", int64(i+1))}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range msgs {
				h.dispatch(msgs[i])
				if i%256 == 255 { // what the writers would do: take the queue
					for _, s := range socks {
						s.qmu.Lock()
						s.queue = s.queue[:0]
						s.qmu.Unlock()
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
