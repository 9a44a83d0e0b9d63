package mongo

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/themesh/mesh/internal/testmongo"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var benchIDs atomic.Int64

func benchMessage(roomID string) mesh.Message {
	n := benchIDs.Add(1)
	return mesh.Message{
		ID: fmt.Sprintf("m%012d", n), RoomID: roomID, AuthorID: fmt.Sprint("p", n%10),
		Content: "a message of an ordinary length, about sixty bytes long......", CreatedAt: mesh.Now(),
	}
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	s := openTest(b, testmongo.Shared(b), Options{})
	if _, err := s.CreateRoom(b.Context(), mesh.Room{ID: "r1", Name: "bench", CreatedBy: "p0", CreatedAt: mesh.Now()}); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkCreateMessage measures sending into one room: serially, from 4×GOMAXPROCS
// goroutines at once (all contending for the room's seq, taking turns in the Store), and from
// two Stores at once (as two processes would: their writers collide on the unique index).
func BenchmarkCreateMessage(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		s := benchStore(b)
		for b.Loop() {
			if _, _, err := s.CreateMessage(b.Context(), benchMessage("r1")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := benchStore(b)
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.CreateMessage(b.Context(), benchMessage("r1")); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("two-stores", func(b *testing.B) {
		s := benchStore(b)
		other, err := Open(b.Context(), testmongo.Shared(b).URI(), s.db.Name(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { other.Close() })
		stores := []*Store{s, other}
		var n atomic.Int64
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			st := stores[n.Add(1)%2]
			for pb.Next() {
				if _, _, err := st.CreateMessage(b.Context(), benchMessage("r1")); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkListMessages reads the latest 50 messages of a 2,000-message room in which one
// message in ten has reactions and one in twenty is a whisper. (FerretDB v1 filters in Go,
// scanning the collection, so the figure grows with the collection; MongoDB uses the index.)
func BenchmarkListMessages(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	for i := range 2000 {
		m := benchMessage("r1")
		if i%20 == 0 {
			p := "p1"
			m.To = &p
		}
		m, _, err := s.CreateMessage(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		if i%10 == 0 {
			for _, p := range []string{"p1", "p2", "p3"} {
				if _, _, err := s.AddReaction(ctx, m.ID, "👍", p); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	q := store.MessageQuery{RoomID: "r1", Viewer: "p2"}
	for b.Loop() {
		ms, err := s.ListMessages(ctx, q)
		if err != nil || len(ms) != mesh.DefaultListLimit {
			b.Fatalf("ListMessages = %d messages, %v", len(ms), err)
		}
	}
}

// BenchmarkListThreads reads the 51 latest threads (a page and a look ahead) of a
// 2,000-message room in which one message in ten is a thread's root and three in ten are
// replies (600, to 200 threads), one reply in twenty a whisper. (It reads every reply of the
// room; FerretDB v1 scans the collection for it.)
func BenchmarkListThreads(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	var roots []string
	for i := range 2000 {
		m := benchMessage("r1")
		switch {
		case i%10 == 0:
			roots = append(roots, m.ID)
		case i%10 <= 3:
			root, p := roots[(i*7919)%len(roots)], "p1"
			m.ThreadID = &root
			if i%20 == 1 {
				m.To = &p
			}
		}
		if _, _, err := s.CreateMessage(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	q := store.ThreadQuery{RoomID: "r1", Viewer: "p2", Limit: mesh.DefaultListLimit + 1}
	for b.Loop() {
		ts, err := s.ListThreads(ctx, q)
		if err != nil || len(ts) != mesh.DefaultListLimit+1 {
			b.Fatalf("ListThreads = %d threads, %v", len(ts), err)
		}
	}
}
