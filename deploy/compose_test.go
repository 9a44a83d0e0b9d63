package deploy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// composePath is the local cluster's compose file, at the repository root.
var composePath = filepath.Join(repoRoot, "docker-compose.yml")

type composeFile struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

// composeService holds the fields the checks read; those with several forms in the compose
// specification (a string or a list, a list or a map) are kept raw and read by the methods.
type composeService struct {
	Image           string            `json:"image"`
	Build           json.RawMessage   `json:"build"`
	Command         json.RawMessage   `json:"command"`
	Environment     json.RawMessage   `json:"environment"`
	Ports           []json.RawMessage `json:"ports"`
	DependsOn       json.RawMessage   `json:"depends_on"`
	Healthcheck     *composeHealth    `json:"healthcheck"`
	Volumes         []json.RawMessage `json:"volumes"`
	StopGracePeriod string            `json:"stop_grace_period"`
	Hostname        string            `json:"hostname"`
}

type composeHealth struct {
	Test    json.RawMessage `json:"test"`
	Disable bool            `json:"disable"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return c
}

// interpolate resolves ${VAR:-default}, ${VAR-default}, ${VAR} and $$ as Docker Compose
// does, with every VAR unset: what a fresh checkout gets.
func interpolate(s string) string {
	s = strings.ReplaceAll(s, "$$", "\x00")
	s = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(:?-([^}]*))?\}`).ReplaceAllString(s, "$2")
	s = regexp.MustCompile(`\$[A-Za-z_][A-Za-z0-9_]*`).ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "\x00", "$")
}

func rawStrings(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("want a string or a list of strings, got %s", raw)
	}
	return strings.Fields(s), nil
}

// env is the service's environment, interpolated. A name without a value (taken from the
// shell) maps to "".
func (s composeService) env() (map[string]string, error) {
	out := map[string]string{}
	if len(s.Environment) == 0 || string(s.Environment) == "null" {
		return out, nil
	}
	var m map[string]any
	if err := json.Unmarshal(s.Environment, &m); err == nil {
		for k, v := range m {
			if v == nil {
				out[k] = ""
				continue
			}
			out[k] = interpolate(fmt.Sprint(v))
		}
		return out, nil
	}
	var list []string
	if err := json.Unmarshal(s.Environment, &list); err != nil {
		return nil, fmt.Errorf("environment: want a map or a list of NAME=value, got %s", s.Environment)
	}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = interpolate(v)
	}
	return out, nil
}

// dependsOn maps each service this one depends on to its condition.
func (s composeService) dependsOn() (map[string]string, error) {
	out := map[string]string{}
	if len(s.DependsOn) == 0 || string(s.DependsOn) == "null" {
		return out, nil
	}
	var list []string
	if err := json.Unmarshal(s.DependsOn, &list); err == nil {
		for _, d := range list {
			out[d] = "service_started"
		}
		return out, nil
	}
	var m map[string]struct {
		Condition string `json:"condition"`
	}
	if err := json.Unmarshal(s.DependsOn, &m); err != nil {
		return nil, fmt.Errorf("depends_on: %v", err)
	}
	for d, c := range m {
		if c.Condition == "" {
			c.Condition = "service_started"
		}
		out[d] = c.Condition
	}
	return out, nil
}

// portMapping is one published port: host port -> container port.
type portMapping struct{ host, container int }

func (s composeService) ports() ([]portMapping, error) {
	var out []portMapping
	for _, raw := range s.Ports {
		var long struct {
			Target    int `json:"target"`
			Published any `json:"published"`
		}
		if err := json.Unmarshal(raw, &long); err == nil && long.Target != 0 {
			host, _ := strconv.Atoi(fmt.Sprint(long.Published))
			out = append(out, portMapping{host, long.Target})
			continue
		}
		var short any
		if err := json.Unmarshal(raw, &short); err != nil {
			return nil, err
		}
		spec := fmt.Sprint(short)
		spec, _, _ = strings.Cut(spec, "/")
		parts := strings.Split(spec, ":")
		cport, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil {
			return nil, fmt.Errorf("port %q: %v", spec, err)
		}
		hport := 0 // an ephemeral host port
		if len(parts) >= 2 {
			if hport, err = strconv.Atoi(parts[len(parts)-2]); err != nil {
				return nil, fmt.Errorf("port %q: %v", spec, err)
			}
		}
		out = append(out, portMapping{hport, cport})
	}
	return out, nil
}

// mounts maps each volume mount's target to its source (a named volume or a host path).
func (s composeService) mounts() (map[string]string, error) {
	out := map[string]string{}
	for _, raw := range s.Volumes {
		var long struct {
			Source string `json:"source"`
			Target string `json:"target"`
		}
		if err := json.Unmarshal(raw, &long); err == nil && long.Target != "" {
			out[long.Target] = long.Source
			continue
		}
		var short string
		if err := json.Unmarshal(raw, &short); err != nil {
			return nil, fmt.Errorf("volume %s: %v", raw, err)
		}
		parts := strings.Split(short, ":")
		if len(parts) < 2 {
			out[parts[0]] = "" // anonymous volume
			continue
		}
		out[parts[1]] = parts[0]
	}
	return out, nil
}

func (s composeService) build() (context, dockerfile string) {
	var str string
	if json.Unmarshal(s.Build, &str) == nil {
		return str, "Dockerfile"
	}
	var b struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
	}
	_ = json.Unmarshal(s.Build, &b)
	if b.Dockerfile == "" {
		b.Dockerfile = "Dockerfile"
	}
	return b.Context, b.Dockerfile
}

func (s composeService) isMeshd() bool {
	_, df := s.build()
	return strings.HasPrefix(s.Image, meshdImage+":") || s.Image == meshdImage || (len(s.Build) > 0 && df == "deploy/Dockerfile")
}

// composeRole is the meshd role a service is named after: gateway-2 -> gateway.
func composeRole(name string) string {
	return regexp.MustCompile(`-\d+$`).ReplaceAllString(name, "")
}

var composeServices = []string{"redis", "mongodb", "gateway-1", "gateway-2", "api-1", "api-2", "world-1", "world-2", "world-3", "bots", "proxy"}

// The compose file describes the whole cluster shape, and each meshd service runs its role
// from the image of deploy/Dockerfile with only settings meshd reads.
func TestComposeServices(t *testing.T) {
	f := meshd(t)
	c := loadCompose(t)
	for _, name := range composeServices {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("docker-compose.yml has no service %q (it has %v)", name, sortedKeys(c.Services))
		}
	}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		env, err := s.env()
		if err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		if !s.isMeshd() {
			if name != "redis" && name != "mongodb" {
				t.Logf("service %s is not meshd; not checked", name)
			}
			continue
		}
		ctx, df := s.build()
		if ctx != "." || df != "deploy/Dockerfile" {
			t.Errorf("service %s: build %q with %q; want context . (the module) and deploy/Dockerfile", name, ctx, df)
		}
		args, err := rawStrings(s.Command)
		switch {
		case err != nil:
			t.Errorf("service %s: command: %v", name, err)
		case len(args) != 1 || !f.roles[args[0]]:
			t.Errorf("service %s: command %q; want one meshd role of %v", name, args, sortedKeys(f.roles))
		case args[0] != composeRole(name):
			t.Errorf("service %s runs `meshd %s`; its name says %s", name, args[0], composeRole(name))
		}
		for _, k := range sortedKeys(env) {
			if err := f.checkSetting(k, env[k]); err != nil {
				t.Errorf("service %s: %v", name, err)
			}
		}
		if env["REDIS_URL"] == "" {
			t.Errorf("service %s: no REDIS_URL; a role apart from the others needs Redis", name)
		}
		role := composeRole(name)
		if role != "gateway" && env["MESH_ADMIN_ADDR"] == "" {
			t.Errorf("service %s: no MESH_ADMIN_ADDR: `meshd %s` then serves no /healthz, /readyz or /metrics", name, role)
		}
		if (role == "gateway" || role == "api") && env["MESH_JWT_SECRET"] == "" {
			t.Errorf("service %s: no MESH_JWT_SECRET; gateways and API workers must share one", name)
		}
		// Gateways write files' bytes and API workers delete them: in a cluster both reach
		// GridFS through MongoDB (a folder would be each container's own).
		if (role == "gateway" || role == "api") && env["MONGODB_URI"] == "" {
			t.Errorf("service %s: no MONGODB_URI; gateways and API workers keep files' bytes in GridFS", name)
		}
		grace := 10 * time.Second // Docker's default
		if s.StopGracePeriod != "" {
			if grace, err = time.ParseDuration(s.StopGracePeriod); err != nil {
				t.Errorf("service %s: stop_grace_period %q: %v", name, s.StopGracePeriod, err)
			}
		}
		if drain := f.duration(t, "MESH_SHUTDOWN_TIMEOUT", env["MESH_SHUTDOWN_TIMEOUT"]); grace <= drain {
			t.Errorf("service %s: stop_grace_period %v is not longer than MESH_SHUTDOWN_TIMEOUT %v: Docker kills meshd mid-drain", name, grace, drain)
		}
	}
}

// Two gateways on host ports 4001 and 4002, each to the port meshd listens on; nothing
// else of meshd is published.
func TestComposePorts(t *testing.T) {
	f := meshd(t)
	c := loadCompose(t)
	want := map[string]int{"gateway-1": 4001, "gateway-2": 4002}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if !s.isMeshd() {
			continue
		}
		ports, err := s.ports()
		if err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		host, ok := want[name]
		if !ok {
			if len(ports) > 0 {
				t.Errorf("service %s publishes %v; only the gateways take outside connections", name, ports)
			}
			continue
		}
		env, _ := s.env()
		addr := env["MESH_ADDR"]
		if addr == "" {
			addr = f.settings["MESH_ADDR"]
		}
		listen, err := addrPort(addr)
		if err != nil {
			t.Fatalf("MESH_ADDR %q: %v", addr, err)
		}
		if len(ports) != 1 || ports[0] != (portMapping{host, listen}) {
			t.Errorf("service %s publishes %v; want host port %d to %d (MESH_ADDR %s)", name, ports, host, listen, addr)
		}
	}
}

// Every service has a healthcheck; meshd's call /healthcheck (shipped by the Dockerfile) on
// the port the role serves /readyz on.
func TestComposeHealthchecks(t *testing.T) {
	f := meshd(t)
	c := loadCompose(t)
	img := dockerfileFinal(t)
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if s.Healthcheck == nil || s.Healthcheck.Disable {
			t.Errorf("service %s has no healthcheck", name)
			continue
		}
		test, err := rawStrings(s.Healthcheck.Test)
		if err != nil || len(test) < 2 {
			t.Errorf("service %s: healthcheck test %s", name, s.Healthcheck.Test)
			continue
		}
		if !s.isMeshd() {
			continue
		}
		if test[0] != "CMD" || !img.files[test[1]] || len(test) != 3 {
			t.Errorf("service %s: healthcheck %q; want [CMD, /healthcheck, URL]: the image has no shell, and ships %v", name, test, sortedKeys(img.files))
			continue
		}
		u, err := url.Parse(test[2])
		if err != nil {
			t.Errorf("service %s: healthcheck URL %q: %v", name, test[2], err)
			continue
		}
		env, _ := s.env()
		addr, which := env["MESH_ADMIN_ADDR"], "MESH_ADMIN_ADDR"
		if composeRole(name) == "gateway" {
			addr, which = env["MESH_ADDR"], "MESH_ADDR"
			if addr == "" {
				addr = f.settings["MESH_ADDR"]
			}
		}
		port, err := addrPort(addr)
		if err != nil {
			t.Errorf("service %s: %s %q: %v", name, which, addr, err)
			continue
		}
		if u.Port() != strconv.Itoa(port) || u.Path != "/readyz" {
			t.Errorf("service %s: healthcheck GETs %s; meshd %s serves /readyz on %s (%s)", name, test[2], composeRole(name), addr, which)
		}
	}
}

// depends_on names services that exist, with conditions they can meet, and no cycle.
func TestComposeDependencies(t *testing.T) {
	c := loadCompose(t)
	graph := map[string][]string{}
	for _, name := range sortedKeys(c.Services) {
		deps, err := c.Services[name].dependsOn()
		if err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		for _, d := range sortedKeys(deps) {
			cond := deps[d]
			graph[name] = append(graph[name], d)
			target, ok := c.Services[d]
			switch {
			case !ok:
				t.Errorf("service %s depends on %s, which does not exist", name, d)
			case cond != "service_started" && cond != "service_healthy" && cond != "service_completed_successfully":
				t.Errorf("service %s: depends_on %s: unknown condition %q", name, d, cond)
			case cond == "service_healthy" && (target.Healthcheck == nil || target.Healthcheck.Disable):
				t.Errorf("service %s waits for %s to be healthy, which has no healthcheck: it would wait forever", name, d)
			}
		}
	}
	// Depth-first search for a cycle.
	state := map[string]int{} // 1: on the path, 2: done
	var visit func(n string, path []string)
	visit = func(n string, path []string) {
		switch state[n] {
		case 1:
			t.Errorf("depends_on cycle: %s", strings.Join(append(path, n), " -> "))
			return
		case 2:
			return
		}
		state[n] = 1
		for _, d := range graph[n] {
			visit(d, append(path, n))
		}
		state[n] = 2
	}
	for _, n := range sortedKeys(c.Services) {
		visit(n, nil)
	}
	// Every meshd service waits for Redis to answer.
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		deps, _ := s.dependsOn()
		if s.isMeshd() && deps["redis"] != "service_healthy" {
			t.Errorf("service %s does not wait for redis to be healthy", name)
		}
	}
}

// The URLs point at services of this file, the MongoDB URI names the replica set mongod
// runs, and every gateway and API worker holds the same JWT secret, long enough for meshd.
func TestComposeSharedSettings(t *testing.T) {
	f := meshd(t)
	c := loadCompose(t)
	replSet := ""
	if m, ok := c.Services["mongodb"]; ok {
		args, _ := rawStrings(m.Command)
		for i, a := range args {
			if a == "--replSet" && i+1 < len(args) {
				replSet = args[i+1]
			}
		}
	}
	secrets := map[string][]string{}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if !s.isMeshd() {
			continue
		}
		env, _ := s.env()
		for _, k := range []string{"REDIS_URL", "MONGODB_URI"} {
			if env[k] == "" {
				continue
			}
			u, err := url.Parse(env[k])
			if err != nil {
				t.Errorf("service %s: %s %q: %v", name, k, env[k], err)
				continue
			}
			for _, host := range strings.Split(u.Host, ",") {
				h := host
				if i := strings.LastIndex(h, ":"); i >= 0 {
					h = h[:i]
				}
				if _, ok := c.Services[h]; !ok {
					t.Errorf("service %s: %s points at %s, which is no service of docker-compose.yml", name, k, host)
				}
			}
			if k == "MONGODB_URI" && u.Query().Get("replicaSet") != replSet {
				t.Errorf("service %s: MONGODB_URI asks for replicaSet %q; mongod runs --replSet %q", name, u.Query().Get("replicaSet"), replSet)
			}
		}
		if v, ok := env["MESH_JWT_SECRET"]; ok {
			secrets[v] = append(secrets[v], name)
			if len(v) < f.minSecret {
				t.Errorf("service %s: MESH_JWT_SECRET (with no MESH_JWT_SECRET in the shell) is %d characters; meshd refuses fewer than %d", name, len(v), f.minSecret)
			}
		}
	}
	if len(secrets) > 1 {
		t.Errorf("services hold different JWT secrets (%v): a token from one API worker would not pass another gateway", secrets)
	}
}

// Three world replicas, each its own Raft id and volume, all with the same peer list that
// names each of them at an address the others can reach.
func TestComposeWorld(t *testing.T) {
	c := loadCompose(t)
	ids := map[string]string{} // MESH_WORLD_ID -> service
	volumes := map[string]string{}
	var peers string
	for _, name := range []string{"world-1", "world-2", "world-3"} {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		env, _ := s.env()
		id := env["MESH_WORLD_ID"]
		if id == "" {
			t.Errorf("service %s: no MESH_WORLD_ID", name)
		} else if other, dup := ids[id]; dup {
			t.Errorf("services %s and %s share the Raft id %q", other, name, id)
		}
		ids[id] = name
		if peers == "" {
			peers = env["MESH_WORLD_PEERS"]
		} else if env["MESH_WORLD_PEERS"] != peers {
			t.Errorf("service %s: MESH_WORLD_PEERS %q differs from %q: every replica needs the same list", name, env["MESH_WORLD_PEERS"], peers)
		}
		raft, err := addrPort(env["MESH_WORLD_RAFT_ADDR"])
		if err != nil {
			t.Errorf("service %s: MESH_WORLD_RAFT_ADDR %q: %v", name, env["MESH_WORLD_RAFT_ADDR"], err)
		}
		mounts, err := s.mounts()
		if err != nil {
			t.Errorf("service %s: %v", name, err)
		}
		data := env["MESH_WORLD_DATA"]
		target := mountHolding(mounts, data)
		switch {
		case data == "":
			t.Errorf("service %s: no MESH_WORLD_DATA", name)
		case target == "":
			t.Errorf("service %s: MESH_WORLD_DATA %s is on no volume (mounts %v): the Raft log would not survive the container", name, data, mounts)
		default:
			vol := mounts[target]
			if _, declared := c.Volumes[vol]; !declared {
				t.Errorf("service %s: mounts %q at %s, which is no named volume of the file", name, vol, target)
			}
			if other, dup := volumes[vol]; dup {
				t.Errorf("services %s and %s share the volume %s: each replica needs its own Raft log", other, name, vol)
			}
			volumes[vol] = name
		}
		// This replica's own entry is what it advertises: it must reach it, at its port.
		if entries, err := parsePeers(peers); err == nil {
			if e, ok := entries[id]; ok && e.port != raft {
				t.Errorf("service %s: listens for Raft on %d, its peer entry says %d", name, raft, e.port)
			}
		}
	}
	entries, err := parsePeers(peers)
	if err != nil {
		t.Fatalf("MESH_WORLD_PEERS %q: %v", peers, err)
	}
	if len(entries) != len(ids) {
		t.Errorf("MESH_WORLD_PEERS lists %d peers %v; there are %d replicas %v", len(entries), sortedKeys(entries), len(ids), sortedKeys(ids))
	}
	for id, e := range entries {
		svc, ok := ids[id]
		if !ok {
			t.Errorf("MESH_WORLD_PEERS names %q, which is no replica's MESH_WORLD_ID (%v)", id, sortedKeys(ids))
			continue
		}
		if e.host != svc && e.host != c.Services[svc].Hostname {
			t.Errorf("MESH_WORLD_PEERS: %s at host %q, but that replica is the service %s", id, e.host, svc)
		}
	}
}

// mountHolding is the mount target under which p lies, "" if none.
func mountHolding(mounts map[string]string, p string) string {
	best := ""
	for target := range mounts {
		if p == target || strings.HasPrefix(path.Clean(p), path.Clean(target)+"/") {
			if len(target) > len(best) {
				best = target
			}
		}
	}
	return best
}

type peer struct {
	host string
	port int
}

// parsePeers reads MESH_WORLD_PEERS, id=host:port,..., as worldsvc/raftelect.ParsePeers
// does (unique ids, unique addresses).
func parsePeers(s string) (map[string]peer, error) {
	out := map[string]peer{}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty")
	}
	for _, item := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
		id, addr = strings.TrimSpace(id), strings.TrimSpace(addr)
		if !ok || id == "" {
			return nil, fmt.Errorf("%q is not id=host:port", item)
		}
		host, port, err := splitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", item, err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("id %q twice", id)
		}
		for other, p := range out {
			if p == (peer{host, port}) {
				return nil, fmt.Errorf("ids %q and %q share the address %s", other, id, addr)
			}
		}
		out[id] = peer{host, port}
	}
	return out, nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i <= 0 {
		return "", 0, fmt.Errorf("%q has no host:port", addr)
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		return "", 0, fmt.Errorf("%q: port: %v", addr, err)
	}
	return addr[:i], port, nil
}
