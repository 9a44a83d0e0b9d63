// Package blob holds uploaded files' bytes. Records of files (who uploaded what, for which
// room) are the store's; this package only keeps bytes under the IDs the API service makes.
// The gateway streams uploads into a Store and downloads out of it, so file bytes never cross
// the bus. Implementations: disk (a folder next to the SQLite file, for a single node or
// processes sharing one disk) and gridfs (MongoDB's GridFS, reachable by every node of a
// cluster). blobtest is the conformance suite both pass.
package blob

import (
	"context"
	"io"
	"regexp"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
)

// Store keeps bytes under IDs. IDs are made by the server (ULIDs), never taken from a file's
// name: an ID that is not 1 to 64 ASCII letters and digits is CodeBadRequest.
type Store interface {
	// Put stores the bytes read from r (to its EOF) under id and returns their number. More
	// than max bytes is CodePayloadTooLarge; a read error from r is returned as it is. Either
	// way nothing of these bytes is stored: what id held before stays. Until Put returns, Open does not see the new
	// bytes; a Put under an existing id replaces them whole.
	Put(ctx context.Context, id string, r io.Reader, max int64) (int64, error)
	// Open returns the bytes and their number; CodeNotFound for an unknown id. The caller
	// closes the reader.
	Open(ctx context.Context, id string) (io.ReadCloser, int64, error)
	// Delete removes the bytes; an unknown id is not an error.
	Delete(ctx context.Context, id string) error
	// Each calls fn with every id that has bytes stored, in no particular order, until fn
	// returns an error, which Each returns. Ids stored or deleted meanwhile may or may not be
	// seen. (The API service uses it to find bytes no file record points to.)
	Each(ctx context.Context, fn func(Info) error) error
	// Ping answers whether the storage answers (for readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Info is what Each tells of an id's bytes.
type Info struct {
	ID   string
	Size int64
	// Stored is about when the bytes were stored: between the start and the end of their Put.
	Stored time.Time
}

var validID = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)

// CheckID is CodeBadRequest for an id that is not 1 to 64 ASCII letters and digits.
func CheckID(id string) error {
	if !validID.MatchString(id) {
		return mesh.Errorf(mesh.CodeBadRequest, "bad file id")
	}
	return nil
}

// TooLarge is the error of a Put past its max.
func TooLarge(max int64) error {
	return mesh.Errorf(mesh.CodePayloadTooLarge, "the file is larger than %d bytes", max).
		WithDetails(map[string]any{"maxBytes": max})
}

// LimitReader reads r and fails with TooLarge once more than max bytes came.
func LimitReader(r io.Reader, max int64) io.Reader { return &limited{r: r, left: max, max: max} }

type limited struct {
	r         io.Reader
	left, max int64
}

func (l *limited) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, TooLarge(l.max)
	}
	return n, err
}
