package sqlite

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

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
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "mesh.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.CreateRoom(b.Context(), mesh.Room{ID: "r1", Name: "bench", CreatedBy: "p0", CreatedAt: mesh.Now()}); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkCreateMessage measures sending into one room: serially, and from 4×GOMAXPROCS
// goroutines at once (all contending for the room's seq), as a busy server would.
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
}

// BenchmarkListMessages reads the latest 50 messages of a 10,000-message room in which one
// message in ten has reactions and one in twenty is a whisper.
func BenchmarkListMessages(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	for i := range 10_000 {
		m := benchMessage("r1")
		if i%20 == 0 {
			m.To = ptr("p1")
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
	check := func(ms []mesh.Message, err error) bool {
		if err != nil || len(ms) != mesh.DefaultListLimit {
			b.Errorf("ListMessages = %d messages, %v", len(ms), err)
			return false
		}
		return true
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if !check(s.ListMessages(ctx, q)) {
				return
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !check(s.ListMessages(ctx, q)) {
					return
				}
			}
		})
	})
}

// BenchmarkMixed has 4×GOMAXPROCS goroutines send one message for every nine latest-50
// reads: the read pool lets reads go on while the writer commits.
func BenchmarkMixed(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	for range 1000 {
		if _, _, err := s.CreateMessage(ctx, benchMessage("r1")); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var err error
			if n.Add(1)%10 == 0 {
				_, _, err = s.CreateMessage(ctx, benchMessage("r1"))
			} else {
				_, err = s.ListMessages(ctx, store.MessageQuery{RoomID: "r1", Viewer: "p1"})
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkListThreads reads the 51 latest threads (a page and a look ahead) of a
// 10,000-message room in which one message in ten is a thread's root and three in ten are
// replies (3,000, to 1,000 threads), one reply in twenty a whisper.
func BenchmarkListThreads(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	fillThreads(b, s, 10_000)
	q := store.ThreadQuery{RoomID: "r1", Viewer: "p2", Limit: mesh.DefaultListLimit + 1}
	for b.Loop() {
		ts, err := s.ListThreads(ctx, q)
		if err != nil || len(ts) != mesh.DefaultListLimit+1 {
			b.Fatalf("ListThreads = %d threads, %v", len(ts), err)
		}
	}
}

// fillThreads sends n messages into r1: one in ten a root, three in ten replies to the roots
// sent so far (spread over them), one reply in twenty a whisper.
func fillThreads(b *testing.B, s store.Store, n int) {
	b.Helper()
	var roots []string
	for i := range n {
		m := benchMessage("r1")
		switch {
		case i%10 == 0:
			roots = append(roots, m.ID)
		case i%10 <= 3:
			m.ThreadID = ptr(roots[(i*7919)%len(roots)])
			if i%20 == 1 {
				m.To = ptr("p1")
			}
		}
		if _, _, err := s.CreateMessage(b.Context(), m); err != nil {
			b.Fatal(err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
