// Package testmongo runs real MongoDB wire protocol servers for tests: FerretDB v1 over SQLite,
// the only one that runs on these machines (see docs on dependencies). There is one shared
// server per test binary (Shared) with a database per test (DB), and dedicated servers (Start)
// for fault tests that stop and restart the server on the same port.
//
// The FerretDB binary is built from the separate module internal/tools/ferretdb, once per
// machine, into a cache folder keyed by FerretDB's version and a hash of the module's files
// ($XDG_CACHE_HOME/themesh or ~/.cache/themesh, or $TESTMONGO_CACHE if set); the first
// build takes about a minute. If the build fails or the server does not start, the test
// fails: it never skips, as the tests that matter are the ones run against a real server.
//
// Setting MESH_TEST_MONGODB_URI (for example to a MongoDB replica set,
// "mongodb://h1,h2,h3/?replicaSet=rs0") makes Shared use that server instead of starting
// FerretDB. Each test still gets its own database, dropped when it ends. Start always runs a
// FerretDB of its own: an external server cannot be stopped.
//
// A store test opens a database of its own on the shared server:
//
//	srv := testmongo.Shared(t)
//	s, err := mongo.Open(t.Context(), srv.URI(), srv.DB(t), mongo.Options{})
//
// A package using Shared should stop it at the end of the test binary:
//
//	func TestMain(m *testing.M) { testmongo.Main(m) }
//
// Without that, the shared server is still killed when the test process exits (on Linux,
// through the parent-death signal), but its temporary folder is left behind.
package testmongo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/internal/testport"
)

// FerretDBVersion is the FerretDB release the server is built from (see
// internal/tools/ferretdb/go.mod).
const FerretDBVersion = "v1.24.2"

// EnvURI names the variable that points the shared server at an external MongoDB.
const EnvURI = "MESH_TEST_MONGODB_URI"

const (
	startTimeout = 20 * time.Second
	// shutdownTimeout is how long a stopped FerretDB serves the connections open at the time
	// (FerretDB's own is 3 s): a stopped server is soon gone for its clients.
	shutdownTimeout = 300 * time.Millisecond
	stopTimeout     = 10 * time.Second
	buildTimeout    = 15 * time.Minute
	portAttempts    = 5
)

// Server is one MongoDB wire protocol server. A FerretDB server listens on a fixed loopback
// port: Stop and Start may be called any number of times, and the port and the data stay (a
// restarted server has what it had, as a restarted mongod would).
type Server struct {
	uri      string // set for an external server; empty for FerretDB
	bin, dir string
	port     int

	mu      sync.Mutex
	running *process
	client  *mongo.Client // for dropping databases; made on first use
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
}

// Start starts a dedicated FerretDB for tb and stops it when tb ends. Use it when the test
// stops or restarts the server; otherwise use Shared, which is cheaper.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := Binary(tb)
	s, err := newServer(bin, tb.TempDir())
	if err != nil {
		tb.Fatalf("testmongo: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.close(); err != nil {
			tb.Errorf("testmongo: stop: %v", err)
		}
	})
	return s
}

var shared struct {
	once sync.Once
	srv  *Server
	dir  string
	err  error
}

// Shared returns the test binary's shared server, starting it on first use (or the server of
// MESH_TEST_MONGODB_URI). Tests sharing it must keep to their own database (see DB) and must
// not stop it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	if uri := os.Getenv(EnvURI); uri != "" {
		shared.once.Do(func() { shared.srv = &Server{uri: uri} })
		return shared.srv
	}
	bin := Binary(tb)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "testmongo-")
		if err != nil {
			shared.err = fmt.Errorf("temp dir: %w", err)
			return
		}
		shared.dir = dir
		shared.srv, shared.err = newServer(bin, dir)
	})
	if shared.err != nil {
		tb.Fatalf("testmongo: shared server: %v", shared.err)
	}
	return shared.srv
}

// Main runs the tests and then stops the shared server, if one was started. Call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// StopShared stops the shared server, if one was started, and removes its folder. Main calls
// it; a TestMain that does more calls it itself after m.Run.
func StopShared() {
	if shared.srv != nil {
		if err := shared.srv.close(); err != nil {
			fmt.Fprintf(os.Stderr, "testmongo: stop shared server: %v\n", err)
		}
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// URI is the server's connection string, such as "mongodb://127.0.0.1:23456/" (what a
// MONGODB_URI variable would hold). It does not change across Stop and Start.
func (s *Server) URI() string {
	if s.uri != "" {
		return s.uri
	}
	return "mongodb://" + s.Addr() + "/"
}

// Addr is a FerretDB server's host:port (empty for an external server).
func (s *Server) Addr() string {
	if s.uri != "" {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port is a FerretDB server's port (0 for an external server).
func (s *Server) Port() int { return s.port }

// External reports whether the server is the one of MESH_TEST_MONGODB_URI.
func (s *Server) External() bool { return s.uri != "" }

var dbSeq atomic.Uint64

// DB returns the name of a database that no other test of this binary uses, such as
// "t_TestStore_Rooms_Update_12_4f1a", and drops it when tb ends (register the cleanups that
// use it, such as closing a store, after calling DB, so that they run first). The name is
// random enough that test binaries sharing an external server do not meet either.
func (s *Server) DB(tb testing.TB) string {
	tb.Helper()
	name := dbName(tb.Name(), dbSeq.Add(1), rand.Uint32())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := s.dropClient()
		if err == nil {
			err = c.Database(name).Drop(ctx)
		}
		if err != nil && !s.stopped() {
			tb.Errorf("testmongo: drop database %s: %v", name, err)
		}
	})
	return name
}

// dbName makes a database name out of a test name: FerretDB accepts [a-zA-Z0-9_-]{1,63}.
func dbName(test string, seq uint64, salt uint32) string {
	suffix := fmt.Sprintf("_%d_%04x", seq, salt&0xffff)
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range test {
		if b.Len() >= 63-len(suffix) {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	b.WriteString(suffix)
	return b.String()
}

// stopped reports whether a FerretDB server is stopped (a drop cannot succeed then, and does
// not need to: the folder goes with the test).
func (s *Server) stopped() bool {
	if s.uri != "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running == nil
}

func (s *Server) dropClient() (*mongo.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	c, err := mongo.Connect(options.Client().ApplyURI(s.URI()).
		SetServerSelectionTimeout(10 * time.Second).SetMaxPoolSize(4))
	if err != nil {
		return nil, err
	}
	s.client = c
	return c, nil
}

// newServer picks a free loopback port and starts FerretDB on it, trying another port if this
// one was taken in between.
func newServer(bin, dir string) (*Server, error) {
	var errs []error
	for range portAttempts {
		port, err := testport.Pick()
		if err != nil {
			return nil, err
		}
		s := &Server{bin: bin, dir: dir, port: port}
		if err := s.Start(); err != nil {
			errs = append(errs, err)
			continue
		}
		return s, nil
	}
	return nil, fmt.Errorf("start ferretdb: %w", errors.Join(errs...))
}

// Start starts a FerretDB server if it is not running, and returns once it answers a ping.
// The data of the previous run is still there.
func (s *Server) Start() error {
	if s.uri != "" {
		return errors.New("testmongo: an external server cannot be started")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return nil
	}
	logPath := filepath.Join(s.dir, fmt.Sprintf("ferretdb-%d.log", s.port))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(s.bin,
		"-listen-addr", s.Addr(),
		"-data-dir", filepath.Join(s.dir, fmt.Sprintf("data-%d", s.port)),
		"-log-level", "warn",
		"-shutdown-timeout", shutdownTimeout.String(),
	)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		// The one line FerretDB writes once it listens, then whatever else, so that it never
		// blocks on a full pipe.
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := s.waitReady(ready, p.exited); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("ferretdb on port %d: %w; log: %s", s.port, err, tail(logPath))
	}
	s.running = p
	return nil
}

// waitReady waits for the process's ready line (so the port is ours: FerretDB exits if it
// cannot listen), then for the server to answer a ping.
func (s *Server) waitReady(ready <-chan string, exited <-chan struct{}) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	select {
	case line := <-ready:
		if want := "ready " + s.URI(); line != want {
			return fmt.Errorf("first line %q, want %q", line, want)
		}
	case <-deadline.C:
		return fmt.Errorf("not listening within %s", startTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(s.URI()).SetServerSelectionTimeout(startTimeout))
	if err != nil {
		return err
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	pinged := make(chan error, 1)
	go func() { pinged <- c.Ping(ctx, nil) }()
	select {
	case err := <-pinged:
		return err
	case <-exited:
		return errors.New("exited before answering")
	}
}

// Stop shuts a FerretDB server down (SIGINT, then SIGKILL after 10 s) and waits for it to
// exit. It stops listening at once, and exits 300 ms later at most, whatever its open
// connections are doing. Stopping a stopped server does nothing.
func (s *Server) Stop() error { return s.stop(false) }

// Kill kills a FerretDB server at once (SIGKILL), as a crash would, and waits for it to exit.
// Its clients see their connections reset. The data stays (SQLite's journal sees to that).
func (s *Server) Kill() error { return s.stop(true) }

func (s *Server) stop(kill bool) error {
	if s.uri != "" {
		return errors.New("testmongo: an external server cannot be stopped")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.running
	if p == nil {
		return nil
	}
	s.running = nil
	if kill {
		_ = p.cmd.Process.Kill()
	} else {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("ferretdb on port %d did not stop within %s; killed", s.port, stopTimeout)
}

// close disconnects the drop client and stops a FerretDB server.
func (s *Server) close() error {
	s.mu.Lock()
	c := s.client
	s.client = nil
	s.mu.Unlock()
	var errs []error
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, c.Disconnect(ctx))
		cancel()
	}
	if s.uri == "" {
		errs = append(errs, s.stop(false))
	}
	return errors.Join(errs...)
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return strings.TrimSpace(string(b))
}

var built struct {
	once sync.Once
	bin  string
	err  error
}

// Binary returns the path of the FerretDB binary, building it first if this machine has not
// yet (see the package documentation). A failed build fails tb.
func Binary(tb testing.TB) string {
	tb.Helper()
	built.once.Do(func() { built.bin, built.err = build() })
	if built.err != nil {
		tb.Fatalf("testmongo: build FerretDB: %v", built.err)
	}
	return built.bin
}

// build builds internal/tools/ferretdb into the cache, unless it is there already. Test
// binaries that build at the same time (go test runs packages in parallel) take turns on a
// lock file; each builds into a temporary file and renames it, so a binary in the cache is
// always complete.
func build() (string, error) {
	src, err := toolDir()
	if err != nil {
		return "", err
	}
	key, err := sourceKey(src)
	if err != nil {
		return "", err
	}
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "ferretdb-"+FerretDBVersion+"-"+key)
	bin := filepath.Join(dir, "ferretdb")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // built by another test binary while this one waited
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	defer os.Remove(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build in %s: %w\n%s", src, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "testmongo: built FerretDB %s into %s in %s\n",
		FerretDBVersion, bin, time.Since(start).Round(time.Second))
	return bin, nil
}

// toolDir finds internal/tools/ferretdb next to this source file.
func toolDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "tools", "ferretdb")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
	}
	// Built with -trimpath: ask the go command where the module is (tests run in its tree).
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if gomod := strings.TrimSpace(string(out)); err == nil && gomod != "" && gomod != os.DevNull {
		dir := filepath.Join(filepath.Dir(gomod), "internal", "tools", "ferretdb")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("cannot find internal/tools/ferretdb (source path unknown and not run in the module's tree)")
}

// sourceKey hashes what the binary is built from: the tool module's files and the Go version.
func sourceKey(dir string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// cacheDir is $TESTMONGO_CACHE, or themesh under the user's cache folder.
func cacheDir() (string, error) {
	if d := os.Getenv("TESTMONGO_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder (set TESTMONGO_CACHE): %w", err)
	}
	return filepath.Join(d, "themesh"), nil
}

// goTool is the go command. go test puts the running toolchain's bin folder first on PATH.
func goTool() string { return "go" }
