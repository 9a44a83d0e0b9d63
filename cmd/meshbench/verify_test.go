package main

import (
	"strconv"
	"testing"
)

func acksFor(seqs ...int64) []ackRecord {
	out := make([]ackRecord, len(seqs))
	for i, s := range seqs {
		out[i] = ackRecord{Seq: s, Sock: 1, Ref: uint64(s)}
	}
	return out
}

func idOf(a ackRecord) string { return "c" + strconv.FormatUint(a.Ref, 10) }

func stored(seqs ...int64) []storedMessage {
	out := make([]storedMessage, len(seqs))
	for i, s := range seqs {
		id := "c" + strconv.FormatInt(s, 10)
		out[i] = storedMessage{Seq: s, ClientMsgID: &id}
	}
	return out
}

func TestSeqVerifier(t *testing.T) {
	other := "someone-else"
	tests := []struct {
		name  string
		acks  []ackRecord
		pages [][]storedMessage
		end   bool // the server answers an empty page after the pages
		want  storeCheck
	}{
		{
			name:  "all stored, one page",
			acks:  acksFor(5, 6, 7, 8),
			pages: [][]storedMessage{stored(5, 6, 7, 8, 9)},
			want:  storeCheck{Acked: 4, Stored: 4},
		},
		{
			name:  "all stored over pages, with other messages between",
			acks:  acksFor(10, 12, 15),
			pages: [][]storedMessage{stored(10, 11), stored(12, 13, 14), stored(15)},
			want:  storeCheck{Acked: 3, Stored: 3},
		},
		{
			name:  "a gap in the middle hides an acked message",
			acks:  acksFor(1, 2, 3, 4),
			pages: [][]storedMessage{stored(1, 2, 4)},
			want:  storeCheck{Acked: 4, Stored: 3, Missing: 1, Gaps: 1},
		},
		{
			name:  "the tail is missing",
			acks:  acksFor(1, 2, 3, 4, 5),
			pages: [][]storedMessage{stored(1, 2)},
			end:   true,
			want:  storeCheck{Acked: 5, Stored: 2, Missing: 3, Gaps: 3},
		},
		{
			name:  "a gap of unacked seqs still counts as a gap",
			acks:  acksFor(1, 9),
			pages: [][]storedMessage{stored(1, 2, 3, 8, 9)},
			want:  storeCheck{Acked: 2, Stored: 2, Gaps: 4},
		},
		{
			name:  "repeated and out-of-order seqs",
			acks:  acksFor(1, 2, 3),
			pages: [][]storedMessage{stored(1, 2, 2, 1, 3)},
			want:  storeCheck{Acked: 3, Stored: 3, Repeats: 2},
		},
		{
			name: "another message stored at an acked seq",
			acks: acksFor(1, 2),
			pages: [][]storedMessage{{
				{Seq: 1, ClientMsgID: &other}, stored(2)[0],
			}},
			want: storeCheck{Acked: 2, Stored: 2, Mismatch: 1},
		},
		{
			name:  "no clientMsgId in the store is not a mismatch",
			acks:  acksFor(3),
			pages: [][]storedMessage{{{Seq: 3}}},
			want:  storeCheck{Acked: 1, Stored: 1},
		},
		{
			name:  "two sends acked with one seq",
			acks:  []ackRecord{{Seq: 4, Sock: 1, Ref: 4}, {Seq: 4, Sock: 1, Ref: 5}, {Seq: 5, Sock: 1, Ref: 5}},
			pages: [][]storedMessage{stored(4, 5)},
			want:  storeCheck{Acked: 2, Stored: 2, Conflicts: 1},
		},
		{
			name:  "a page past the range ends the check",
			acks:  acksFor(1, 2, 3),
			pages: [][]storedMessage{stored(1, 7)},
			want:  storeCheck{Acked: 3, Stored: 1, Missing: 2, Gaps: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newSeqVerifier(tt.acks, idOf)
			for _, p := range tt.pages {
				if v.Done() {
					t.Fatalf("done before page %v", p)
				}
				v.Add(p)
			}
			if tt.end {
				v.End()
			}
			if !v.Done() {
				t.Fatalf("not done after all pages (last %d, max %d)", v.last, v.maxSeq)
			}
			var got storeCheck
			v.addTo(&got)
			if got.Acked != tt.want.Acked || got.Stored != tt.want.Stored || got.Missing != tt.want.Missing ||
				got.Gaps != tt.want.Gaps || got.Repeats != tt.want.Repeats || got.Mismatch != tt.want.Mismatch ||
				got.Conflicts != tt.want.Conflicts {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSeqVerifierAfter(t *testing.T) {
	v := newSeqVerifier(acksFor(40, 41, 42), idOf)
	if v.After() != 39 {
		t.Fatalf("first after = %d, want 39", v.After())
	}
	if !v.Add(stored(40)) || v.After() != 40 {
		t.Fatalf("after one message: progress false or after %d", v.After())
	}
	if v.Add(stored(39, 40)) {
		t.Fatal("a page of old seqs reported progress")
	}
	if v.Done() {
		t.Fatal("done too early")
	}
}

func TestAccountDeliveries(t *testing.T) {
	tests := []struct {
		name  string
		rooms []roomCount
		want  deliveryTotals
	}{
		{"nothing", nil, deliveryTotals{}},
		{
			"all delivered",
			[]roomCount{{Acked: 10, Sockets: 5, Received: 50}, {Acked: 3, Sockets: 2, Received: 6}},
			deliveryTotals{Expected: 56, Received: 56},
		},
		{
			"loss in one room",
			[]roomCount{{Acked: 100, Sockets: 4, Received: 399}, {Acked: 1, Sockets: 1, Received: 1}},
			deliveryTotals{Expected: 401, Received: 400, Lost: 1, LossPct: 0.2494},
		},
		{
			"a surplus in one room does not hide loss in another",
			[]roomCount{{Acked: 10, Sockets: 1, Received: 12}, {Acked: 10, Sockets: 1, Received: 8}},
			deliveryTotals{Expected: 20, Received: 20, Lost: 2, LossPct: 10, Extra: 2},
		},
		{
			"a room without sockets expects nothing",
			[]roomCount{{Acked: 10, Sockets: 0, Received: 0}},
			deliveryTotals{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := accountDeliveries(tt.rooms); got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPlanSenders(t *testing.T) {
	mk := func(n, base int) []*sock {
		out := make([]*sock, n)
		for i := range out {
			out[i] = &sock{idx: base + i}
		}
		return out
	}
	t.Run("one sender per room at low rates", func(t *testing.T) {
		p, err := planSenders([][]*sock{mk(10, 0), mk(10, 10)}, 100, 150)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Senders) != 2 || p.RoomRate != 50 || p.Senders[0].Rate != 50 || p.Senders[1].Sock.idx != 10 {
			t.Fatalf("plan %+v", p)
		}
	})
	t.Run("more senders above the per-socket rate", func(t *testing.T) {
		p, err := planSenders([][]*sock{mk(10, 0)}, 1000, 150)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Senders) != 7 {
			t.Fatalf("%d senders, want 7", len(p.Senders))
		}
		total := 0.0
		for i, s := range p.Senders {
			if s.Rate > 150 {
				t.Fatalf("sender %d at %v/s", i, s.Rate)
			}
			if s.Sock.idx != i {
				t.Fatalf("sender %d is socket %d, want the room's first sockets", i, s.Sock.idx)
			}
			total += s.Rate
		}
		if total < 999.999 || total > 1000.001 {
			t.Fatalf("total %v", total)
		}
	})
	t.Run("exactly at the limit", func(t *testing.T) {
		p, err := planSenders([][]*sock{mk(2, 0)}, 300, 150)
		if err != nil || len(p.Senders) != 2 {
			t.Fatalf("err %v, %d senders", err, len(p.Senders))
		}
	})
	t.Run("rooms without sockets are skipped", func(t *testing.T) {
		p, err := planSenders([][]*sock{nil, mk(3, 0), nil}, 90, 150)
		if err != nil || len(p.Senders) != 1 || p.RoomRate != 90 || p.PerSender[1] != 1 {
			t.Fatalf("err %v plan %+v", err, p)
		}
	})
	t.Run("too few sockets", func(t *testing.T) {
		p, err := planSenders([][]*sock{mk(2, 0)}, 301, 150)
		if err == nil {
			t.Fatal("301/s from 2 sockets at 150/s accepted")
		}
		if p.MaxRate != 300 {
			t.Fatalf("max rate %v, want 300", p.MaxRate)
		}
	})
	t.Run("no sockets", func(t *testing.T) {
		if _, err := planSenders([][]*sock{nil}, 1, 150); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestStepVerdict(t *testing.T) {
	good := fanoutResult{TargetRate: 100, SendRate: 99.5, Latency: latencySummary{P99Ms: 20}}
	if ok, why := stepVerdict(&good, 100e6); !ok {
		t.Fatalf("good step failed: %s", why)
	}
	tests := []struct {
		name string
		mod  func(*fanoutResult)
	}{
		{"loss", func(r *fanoutResult) { r.Deliveries.Lost = 1 }},
		{"p99", func(r *fanoutResult) { r.Latency.P99Ms = 100.5 }},
		{"errors", func(r *fanoutResult) { r.Errored = 1 }},
		{"rate limited", func(r *fanoutResult) { r.RateLimited = 1 }},
		{"unacked", func(r *fanoutResult) { r.Unacked = 1 }},
		{"disconnect", func(r *fanoutResult) { r.Disconnects = 1 }},
		{"write error", func(r *fanoutResult) { r.WriteErrors = 1 }},
		{"slow sending", func(r *fanoutResult) { r.SendRate = 80 }},
		{"skipped", func(r *fanoutResult) { r.Skipped = 3 }},
	}
	for _, tt := range tests {
		r := good
		tt.mod(&r)
		if ok, why := stepVerdict(&r, 100e6); ok || why == "" {
			t.Errorf("%s: passed (%q)", tt.name, why)
		}
	}
}
