package disk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/blob/blobtest"
	"github.com/themesh/mesh/pkg/mesh"
)

func TestStore(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store { return openTest(t, t.TempDir()) })
}

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestLayout: the bytes are in dir/<last two characters>/<id>, folders 0o700, files 0o600.
func TestLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	s := openTest(t, dir)
	for _, id := range []string{"01JABCDEF", "x"} {
		if _, err := s.Put(t.Context(), id, strings.NewReader("hello "+id), 100); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "EF", "01JABCDEF"): "hello 01JABCDEF",
		filepath.Join(dir, "x", "x"):          "hello x",
	} {
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", path, got, err, want)
		}
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", path, info.Mode(), err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "EF")} {
		if info, err := os.Stat(d); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", d, info.Mode(), err)
		}
	}
}

// TestNoTempLeft: failed Puts leave no temporary file behind.
func TestNoTempLeft(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	boom := errors.New("boom")
	if _, err := s.Put(t.Context(), "a1", io.MultiReader(strings.NewReader("some"), errReader{boom}), 100); !errors.Is(err, boom) {
		t.Fatalf("Put: %v", err)
	}
	if _, err := s.Put(t.Context(), "a1", strings.NewReader("too long"), 3); !mesh.IsCode(err, mesh.CodePayloadTooLarge) {
		t.Fatalf("Put: %v", err)
	}
	if _, err := s.Put(t.Context(), "a1", strings.NewReader("ok"), 3); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "a1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "a1" {
		t.Errorf("folder a1 holds %v; want only a1", entries)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestCancelledPut: a Put whose context is done stops reading and stores nothing.
func TestCancelledPut(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(ctx, "c1", strings.NewReader("x"), 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a done context: %v; want %v", err, context.Canceled)
	}
	if _, _, err := s.Open(t.Context(), "c1"); !mesh.IsCode(err, mesh.CodeNotFound) {
		t.Errorf("Open: %v; want not found", err)
	}
}

// TestStaleTemp: Open removes temporary files older than an hour, keeps younger ones (a
// Put of another process may be writing them) and leaves the ids' files alone.
func TestStaleTemp(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.Put(t.Context(), "k1", strings.NewReader("kept"), 10); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "k1", tempPrefix+"old")
	young := filepath.Join(dir, "k1", tempPrefix+"young")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-StaleAfter - time.Minute)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "k1", "k1"), past, past); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dir)
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file: %v; want removed", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temporary file: %v; want kept", err)
	}
	r, n, err := s2.Open(t.Context(), "k1")
	if err != nil || n != 4 {
		t.Fatalf("Open(k1) = %d, %v", n, err)
	}
	r.Close()
}

func TestOpenRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); err == nil {
		t.Error("Open(a file) succeeded")
	}
	if _, err := Open(filepath.Join(file, "below")); err == nil {
		t.Error("Open(below a file) succeeded")
	}
}

// TestPingGone: Ping fails once the folder is gone.
func TestPingGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	s := openTest(t, dir)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping of a removed folder succeeded")
	}
	if _, err := s.Put(t.Context(), "a1", bytes.NewReader(nil), 0); err == nil || mesh.IsCode(err, mesh.CodeBadRequest) {
		t.Errorf("Put into a removed folder: %v; want an internal error", err)
	}
}
