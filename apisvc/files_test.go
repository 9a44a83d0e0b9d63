package apisvc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/blob/disk"
	"github.com/themesh/mesh/pkg/mesh"
)

// Bytes no record points to are deleted once older than OrphanGrace; bytes of a file, and
// bytes younger than that (an upload between its two steps), stay.
func TestSweepOrphans(t *testing.T) {
	s := newService(t, Config{})
	blobs, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.blobs = blobs
	ctx := context.Background()
	owner := register(t, s, "o@example.com")
	for _, id := range []string{"ORPHAN", "KEPT"} {
		if _, err := blobs.Put(ctx, id, bytes.NewReader([]byte(id)), 100); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.store.CreateFile(ctx, mesh.File{ID: "KEPT", RoomID: "r", UploaderID: owner.ID, Name: "k", ContentType: "text/plain",
		Size: 4, SHA256: strings.Repeat("0", 64), CreatedAt: mesh.TimeOf(time.Now())}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.sweepOrphans(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("sweep of young bytes: %d deleted, %v", n, err)
	}
	if n, err := s.sweepOrphans(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweep two hours on: %d deleted, %v", n, err)
	}
	if _, _, err := blobs.Open(ctx, "ORPHAN"); !mesh.IsCode(err, mesh.CodeNotFound) {
		t.Fatalf("the orphan is still there: %v", err)
	}
	r, _, err := blobs.Open(ctx, "KEPT")
	if err != nil {
		t.Fatalf("a file's bytes were swept: %v", err)
	}
	r.Close()
}
