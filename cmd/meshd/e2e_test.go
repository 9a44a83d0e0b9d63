package main

// End-to-end tests: they build meshd, start it as real processes on loopback and speak only
// the public contract. The same suite runs against the all-in-one server and against gateway,
// API and world as separate processes that share only a real Redis.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/themesh/mesh/internal/meshtest"
	"github.com/themesh/mesh/internal/testredis"
)

var meshdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meshd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	meshdBin = filepath.Join(dir, "meshd")
	build := exec.Command("go", "build", "-o", meshdBin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build meshd:", err)
		os.Exit(1)
	}
	code := m.Run()
	testredis.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running meshd process.
type proc struct {
	t    testing.TB
	role string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

// Log is what the process wrote so far.
func (p *proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// testEnv are the settings every test process gets: cheap bcrypt, no registration limit.
var testEnv = map[string]string{
	"MESH_BCRYPT_COST":              "4",
	"MESH_REGISTRATIONS_PER_MINUTE": "100000",
	"MESH_LOG_LEVEL":                "warn",
	"MESH_SHUTDOWN_TIMEOUT":         "5s",
}

// startMeshd starts `meshd role` with env (over testEnv); it is stopped at the test's end.
func startMeshd(t testing.TB, role string, env map[string]string) *proc {
	t.Helper()
	args := []string{}
	if role != "" {
		args = append(args, role)
	}
	cmd := exec.Command(meshdBin, args...)
	cmd.Env = os.Environ()
	for k, v := range testEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{t: t, role: role, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatalf("start meshd %s: %v", role, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("meshd %s log:\n%s", role, p.Log())
		}
	})
	return p
}

// stop sends sig and waits for the process to exit.
func (p *proc) stop(sig syscall.Signal) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// freeAddr finds a free loopback port.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls base's /readyz and then GET /api/setup until both answer (the API service
// is behind the gateway), failing after a deadline.
func waitReady(t testing.TB, base string, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			select {
			case <-p.done:
				t.Fatalf("meshd %s exited: %v\n%s", p.role, p.err, p.Log())
			default:
			}
		}
		if ok(base+"/readyz") && ok(base+"/api/setup") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("mesh at %s not ready within 30 s", base)
}

func ok(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		return false
	}
	defer r.Body.Close()
	_, _ = io.Copy(io.Discard, r.Body)
	return r.StatusCode == 200
}

// mesh is a running mesh under test.
type mesh struct {
	base  string
	procs []*proc
	dir   string
	// admin are the admin addresses of roles without a gateway, by role.
	admin map[string]string
	// gateways are every gateway's base URL; clients are spread over them.
	gateways []string
	next     int
}

// gw is the gateway for the next client (round robin).
func (m *mesh) gw() string {
	if len(m.gateways) == 0 {
		return m.base
	}
	m.next++
	return m.gateways[m.next%len(m.gateways)]
}

// startAllInOne starts `meshd` with its embedded defaults in a fresh folder.
func startAllInOne(t testing.TB, env map[string]string) *mesh {
	t.Helper()
	dir := t.TempDir()
	return startAllInOneIn(t, dir, env)
}

func startAllInOneIn(t testing.TB, dir string, env map[string]string) *mesh {
	t.Helper()
	addr := freeAddr(t)
	e := map[string]string{"MESH_ADDR": addr, "MESH_DB_PATH": filepath.Join(dir, "mesh.sqlite")}
	for k, v := range env {
		e[k] = v
	}
	p := startMeshd(t, "", e)
	m := &mesh{base: "http://" + addr, procs: []*proc{p}, dir: dir}
	waitReady(t, m.base, p)
	return m
}

// startSplit starts two gateways, an API worker and a world as processes sharing only a real
// Redis; the suite spreads its clients over both gateways.
func startSplit(t testing.TB) *mesh {
	t.Helper()
	redisAddr := testredis.Shared(t).Addr()
	dir := t.TempDir()
	addr := freeAddr(t)
	common := map[string]string{
		"REDIS_URL":         "redis://" + redisAddr,
		"MESH_REDIS_PREFIX": testredis.Prefix(t),
		"MESH_JWT_SECRET":   strings.Repeat("s", 40),
		// Gateways write files' bytes and the API worker deletes them: one folder for all.
		"MESH_FILES_DIR": filepath.Join(dir, "files"),
	}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	admin := map[string]string{"api": freeAddr(t), "world": freeAddr(t)}
	api := startMeshd(t, "api", with(map[string]string{"MESH_DB_PATH": filepath.Join(dir, "mesh.sqlite"), "MESH_ADMIN_ADDR": admin["api"]}))
	world := startMeshd(t, "world", with(map[string]string{"MESH_ADMIN_ADDR": admin["world"]}))
	gw := startMeshd(t, "gateway", with(map[string]string{"MESH_ADDR": addr}))
	addr2 := freeAddr(t)
	gw2 := startMeshd(t, "gateway", with(map[string]string{"MESH_ADDR": addr2}))
	m := &mesh{base: "http://" + addr, procs: []*proc{api, world, gw, gw2}, dir: dir, admin: admin,
		gateways: []string{"http://" + addr, "http://" + addr2}}
	waitReady(t, m.base, api, world, gw, gw2)
	waitReady(t, m.gateways[1], api, world, gw, gw2)
	return m
}

func TestAllInOne(t *testing.T) {
	m := startAllInOne(t, nil)
	runSuite(t, m)
}

func TestSplitOverRedis(t *testing.T) {
	m := startSplit(t)
	runSuite(t, m)
	// Roles without a gateway serve probes and metrics on their admin address.
	for role, want := range map[string]string{"api": "mesh_api_commands_total", "world": "mesh_world_tick_seconds"} {
		c := meshtest.NewClient("http://" + m.admin[role])
		for _, path := range []string{"/healthz", "/readyz"} {
			c.Must(t, 200, "GET", path, "", nil)
		}
		if r := c.Do(t, "GET", "/metrics", "", nil); r.Status != 200 || !strings.Contains(string(r.Body), want) {
			t.Fatalf("%s /metrics: %d, lacks %s", role, r.Status, want)
		}
	}
}
