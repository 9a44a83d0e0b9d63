package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mt "github.com/themesh/mesh/internal/meshtest"
	"github.com/themesh/mesh/internal/testmongo"
)

// TestMakeCluster starts the cluster the way `make cluster` does (deploy/cluster.sh: Redis,
// FerretDB, two gateways on :4001 and :4002, two API workers, three world replicas, bots,
// proxy), runs the end-to-end suite with its clients spread over both gateways, then kills
// the world's leader and a gateway while two clients talk: the conversation goes on, nothing
// is lost. Ctrl-C (SIGINT) stops everything the script started.
func TestMakeCluster(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("bash", "../../deploy/cluster.sh")
	cmd.Env = append(os.Environ(),
		"MESH_CLUSTER_DIR="+dir,
		"MESH_FERRETDB_BIN="+testmongo.Binary(t),
		"MESH_CLUSTER_REDIS_PORT="+port(t), "MESH_CLUSTER_MONGO_PORT="+port(t),
		"MESH_BCRYPT_COST=4", "MESH_REGISTRATIONS_PER_MINUTE=100000", "MESH_LOG_LEVEL=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	up := make(chan struct{})
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
			if strings.HasPrefix(sc.Text(), "cluster: up") {
				close(up)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("cluster.sh output:\n%s", strings.Join(lines, "\n"))
			mu.Unlock()
		}
	})
	select {
	case <-up:
	case err := <-exited:
		t.Fatalf("cluster.sh exited before the cluster was up: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("the cluster was not up within 3 minutes")
	}
	pids := map[string]int{}
	mu.Lock()
	for _, l := range lines {
		if m := regexp.MustCompile(`^cluster: (\S+) \(pid (\d+)\)`).FindStringSubmatch(l); m != nil {
			pids[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	mu.Unlock()

	m := &mesh{base: "http://127.0.0.1:4001", gateways: []string{"http://127.0.0.1:4001", "http://127.0.0.1:4002"}}
	waitReady(t, m.base)
	waitReady(t, m.gateways[1])
	runSuite(t, m)

	t.Run("kill the world leader and a gateway while two clients talk", func(t *testing.T) {
		old := mt.Wait
		mt.Wait = 15 * time.Second
		defer func() { mt.Wait = old }()
		c := mt.NewClient(m.base)
		a, b := c.Register(t, "Talker"), c.Register(t, "Listener")
		room := newRoom(t, c, a, b)
		wa, _ := mt.Connect(t, m.gateways[0], a.Token)
		wb, _ := mt.Connect(t, m.gateways[1], b.Token)
		wa.Ack(t, M{"type": "send_message", "roomId": room, "content": "before"})
		wb.Expect(t, "message")
		// Positions flow before the kill.
		wa.Ack(t, M{"type": "move", "roomId": room, "x": 1, "y": 1})
		wb.Expect(t, "positions")

		leader := worldLeader(t)
		killed := time.Now()
		if err := syscall.Kill(pids[leader], syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", leader, err)
		}
		// The new leader ticks: a move is folded into a positions event again.
		var failover time.Duration
		for x := 2.0; ; x++ {
			wa.Send(t, M{"type": "move", "roomId": room, "x": x, "y": x})
			if p := wb.Next(100 * time.Millisecond); p != nil && p["type"] == "positions" {
				failover = time.Since(killed)
				break
			}
			if time.Since(killed) > 10*time.Second {
				t.Fatal("no positions event within 10 s of killing the world leader")
			}
		}
		t.Logf("world failover: %s was killed, a new leader ticked %v later", leader, failover)

		// Gateway 2 dies: b reconnects to gateway 1 and fills its gap from seq.
		_ = syscall.Kill(pids["gateway-2"], syscall.SIGKILL)
		acked := map[string]int64{"before": 1}
		for i := 0; i < 10; i++ {
			id := "during-" + strconv.Itoa(i)
			r := wa.Ack(t, M{"type": "send_message", "roomId": room, "content": id, "clientMsgId": id})
			acked[id] = int64(r["seq"].(float64))
		}
		wb2, _ := mt.Connect(t, m.gateways[0], b.Token)
		missed := c.Must(t, 200, "GET", "/api/rooms/"+room+"/messages?after=1", b.Token, nil)["items"].([]any)
		if len(missed) != 10 {
			t.Fatalf("b's gap fill holds %d messages, want 10", len(missed))
		}
		wa.Ack(t, M{"type": "send_message", "roomId": room, "content": "after"})
		wb2.ExpectWhere(t, "message", func(m M) bool { return m["message"].(M)["content"] == "after" })
		// b is still online in the (new) world: a snapshot says so.
		_, snap := mt.Connect(t, m.gateways[0], a.Token)
		for _, p := range snap["participants"].([]any) {
			if p.(M)["id"] == b.ID && p.(M)["status"] != "online" {
				t.Fatalf("after the failover the world says b is %v", p.(M)["status"])
			}
		}
	})

	// Ctrl-C stops everything the script started.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-exited:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatal("cluster.sh did not stop within 30 s of SIGINT")
	}
	for name, pid := range pids {
		if running(pid) {
			t.Errorf("%s (pid %d) still runs after the cluster stopped", name, pid)
		}
	}
}

// worldLeader asks each world replica's admin endpoint which one leads.
func worldLeader(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, port := range []string{"9121", "9122", "9123"} {
			r := mt.NewClient("http://127.0.0.1:"+port).Do(t, "GET", "/metrics", "", nil)
			if strings.Contains(string(r.Body), "\nmesh_world_leader 1") {
				return "world-" + strconv.Itoa(i+1)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no world leader")
	return ""
}

func port(t *testing.T) string {
	t.Helper()
	a := freeAddr(t)
	return a[strings.LastIndexByte(a, ':')+1:]
}

// running reports whether pid is a live process (not gone, not a zombie waiting to be reaped).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}
