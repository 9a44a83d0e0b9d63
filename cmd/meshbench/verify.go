package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

const (
	verifyPageLimit   = 200
	verifyConcurrency = 4
)

// storeCheck is the result of checking over REST that every acked message was stored.
type storeCheck struct {
	Checked  bool  `json:"checked"`
	Rooms    int   `json:"rooms"`
	Acked    int64 `json:"acked"`    // acked messages with a seq
	Stored   int64 `json:"stored"`   // of those, found at their seq
	Missing  int64 `json:"missing"`  // acked but not found
	Gaps     int64 `json:"gaps"`     // seqs absent between the first and last acked seq
	Repeats  int64 `json:"repeats"`  // stored seqs out of order or repeated
	Mismatch int64 `json:"mismatch"` // found at the acked seq with another clientMsgId
	// Conflicts counts acks that gave the same seq to two different sends.
	Conflicts int64    `json:"conflicts"`
	Errors    []string `json:"errors,omitempty"`
}

// OK reports whether the check ran and found everything in order.
func (c storeCheck) OK() bool {
	return c.Checked && c.Missing == 0 && c.Gaps == 0 && c.Repeats == 0 && c.Mismatch == 0 &&
		c.Conflicts == 0 && len(c.Errors) == 0
}

// seqVerifier checks one room's stored messages, read in pages in seq order, against the
// acks the run received.
type seqVerifier struct {
	want       map[int64]string // acked seq → clientMsgId
	minSeq     int64
	maxSeq     int64
	last       int64 // highest seq read so far
	found      int64
	gaps       int64
	repeats    int64
	mismatch   int64
	conflicts  int64
	seenAcked  map[int64]bool
	totalAcked int64
}

func newSeqVerifier(acks []ackRecord, clientMsgIDOf func(ackRecord) string) *seqVerifier {
	v := &seqVerifier{want: make(map[int64]string, len(acks)), seenAcked: map[int64]bool{}}
	for i, a := range acks {
		id := clientMsgIDOf(a)
		if prev, ok := v.want[a.Seq]; ok {
			if prev != id {
				v.conflicts++
			}
			continue
		}
		v.want[a.Seq] = id
		if i == 0 || a.Seq < v.minSeq {
			v.minSeq = a.Seq
		}
		if a.Seq > v.maxSeq {
			v.maxSeq = a.Seq
		}
	}
	v.totalAcked = int64(len(v.want))
	v.last = v.minSeq - 1
	return v
}

// After is the seq to read after next.
func (v *seqVerifier) After() int64 { return v.last }

// Done reports whether every seq up to the last acked one has been read.
func (v *seqVerifier) Done() bool { return len(v.want) == 0 || v.last >= v.maxSeq }

// Add consumes one page. It reports whether the page moved the check forward.
func (v *seqVerifier) Add(items []storedMessage) (progress bool) {
	for _, it := range items {
		if it.Seq > v.maxSeq {
			if v.last < v.maxSeq {
				v.gaps += v.maxSeq - v.last // the tail of the range is absent
				v.last = v.maxSeq
			}
			return true
		}
		if it.Seq <= v.last {
			v.repeats++
			continue
		}
		progress = true
		if it.Seq > v.last+1 {
			v.gaps += it.Seq - v.last - 1
		}
		v.last = it.Seq
		if id, ok := v.want[it.Seq]; ok && !v.seenAcked[it.Seq] {
			v.seenAcked[it.Seq] = true
			v.found++
			if it.ClientMsgID != nil && *it.ClientMsgID != id {
				v.mismatch++
			}
		}
	}
	return progress
}

// End marks the room as read to the end: the rest of the range is absent.
func (v *seqVerifier) End() {
	if v.last < v.maxSeq && len(v.want) > 0 {
		v.gaps += v.maxSeq - v.last
		v.last = v.maxSeq
	}
}

func (v *seqVerifier) addTo(c *storeCheck) {
	c.Acked += v.totalAcked
	c.Stored += v.found
	c.Missing += v.totalAcked - v.found
	c.Gaps += v.gaps
	c.Repeats += v.repeats
	c.Mismatch += v.mismatch
	c.Conflicts += v.conflicts
}

// verifyStored reads every bench room's messages from the first acked seq on (a few rooms
// at a time), and checks them against acks (per room index).
func verifyStored(ctx context.Context, api *apiClient, token string, rooms []benchRoom, acks [][]ackRecord, run []byte) storeCheck {
	c := storeCheck{Checked: true}
	var mu sync.Mutex
	_ = forEach(ctx, len(acks), verifyConcurrency, func(ctx context.Context, r int) error {
		if len(acks[r]) == 0 {
			return nil
		}
		v, errs := verifyRoom(ctx, api, token, rooms[r], acks[r], run)
		mu.Lock()
		defer mu.Unlock()
		c.Rooms++
		v.addTo(&c)
		c.Errors = append(c.Errors, errs...)
		return nil
	})
	if err := ctx.Err(); err != nil {
		c.Errors = append(c.Errors, "check cut short: "+context.Cause(ctx).Error())
	}
	sort.Strings(c.Errors)
	return c
}

func verifyRoom(ctx context.Context, api *apiClient, token string, room benchRoom, recs []ackRecord, run []byte) (*seqVerifier, []string) {
	var errs []string
	sorted := append([]ackRecord(nil), recs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Seq < sorted[j].Seq })
	v := newSeqVerifier(sorted, func(a ackRecord) string { return clientMsgID(run, a.Sock, a.Ref) })
	maxPages := int((v.maxSeq-v.minSeq)/verifyPageLimit)*2 + 10
	for page := 0; !v.Done(); page++ {
		if page >= maxPages {
			errs = append(errs, fmt.Sprintf("room %s: gave up after %d pages", room.Name, page))
			break
		}
		p, err := api.Messages(ctx, token, room.ID, v.After(), verifyPageLimit)
		if err != nil {
			errs = append(errs, fmt.Sprintf("room %s: %v", room.Name, err))
			break
		}
		if len(p.Items) == 0 {
			v.End()
			break
		}
		if !v.Add(p.Items) && !v.Done() {
			errs = append(errs, fmt.Sprintf("room %s: messages after seq %d: the answer holds nothing newer (is after honoured?)",
				room.Name, v.After()))
			break
		}
	}
	return v, errs
}
