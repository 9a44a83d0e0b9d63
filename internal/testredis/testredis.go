// Package testredis runs real redis-server processes for tests: one shared server per test
// binary (Shared, Start) with a key prefix per test (Prefix) so tests can run in parallel, and
// dedicated servers (New) for fault tests that stop and restart Redis on the same port.
//
// redis-server must be on PATH; when it is not, the test fails (it never skips): the tests
// that matter are the ones run against a real server.
//
// A package using Shared should stop it at the end of the test binary:
//
//	func TestMain(m *testing.M) { testredis.Main(m) }
//
// Without that, the shared server is still killed when the test process exits (on Linux,
// through the parent-death signal), but its temporary folder is left behind.
package testredis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/themesh/mesh/internal/testport"
)

// NotFound is the failure message when redis-server is missing.
const NotFound = "redis-server not found: run `make test`, which installs it"

const (
	startTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
	portAttempts = 5
)

// Server is one redis-server process on a fixed loopback port. Stop and Start may be called
// any number of times: the port stays the same, the data does not (no persistence), which is
// what a crashed and restarted Redis looks like to its clients.
type Server struct {
	bin  string
	dir  string
	port int

	mu      sync.Mutex
	running *process
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
}

// New starts a dedicated redis-server for tb and stops it when tb ends. Use it when the test
// stops or restarts the server; otherwise use Shared, which is cheaper.
func New(tb testing.TB) *Server {
	tb.Helper()
	bin := lookPath(tb)
	s, err := newServer(bin, tb.TempDir())
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("testredis: stop: %v", err)
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

// Shared returns the test binary's shared redis-server, starting it on first use. Tests
// sharing it must keep to their own keys (see Prefix) and must not stop it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	bin := lookPath(tb)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "testredis-")
		if err != nil {
			shared.err = fmt.Errorf("temp dir: %w", err)
			return
		}
		shared.dir = dir
		shared.srv, shared.err = newServer(bin, dir)
	})
	if shared.err != nil {
		tb.Fatalf("testredis: shared server: %v", shared.err)
	}
	return shared.srv
}

// Start returns the address (host:port) of the shared redis-server, starting it on first use.
func Start(tb testing.TB) string {
	tb.Helper()
	return Shared(tb).Addr()
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
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testredis: stop shared server: %v\n", err)
		}
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

var prefixSeq atomic.Uint64

// Prefix returns a key prefix that no other test of this binary uses, such as
// "t:TestBus_publish:7:". Prepend it to every key and channel the test touches.
func Prefix(tb testing.TB) string {
	tb.Helper()
	name := tb.Name()
	var b strings.Builder
	b.WriteString("t:")
	for i, r := range name {
		if i >= 48 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(prefixSeq.Add(1), 10))
	b.WriteByte(':')
	return b.String()
}

// Client returns a go-redis client for addr with timeouts suited to tests (short dials, so a
// restarted server is found again quickly); it is closed when tb ends.
func Client(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:               addr,
		DialTimeout:        time.Second,
		ReadTimeout:        3 * time.Second,
		WriteTimeout:       3 * time.Second,
		DialerRetries:      2,
		DialerRetryTimeout: 20 * time.Millisecond,
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func lookPath(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatal(NotFound)
	}
	return bin
}

// newServer picks a free loopback port and starts redis-server on it, trying another port if
// this one was taken in between.
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
	return nil, fmt.Errorf("start redis-server: %w", errors.Join(errs...))
}

// Addr is the server's host:port; it does not change across Stop and Start.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Start starts the server if it is not running and returns once it answers PING. The data of
// a previous run is gone.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return nil
	}
	logFile := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.port))
	cmd := exec.Command(s.bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--dbfilename", fmt.Sprintf("dump-%d.rdb", s.port),
		"--logfile", logFile,
		"--loglevel", "warning",
	)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := waitReady(s.Addr(), cmd.Process.Pid, p.exited); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("redis-server on port %d: %w; log: %s", s.port, err, tail(logFile))
	}
	s.running = p
	return nil
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 10 s) and waits for it to exit.
// Clients see their connections closed. Stopping a stopped server does nothing.
func (s *Server) Stop() error { return s.stop(false) }

// Kill kills the server at once (SIGKILL), as a crash would, and waits for it to exit.
func (s *Server) Kill() error { return s.stop(true) }

func (s *Server) stop(kill bool) error {
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
	return fmt.Errorf("redis-server on port %d did not stop within %s; killed", s.port, stopTimeout)
}

// waitReady polls addr until the redis-server answering there is pid, the process exits or
// the time is up. Checking the pid makes sure that the port was not taken by another server.
func waitReady(addr string, pid int, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	delay := 2 * time.Millisecond
	var last error
	for time.Now().Before(deadline) {
		got, err := serverPID(addr)
		switch {
		case err != nil:
			last = err
		case got != pid:
			return fmt.Errorf("port taken by another redis-server (pid %d)", got)
		default:
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before answering")
		case <-time.After(delay):
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
	return fmt.Errorf("no answer within %s: %w", startTimeout, last)
}

// serverPID asks the redis-server at addr for its process id (INFO server).
func serverPID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("unexpected reply %q", strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("unexpected reply %q", strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("no process_id in INFO server")
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
