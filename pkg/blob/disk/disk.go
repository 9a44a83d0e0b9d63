// Package disk is the blob.Store of a folder: one file per id, for a single node or for
// processes sharing one disk.
package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/mesh"
)

var _ blob.Store = (*Store)(nil)

// tempPrefix starts the names of the files being written. A '.' and a '-' are never in an
// id, so no id can name a temporary file.
const tempPrefix = ".tmp-"

// StaleAfter is the age past which Open removes a temporary file: one left by a Put that
// crashed (a Put still running, in this or another process, is younger than that).
const StaleAfter = time.Hour

// Store keeps each id's bytes in the file dir/<the id's last two characters>/<id> (the
// subfolders keep any one folder small). It is safe for concurrent use, by several
// processes too.
//
// Put writes a temporary file in the id's folder, syncs it, renames it over the id's file and
// syncs the folder: a rename is atomic, so Open sees the old file or the new one, whole, and
// after a crash the file is the old or the new, never a part. An open reader keeps reading
// the file it opened, even once it is replaced or deleted.
//
// Ids differing only in case name the same file on a case-insensitive file system (macOS,
// Windows by default); the server's ids (ULIDs) are upper case, so they never do.
type Store struct {
	dir string
	now func() time.Time
}

// Open opens the store in dir, creating the folder (0o700) if needed, and removes the
// temporary files older than StaleAfter.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir, now: time.Now}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk: open: %w", err)
	}
	if err := s.removeStale(); err != nil {
		return nil, fmt.Errorf("disk: open: %w", err)
	}
	return s, nil
}

// removeStale removes the temporary files, in the folders of ids, older than StaleAfter.
func (s *Store) removeStale() error {
	subs, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if !sub.IsDir() || blob.CheckID(sub.Name()) != nil {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.dir, sub.Name()))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), tempPrefix) {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // renamed or removed since
			}
			if err != nil {
				return err
			}
			if s.now().Sub(info.ModTime()) > StaleAfter {
				err := os.Remove(filepath.Join(s.dir, sub.Name(), e.Name()))
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		}
	}
	return nil
}

// folder is the folder of id's file.
func (s *Store) folder(id string) string {
	return filepath.Join(s.dir, id[max(0, len(id)-2):])
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, id string, r io.Reader, limit int64) (int64, error) {
	if err := blob.CheckID(id); err != nil {
		return 0, err
	}
	folder := s.folder(id)
	if err := s.makeFolder(folder); err != nil {
		return 0, fmt.Errorf("disk: put %s: %w", id, err)
	}
	f, err := os.CreateTemp(folder, tempPrefix+"*")
	if err != nil {
		return 0, fmt.Errorf("disk: put %s: %w", id, err)
	}
	n, err := s.write(ctx, f, id, r, limit)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return 0, err
	}
	return n, nil
}

// write fills f from r and puts it in place of id's file; f is closed on success.
func (s *Store) write(ctx context.Context, f *os.File, id string, r io.Reader, limit int64) (int64, error) {
	w := &fileWriter{f: f}
	n, err := io.Copy(w, blob.LimitReader(ctxReader{ctx, r}, limit))
	if w.err != nil {
		return 0, fmt.Errorf("disk: put %s: %w", id, w.err)
	}
	if err != nil {
		return 0, err // the reader's error (or TooLarge), as it is
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("disk: put %s: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("disk: put %s: %w", id, err)
	}
	folder := filepath.Dir(f.Name())
	if err := os.Rename(f.Name(), filepath.Join(folder, id)); err != nil {
		return 0, fmt.Errorf("disk: put %s: %w", id, err)
	}
	if err := syncDir(folder); err != nil {
		return 0, fmt.Errorf("disk: put %s: %w", id, err)
	}
	return n, nil
}

// makeFolder makes an id's folder if it is not there yet, and syncs the store's folder so
// that the new folder survives a crash.
func (s *Store) makeFolder(folder string) error {
	if _, err := os.Stat(folder); err == nil {
		return nil
	}
	if err := os.Mkdir(folder, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileWriter writes to f and keeps its error, to tell it from the reader's.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Open implements blob.Store: the reader is the *os.File.
func (s *Store) Open(_ context.Context, id string) (io.ReadCloser, int64, error) {
	if err := blob.CheckID(id); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(filepath.Join(s.folder(id), id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, mesh.Errorf(mesh.CodeNotFound, "no such file")
	}
	if err != nil {
		return nil, 0, fmt.Errorf("disk: open %s: %w", id, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("disk: open %s: %w", id, err)
	}
	return f, info.Size(), nil
}

// Delete implements blob.Store.
func (s *Store) Delete(_ context.Context, id string) error {
	if err := blob.CheckID(id); err != nil {
		return err
	}
	folder := s.folder(id)
	err := os.Remove(filepath.Join(folder, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(folder)
	}
	if err != nil {
		return fmt.Errorf("disk: delete %s: %w", id, err)
	}
	return nil
}

// Each implements blob.Store: the files of the id folders, their modification time as Stored
// (a Put's rename keeps the time its temporary file was last written).
func (s *Store) Each(ctx context.Context, fn func(blob.Info) error) error {
	subs, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("disk: each: %w", err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || blob.CheckID(sub.Name()) != nil {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.dir, sub.Name()))
		if err != nil {
			return fmt.Errorf("disk: each: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() || blob.CheckID(e.Name()) != nil {
				continue // temporary files (".tmp-...") and strangers
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since
			}
			if err != nil {
				return fmt.Errorf("disk: each: %w", err)
			}
			if err := fn(blob.Info{ID: e.Name(), Size: info.Size(), Stored: info.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ping implements blob.Store: the folder is there and is a folder.
func (s *Store) Ping(context.Context) error {
	info, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("disk: ping: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("disk: ping: %s is not a folder", s.dir)
	}
	return nil
}

// Close implements blob.Store; there is nothing to release.
func (s *Store) Close() error { return nil }
