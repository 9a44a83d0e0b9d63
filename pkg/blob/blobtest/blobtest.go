// Package blobtest is the conformance suite of blob.Store: every implementation (disk,
// gridfs) runs it, so that they keep the same semantics. It is written only against package
// blob and checks each sentence of its doc comments, assuming nothing stronger.
//
// Use it from an implementation's tests:
//
//	func TestStore(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) blob.Store {
//			s, err := disk.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package blobtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/mesh"
)

// Sizes the tests use. Chunk is GridFS's chunk size (255 KiB): sizes around its multiples
// catch off-by-one errors in chunked stores, and are harmless for the others.
const (
	KiB   = 1 << 10
	MiB   = 1 << 20
	Chunk = 255 * KiB
	// Large is the size of the multi-megabyte round trip: not a multiple of anything.
	Large = 5*MiB + 123
	// Workers goroutines run at once in the concurrency tests.
	Workers = 8
)

// Run runs the conformance suite: one subtest per rule. newStore must return a new, empty
// store each time it is called (once per leaf test) and close it in t.Cleanup. Leaf tests do
// not call t.Parallel.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// test is one rule of the contract, checked on a fresh store.
type test struct {
	name string
	fn   func(t *testing.T, s blob.Store)
}

var tests = []test{
	// Each calls fn with every id that has bytes stored, until fn returns an error.
	{"Each", func(t *testing.T, s blob.Store) {
		before := time.Now().Add(-2 * time.Second)
		put(t, s, "each1", []byte("one"))
		put(t, s, "each2", randomBytes(2, Chunk+5))
		put(t, s, "each3", nil)
		if err := s.Delete(t.Context(), "each3"); err != nil {
			t.Fatal(err)
		}
		after := time.Now().Add(2 * time.Second)
		got := map[string]int64{}
		err := s.Each(t.Context(), func(i blob.Info) error {
			if i.Stored.Before(before) || i.Stored.After(after) {
				t.Errorf("%s stored at %v, not between %v and %v", i.ID, i.Stored, before, after)
			}
			got[i.ID] = i.Size
			return nil
		})
		if err != nil || len(got) != 2 || got["each1"] != 3 || got["each2"] != Chunk+5 {
			t.Fatalf("Each = %v, %v", got, err)
		}
		stop := errors.New("stop")
		calls := 0
		if err := s.Each(t.Context(), func(blob.Info) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("Each stopped by fn: %v after %d calls", err, calls)
		}
	}},
	// Put stores the bytes read from r (to its EOF) under id and returns their number.
	// Open returns the bytes and their number.
	{"RoundTrip", func(t *testing.T, s blob.Store) {
		for i, size := range []int{0, 1, 1000, Chunk - 1, Chunk, Chunk + 1, 2 * Chunk, Large} {
			id := fmt.Sprintf("rt%d", i)
			data := randomBytes(uint64(i), size)
			put(t, s, id, data)
			expect(t, s, id, data)
		}
	}},
	// "To its EOF" whatever the reader's manner: a byte at a time, half reads, data with EOF.
	{"ReaderKinds", func(t *testing.T, s blob.Store) {
		for _, k := range []struct {
			name string
			size int
			wrap func(io.Reader) io.Reader
		}{
			{"OneByte", 10 * KiB, iotest.OneByteReader},
			{"Half", 3 * Chunk / 2, iotest.HalfReader},
			{"DataErr", 3 * Chunk / 2, iotest.DataErrReader},
			{"Plain", 3 * Chunk / 2, func(r io.Reader) io.Reader { return struct{ io.Reader }{r} }},
		} {
			id := "kind" + k.name
			data := randomBytes(1, k.size)
			n, err := s.Put(t.Context(), id, k.wrap(bytes.NewReader(data)), int64(len(data)))
			if err != nil || n != int64(len(data)) {
				t.Fatalf("Put(%s) = %d, %v; want %d", id, n, err, len(data))
			}
			expect(t, s, id, data)
		}
	}},
	// Exactly max bytes is not more than max.
	{"ExactlyMax", func(t *testing.T, s blob.Store) {
		for _, size := range []int{0, 10, Chunk, 2*Chunk + 7} {
			id := fmt.Sprintf("max%d", size)
			data := randomBytes(2, size)
			n, err := s.Put(t.Context(), id, bytes.NewReader(data), int64(size))
			if err != nil || n != int64(size) {
				t.Fatalf("Put(%d bytes, max %d) = %d, %v; want it stored", size, size, n, err)
			}
			expect(t, s, id, data)
		}
	}},
	// More than max bytes is CodePayloadTooLarge, and nothing is left stored under id.
	{"OverMax", func(t *testing.T, s blob.Store) {
		for _, c := range []struct{ size, max int }{
			{1, 0}, {11, 10}, {Chunk + 1, Chunk}, {2*Chunk + 8, 2*Chunk + 7}, {Large, MiB},
		} {
			id := fmt.Sprintf("over%dmax%d", c.size, c.max)
			_, err := s.Put(t.Context(), id, bytes.NewReader(randomBytes(3, c.size)), int64(c.max))
			var e *mesh.Error
			if !errors.As(err, &e) || e.Code != mesh.CodePayloadTooLarge {
				t.Fatalf("Put(%d bytes, max %d): %v; want %s", c.size, c.max, err, mesh.CodePayloadTooLarge)
			}
			if got := e.Details["maxBytes"]; got != int64(c.max) {
				t.Errorf("Put(%d bytes, max %d): details maxBytes = %v", c.size, c.max, got)
			}
			expectNotFound(t, s, id)
		}
	}},
	// A reader that goes on for ever is stopped at max (Put does not read it all).
	{"OverMaxEndless", func(t *testing.T, s blob.Store) {
		_, err := s.Put(t.Context(), "endless", endless{}, 3*Chunk)
		if !mesh.IsCode(err, mesh.CodePayloadTooLarge) {
			t.Fatalf("Put(endless): %v; want %s", err, mesh.CodePayloadTooLarge)
		}
		expectNotFound(t, s, "endless")
	}},
	// A read error from r is returned as it is, and nothing is left stored under id.
	{"ReaderError", func(t *testing.T, s blob.Store) {
		for _, after := range []int{0, 100, Chunk, 2*Chunk + 100} {
			id := fmt.Sprintf("readerr%d", after)
			boom := fmt.Errorf("boom after %d", after)
			r := io.MultiReader(bytes.NewReader(randomBytes(4, after)), iotest.ErrReader(boom))
			if _, err := s.Put(t.Context(), id, r, 10*MiB); !errors.Is(err, boom) {
				t.Fatalf("Put(error after %d bytes): %v; want %v", after, err, boom)
			}
			expectNotFound(t, s, id)
		}
	}},
	// io.ErrUnexpectedEOF from r is a read error like any other (a cut upload), not an end.
	{"ReaderUnexpectedEOF", func(t *testing.T, s blob.Store) {
		r := io.MultiReader(bytes.NewReader(randomBytes(5, Chunk/2)), iotest.ErrReader(io.ErrUnexpectedEOF))
		if _, err := s.Put(t.Context(), "cut", r, 10*MiB); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Put(cut): %v; want %v", err, io.ErrUnexpectedEOF)
		}
		expectNotFound(t, s, "cut")
	}},
	// A failed Put under an existing id leaves nothing of its own: the bytes stored before are
	// still there, whole (what "nothing is left stored" means for an id that had bytes).
	{"FailedPutKeepsOld", func(t *testing.T, s blob.Store) {
		old := randomBytes(6, Chunk+10)
		put(t, s, "f1", old)
		if _, err := s.Put(t.Context(), "f1", bytes.NewReader(randomBytes(7, 3*Chunk)), 2*Chunk); !mesh.IsCode(err, mesh.CodePayloadTooLarge) {
			t.Fatalf("Put(too large): %v", err)
		}
		expect(t, s, "f1", old)
		boom := errors.New("boom")
		r := io.MultiReader(bytes.NewReader(randomBytes(8, 2*Chunk)), iotest.ErrReader(boom))
		if _, err := s.Put(t.Context(), "f1", r, 10*MiB); !errors.Is(err, boom) {
			t.Fatalf("Put(reader error): %v", err)
		}
		expect(t, s, "f1", old)
	}},
	// A Put under an existing id replaces the bytes whole: shorter and longer.
	{"Replace", func(t *testing.T, s blob.Store) {
		for i, size := range []int{3*Chunk + 5, 10, 0, 2 * Chunk, Chunk - 3, Large} {
			data := randomBytes(uint64(10+i), size)
			put(t, s, "r1", data)
			expect(t, s, "r1", data)
		}
	}},
	// Until Put returns, Open does not see the new bytes: neither for a new id nor over old
	// bytes. The upload is held half way through a pipe while Open looks.
	{"InvisibleUntilPut", func(t *testing.T, s blob.Store) {
		old := randomBytes(20, Chunk+1)
		put(t, s, "old1", old)
		for _, c := range []struct {
			id  string
			old []byte // nil: a new id
		}{{"new1", nil}, {"old1", old}} {
			data := randomBytes(21, 3*Chunk)
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				n, err := s.Put(t.Context(), c.id, pr, int64(len(data)))
				if err == nil && n != int64(len(data)) {
					err = fmt.Errorf("returned %d, want %d", n, len(data))
				}
				pr.CloseWithError(errors.New("put returned")) // so that no Write waits for ever
				done <- err
			}()
			// Once Write returns, Put has read these bytes (past a chunk).
			if _, err := pw.Write(data[:2*Chunk]); err != nil {
				t.Fatalf("Put(%s) ended before its EOF: %v", c.id, <-done)
			}
			if c.old == nil {
				expectNotFound(t, s, c.id)
			} else {
				expect(t, s, c.id, c.old)
			}
			if _, err := pw.Write(data[2*Chunk:]); err != nil {
				t.Fatalf("Put(%s) ended before its EOF: %v", c.id, <-done)
			}
			if c.old == nil {
				expectNotFound(t, s, c.id)
			} else {
				expect(t, s, c.id, c.old)
			}
			pw.Close()
			if err := <-done; err != nil {
				t.Fatalf("Put(%s): %v", c.id, err)
			}
			expect(t, s, c.id, data)
		}
	}},
	// Open: CodeNotFound for an unknown id.
	{"OpenUnknown", func(t *testing.T, s blob.Store) {
		expectNotFound(t, s, "nothing")
		put(t, s, "some1", []byte("x"))
		expectNotFound(t, s, "some2") // not a prefix match, nor a neighbour
		expectNotFound(t, s, "some")
	}},
	// Ids are distinct however alike: the same ending, a prefix of another, one character.
	{"DistinctIDs", func(t *testing.T, s blob.Store) {
		ids := []string{"a", "b", "ab", "xab", "yab", "abc", "a1", "1", strings.Repeat("z", 64), strings.Repeat("z", 63)}
		for i, id := range ids {
			put(t, s, id, randomBytes(uint64(30+i), 100+i))
		}
		for i, id := range ids {
			expect(t, s, id, randomBytes(uint64(30+i), 100+i))
		}
	}},
	// Delete removes the bytes; the id may be used again.
	{"Delete", func(t *testing.T, s blob.Store) {
		data := randomBytes(40, 2*Chunk+1)
		put(t, s, "d1", data)
		put(t, s, "d2", data)
		if err := s.Delete(t.Context(), "d1"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		expectNotFound(t, s, "d1")
		expect(t, s, "d2", data)
		again := randomBytes(41, 10)
		put(t, s, "d1", again)
		expect(t, s, "d1", again)
	}},
	// Delete: an unknown id is not an error (nor one deleted already).
	{"DeleteUnknown", func(t *testing.T, s blob.Store) {
		if err := s.Delete(t.Context(), "unknown"); err != nil {
			t.Fatalf("Delete(unknown): %v", err)
		}
		put(t, s, "d1", []byte("x"))
		for range 2 {
			if err := s.Delete(t.Context(), "d1"); err != nil {
				t.Fatalf("Delete(d1): %v", err)
			}
		}
		expectNotFound(t, s, "d1")
	}},
	// An id that is not 1 to 64 ASCII letters and digits is CodeBadRequest, for every
	// method, and Put stores nothing.
	{"BadIDs", func(t *testing.T, s blob.Store) {
		ctx := t.Context()
		for _, id := range []string{
			"", "../x", "a/b", `a\b`, strings.Repeat("a", 65), "é", "aé", "a b", ".", "..", ".tmp-x",
			"a.b", "a-b", "a_b", "a\x00", "a\n", "ａ", "٣",
		} {
			if _, err := s.Put(ctx, id, strings.NewReader("x"), 10); !mesh.IsCode(err, mesh.CodeBadRequest) {
				t.Errorf("Put(%q): %v; want %s", id, err, mesh.CodeBadRequest)
			}
			if r, _, err := s.Open(ctx, id); !mesh.IsCode(err, mesh.CodeBadRequest) {
				if r != nil {
					r.Close()
				}
				t.Errorf("Open(%q): %v; want %s", id, err, mesh.CodeBadRequest)
			}
			if err := s.Delete(ctx, id); !mesh.IsCode(err, mesh.CodeBadRequest) {
				t.Errorf("Delete(%q): %v; want %s", id, err, mesh.CodeBadRequest)
			}
		}
		// The limits themselves are good ids.
		for _, id := range []string{"a", "Z", "0", strings.Repeat("A1", 32)} {
			put(t, s, id, []byte(id))
			expect(t, s, id, []byte(id))
		}
	}},
	// Puts of different ids at once all keep their own bytes.
	{"ConcurrentPuts", func(t *testing.T, s blob.Store) {
		const per = 2
		size := func(w, i int) int { return (w*per + i) * Chunk / 6 } // 0 to 2.5 chunks
		var wg sync.WaitGroup
		for w := range Workers {
			wg.Go(func() {
				for i := range per {
					id := fmt.Sprintf("w%dn%d", w, i)
					data := randomBytes(uint64(100+w*per+i), size(w, i))
					n, err := s.Put(t.Context(), id, bytes.NewReader(data), int64(len(data)))
					if err != nil || n != int64(len(data)) {
						t.Errorf("Put(%s) = %d, %v", id, n, err)
					}
				}
			})
		}
		wg.Wait()
		for w := range Workers {
			for i := range per {
				expect(t, s, fmt.Sprintf("w%dn%d", w, i), randomBytes(uint64(100+w*per+i), size(w, i)))
			}
		}
	}},
	// Puts of one id at once: the id ends with one of them, whole.
	{"ConcurrentPutsOneID", func(t *testing.T, s blob.Store) {
		payloads := make([][]byte, Workers)
		for w := range payloads {
			payloads[w] = randomBytes(uint64(200+w), Chunk+w*KiB)
		}
		var wg sync.WaitGroup
		for w := range Workers {
			wg.Go(func() {
				for range 3 {
					if _, err := s.Put(t.Context(), "same", bytes.NewReader(payloads[w]), MiB); err != nil {
						t.Errorf("Put: %v", err)
					}
				}
			})
		}
		wg.Wait()
		expectOneOf(t, s, "same", payloads)
	}},
	// While a Put replaces the bytes, Open sees the old bytes or the new, whole, never a mix.
	{"OpenWhileReplacing", func(t *testing.T, s blob.Store) {
		payloads := [][]byte{randomBytes(300, 2*Chunk+100), randomBytes(301, 3*Chunk-100)}
		put(t, s, "flip", payloads[0])
		const puts = 20
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(stop)
			for i := range puts {
				data := payloads[(i+1)%2]
				if _, err := s.Put(t.Context(), "flip", bytes.NewReader(data), MiB); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
		var reads [2]int
		var mu sync.Mutex
		for range Workers - 1 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if i := readOneOf(t, s, "flip", payloads); i >= 0 {
						mu.Lock()
						reads[i]++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		t.Logf("reads of the two versions while replacing: %v", reads)
		expectOneOf(t, s, "flip", payloads[:1]) // puts is even: the first is last
	}},
	// A reader opened before a Put replaces the bytes reads them whole, old or new. The old
	// bytes are more than one batch of a MongoDB cursor (16 MiB), so that a store that
	// removed them at once would be caught mid-read.
	{"ReaderOpenAcrossReplace", func(t *testing.T, s blob.Store) {
		payloads := [][]byte{randomBytes(310, 17*MiB+1), randomBytes(311, 2*Chunk+2)}
		put(t, s, "held", payloads[0])
		r, n, err := s.Open(t.Context(), "held")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		first := make([]byte, 10)
		if _, err := io.ReadFull(r, first); err != nil {
			t.Fatal(err)
		}
		put(t, s, "held", payloads[1])
		rest, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading on across a replace: %v", err)
		}
		got := append(first, rest...)
		if int64(len(got)) != n || (!bytes.Equal(got, payloads[0]) && !bytes.Equal(got, payloads[1])) {
			t.Fatalf("read %d bytes (Open said %d): neither version whole", len(got), n)
		}
		expect(t, s, "held", payloads[1])
	}},
	// Open's reader closes.
	{"ReaderCloses", func(t *testing.T, s blob.Store) {
		put(t, s, "c1", randomBytes(50, 2*Chunk))
		r, _, err := s.Open(t.Context(), "c1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close after a partial read: %v", err)
		}
	}},
	// Ping answers whether the storage answers.
	{"Ping", func(t *testing.T, s blob.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
}

// randomBytes returns size bytes that depend only on seed and size.
func randomBytes(seed uint64, size int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	key[2], key[3], key[4] = byte(size), byte(size>>8), byte(size>>16)
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// endless is a reader without an end.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func put(t *testing.T, s blob.Store, id string, data []byte) {
	t.Helper()
	n, err := s.Put(t.Context(), id, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", id, len(data), err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put(%s, %d bytes) returned %d", id, len(data), n)
	}
}

// read opens id and reads it all, checking the number Open gave.
func read(t *testing.T, s blob.Store, id string) ([]byte, error) {
	t.Helper()
	r, n, err := s.Open(t.Context(), id)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if int64(len(got)) != n {
		return nil, fmt.Errorf("opened as %d bytes, read %d", n, len(got))
	}
	return got, nil
}

func expect(t *testing.T, s blob.Store, id string, want []byte) {
	t.Helper()
	got, err := read(t, s, id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("Open(%s): %d bytes, not the %d stored", id, len(got), len(want))
	}
}

// readOneOf reads id and returns which of payloads it was (failing the test, and returning
// -1, if none whole).
func readOneOf(t *testing.T, s blob.Store, id string, payloads [][]byte) int {
	t.Helper()
	got, err := read(t, s, id)
	if err != nil {
		t.Errorf("Open(%s): %v", id, err)
		return -1
	}
	for i, p := range payloads {
		if bytes.Equal(got, p) {
			return i
		}
	}
	t.Errorf("Open(%s): %d bytes, none of the versions whole", id, len(got))
	return -1
}

func expectOneOf(t *testing.T, s blob.Store, id string, payloads [][]byte) {
	t.Helper()
	if readOneOf(t, s, id, payloads) < 0 {
		t.FailNow()
	}
}

func expectNotFound(t *testing.T, s blob.Store, id string) {
	t.Helper()
	r, n, err := s.Open(t.Context(), id)
	if err == nil {
		r.Close()
		t.Fatalf("Open(%s) = %d bytes; want %s", id, n, mesh.CodeNotFound)
	}
	if !mesh.IsCode(err, mesh.CodeNotFound) {
		t.Fatalf("Open(%s): %v; want %s", id, err, mesh.CodeNotFound)
	}
}
