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
