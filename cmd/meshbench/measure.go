package main

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ackRecord is one acked send: what the store check needs (its clientMsgId is
// clientMsgID(run, Sock, Ref)).
type ackRecord struct {
	Seq  int64
	Sock int
	Ref  uint64
}

// measurement is one fanout window (a step of the step mode). Readers and senders update it
// concurrently; the runner reads it once the window and its drain are over.
type measurement struct {
	epoch uint32
	hist  *shardedHistogram // send → delivery, every delivery
	ack   *shardedHistogram // send → ack

	perSock []atomic.Int64 // deliveries per socket index

	sent        atomic.Int64
	ackedN      atomic.Int64
	errored     atomic.Int64 // error answers other than rate_limited
	rateLimited atomic.Int64
	writeErrs   atomic.Int64
	ackNoSeq    atomic.Int64
	roomAcked   []atomic.Int64 // acks per room index

	mu       sync.Mutex
	errCodes map[string]int64
	acks     [][]ackRecord // per room index
}

func newMeasurement(epoch uint32, sockets, rooms, shards int) *measurement {
	return &measurement{
		epoch:     epoch,
		hist:      newShardedHistogram(shards),
		ack:       newShardedHistogram(shards),
		perSock:   make([]atomic.Int64, sockets),
		errCodes:  map[string]int64{},
		acks:      make([][]ackRecord, rooms),
		roomAcked: make([]atomic.Int64, rooms),
	}
}

// delivered records a message event of this measurement received by s.
func (m *measurement) delivered(s *sock, latency time.Duration) {
	m.perSock[s.idx].Add(1)
	m.hist.Record(s.idx, latency)
}

func (m *measurement) acked(s *sock, ref uint64, seq int64, hasSeq bool, latency time.Duration) {
	m.ackedN.Add(1)
	m.roomAcked[s.room.Index].Add(1)
	m.ack.Record(s.idx, latency)
	if !hasSeq {
		m.ackNoSeq.Add(1)
		return
	}
	m.mu.Lock()
	m.acks[s.room.Index] = append(m.acks[s.room.Index], ackRecord{Seq: seq, Sock: s.idx, Ref: ref})
	m.mu.Unlock()
}

func (m *measurement) failed(code string) {
	if code == "rate_limited" {
		m.rateLimited.Add(1)
	} else {
		m.errored.Add(1)
	}
	if code == "" {
		code = "(none)"
	}
	m.mu.Lock()
	if len(m.errCodes) < 32 || m.errCodes[code] > 0 {
		m.errCodes[code]++
	}
	m.mu.Unlock()
}

// roomCount is the per-room input of the loss accounting.
type roomCount struct {
	Acked    int64 // messages acked in the room
	Sockets  int64 // sockets of the room's members open during the measurement
	Received int64 // message events those sockets received
}

// deliveryTotals is the loss accounting of a measurement.
type deliveryTotals struct {
	Expected int64   `json:"expected"`
	Received int64   `json:"received"`
	Lost     int64   `json:"lost"`
	LossPct  float64 `json:"lossPct"`
	Extra    int64   `json:"extra"` // received beyond expected (duplicates, or deliveries of unacked sends)
}

// accountDeliveries sums expected (acked × sockets) and received deliveries per room. A
// room's surplus never hides another room's loss.
func accountDeliveries(rooms []roomCount) deliveryTotals {
	var t deliveryTotals
	for _, r := range rooms {
		exp := r.Acked * r.Sockets
		t.Expected += exp
		t.Received += r.Received
		switch {
		case r.Received < exp:
			t.Lost += exp - r.Received
		case r.Received > exp:
			t.Extra += r.Received - exp
		}
	}
	if t.Expected > 0 {
		t.LossPct = math.Round(float64(t.Lost)/float64(t.Expected)*1e6) / 1e4
	}
	return t
}

// senderSpec is one sending socket and its share of the rate.
type senderSpec struct {
	Sock *sock
	Rate float64
}

// senderPlan spreads a total rate over the rooms that have sockets, and within a room over
// as few sockets as keep each at or under maxPerSender (the first sockets of a room belong
// to distinct users, so senders are spread over users too).
type senderPlan struct {
	Senders   []senderSpec
	RoomRate  float64 // messages/s in each room with sockets
	PerSender []int   // senders per room index
	MaxRate   float64 // the highest total rate these sockets can send within maxPerSender
}

func planSenders(roomSocks [][]*sock, rate, maxPerSender float64) (senderPlan, error) {
	var p senderPlan
	p.PerSender = make([]int, len(roomSocks))
	active := 0
	for _, socks := range roomSocks {
		if len(socks) > 0 {
			active++
			p.MaxRate += float64(len(socks)) * maxPerSender
		}
	}
	if active == 0 {
		return p, fmt.Errorf("no open sockets to send from")
	}
	p.RoomRate = rate / float64(active)
	for r, socks := range roomSocks {
		if len(socks) == 0 {
			continue
		}
		k := int(math.Ceil(p.RoomRate/maxPerSender - 1e-9))
		if k < 1 {
			k = 1
		}
		if k > len(socks) {
			return p, fmt.Errorf("%.0f msg/s needs %d senders in room %d but it has %d sockets "+
				"(at most %.0f msg/s per socket; these sockets allow %.0f msg/s in total)",
				rate, k, r, len(socks), maxPerSender, p.MaxRate)
		}
		p.PerSender[r] = k
		for i := 0; i < k; i++ {
			p.Senders = append(p.Senders, senderSpec{Sock: socks[i], Rate: p.RoomRate / float64(k)})
		}
	}
	return p, nil
}
