package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, COPY...
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	name, base string
	instrs     []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var instrs []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(string(b), "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		instrs = append(instrs, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	var stages []stage
	for _, in := range instrs {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			var s stage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case s.base == "":
					s.base = f[i]
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					s.name = f[i+1]
					i++
				}
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("%s:%d: %s before the first FROM", path, in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	return stages
}

// finalImage describes the runtime stage of deploy/Dockerfile: what meshd runs as and with.
type finalImage struct {
	uid, gid int
	files    map[string]bool // paths copied in from a build stage
	ports    map[int]bool    // EXPOSE
}

func dockerfileFinal(t *testing.T) finalImage {
	t.Helper()
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	img := finalImage{uid: -1, gid: -1, files: map[string]bool{}, ports: map[int]bool{}}
	for _, in := range stages[len(stages)-1].instrs {
		f := strings.Fields(in.args)
		switch in.cmd {
		case "USER":
			u, g, _ := strings.Cut(in.args, ":")
			img.uid, img.gid = atoiOr(u, -2), atoiOr(g, -2)
		case "COPY":
			if len(f) > 0 && hasFlag(f, "--from") {
				img.files[f[len(f)-1]] = true
			}
		case "EXPOSE":
			for _, p := range f {
				p, _, _ = strings.Cut(p, "/")
				img.ports[atoiOr(p, -1)] = true
			}
		}
	}
	return img
}

func atoiOr(s string, or int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return or
	}
	return n
}

func hasFlag(fields []string, flag string) bool {
	for _, f := range fields {
		if f == flag || strings.HasPrefix(f, flag+"=") {
			return true
		}
	}
	return false
}

// The image is built in stages, and what runs is a static meshd, as a non-root user, on a
// base without a libc or a shell.
func TestDockerfile(t *testing.T) {
	f := meshd(t)
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); want a build stage and a runtime stage", len(stages))
	}
	for _, s := range stages {
		base := s.base
		if i := strings.LastIndex(base, "/"); i >= 0 {
			base = base[i+1:]
		}
		if !strings.Contains(base, ":") && !strings.Contains(s.base, "@sha256:") && !isStageName(stages, s.base) && s.base != "scratch" {
			t.Errorf("FROM %s: no tag; pin the base image", s.base)
		}
		if strings.HasSuffix(s.base, ":latest") {
			t.Errorf("FROM %s: pin a version, not latest", s.base)
		}
	}
	final := stages[len(stages)-1]
	if !strings.Contains(final.base, "distroless/static") && final.base != "scratch" {
		t.Errorf("final stage FROM %s: want gcr.io/distroless/static (or scratch): no libc, no shell, for a static binary", final.base)
	}

	// The binaries: built with CGO_ENABLED=0 in an earlier stage, copied into the last one.
	built := map[string]string{} // package -> output path
	for _, s := range stages[:len(stages)-1] {
		cgoOff := false
		for _, in := range s.instrs {
			if in.cmd == "ENV" && regexp.MustCompile(`\bCGO_ENABLED=0\b`).MatchString(in.args) {
				cgoOff = true
			}
			if in.cmd != "RUN" {
				continue
			}
			for _, cmd := range strings.Split(in.args, "&&") {
				if !strings.Contains(cmd, "go build") {
					continue
				}
				if !cgoOff && !strings.Contains(cmd, "CGO_ENABLED=0") {
					t.Errorf("Dockerfile:%d: `%s` without CGO_ENABLED=0: the binary would not be static", in.line, strings.TrimSpace(cmd))
				}
				fields := strings.Fields(cmd)
				out := ""
				for i, fl := range fields {
					if fl == "-o" && i+1 < len(fields) {
						out = fields[i+1]
					}
				}
				built[fields[len(fields)-1]] = out
			}
		}
	}
	img := dockerfileFinal(t)
	for pkg, dest := range map[string]string{"./cmd/meshd": "/meshd", "./deploy/healthcheck": "/healthcheck"} {
		if _, ok := built[pkg]; !ok {
			t.Errorf("no build stage runs `go build ... %s` (built: %v)", pkg, built)
		}
		if !img.files[dest] {
			t.Errorf("the final stage has no `COPY --from=... %s` (copied: %v)", dest, sortedKeys(img.files))
		}
	}
	if img.uid <= 0 || img.gid < 0 {
		t.Errorf("final stage USER gives uid %d, gid %d: want a numeric non-root uid:gid (Kubernetes' runAsNonRoot can only verify a numeric user)", img.uid, img.gid)
	}

	var entrypoint string
	for _, in := range final.instrs {
		switch in.cmd {
		case "ENTRYPOINT":
			entrypoint = in.args
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				name, v, _ := strings.Cut(kv, "=")
				if err := f.checkSetting(name, strings.Trim(v, `"`)); err != nil {
					t.Errorf("Dockerfile:%d: ENV %v", in.line, err)
				}
			}
		}
	}
	if entrypoint != `["/meshd"]` {
		t.Errorf(`final ENTRYPOINT is %q; want ["/meshd"] (exec form, so that SIGTERM reaches meshd and a role is its argument)`, entrypoint)
	}
	gw, _ := addrPort(f.settings["MESH_ADDR"])
	for _, port := range []int{gw, adminPort, raftPort} {
		if !img.ports[port] {
			t.Errorf("the final stage does not EXPOSE %d (EXPOSEd: %v)", port, img.ports)
		}
	}
}

func isStageName(stages []stage, name string) bool {
	for _, s := range stages {
		if s.name == name {
			return true
		}
	}
	return false
}

// The ports the deployment gives meshd's listeners.
const (
	adminPort = 9090 // MESH_ADMIN_ADDR
	raftPort  = 7000 // MESH_WORLD_RAFT_ADDR
)

// The build context keeps what the build needs and leaves out what it must not carry.
func TestDockerignore(t *testing.T) {
	rules := readIgnore(t, "Dockerfile.dockerignore")
	for _, path := range []string{
		"go.mod", "go.sum", "cmd/meshd/main.go", "cmd/meshd/config.go", "pkg/auth/auth.go",
		"gateway/gateway.go", "web/web.go", "web/out/.gitkeep", "web/out/index.html",
		"web/out/_next/static/app.js", "deploy/healthcheck/main.go",
	} {
		if ignored(rules, path) {
			t.Errorf("Dockerfile.dockerignore leaves %s out of the build context; the build needs it", path)
		}
	}
	for _, path := range []string{".git/HEAD", "meshd", "sqlite.test", "mesh.sqlite", "web/node_modules/react/index.js", "bin/meshd"} {
		if !ignored(rules, path) {
			t.Errorf("Dockerfile.dockerignore lets %s into the build context", path)
		}
	}
	// Sanity of the matcher itself.
	if !ignored([]ignoreRule{{re: ignoreRegexp("**/*.test")}}, "a/b/c.test") || ignored([]ignoreRule{{re: ignoreRegexp("meshd")}}, "cmd/meshd/main.go") {
		t.Fatal("the ignore matcher is broken")
	}
}

type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

func readIgnore(t *testing.T, path string) []ignoreRule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rules []ignoreRule
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.negate, line = true, line[1:]
		}
		r.re = ignoreRegexp(line)
		rules = append(rules, r)
	}
	return rules
}

// ignoreRegexp turns a .dockerignore pattern (relative to the context root; `**` any
// number of folders, `*` and `?` within one) into a regexp over a slash-separated path.
func ignoreRegexp(p string) *regexp.Regexp {
	p = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "/")
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			re.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			re.WriteString(".*")
			i++
		case p[i] == '*':
			re.WriteString("[^/]*")
		case p[i] == '?':
			re.WriteString("[^/]")
		default:
			re.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String())
}

// ignored decides like Docker: each rule that matches the path or a folder above it (a
// folder left out leaves out what it holds) overrides the rules before it.
func ignored(rules []ignoreRule, path string) bool {
	parts := strings.Split(path, "/")
	out := false
	for _, r := range rules {
		for i := 1; i <= len(parts); i++ {
			if r.re.MatchString(strings.Join(parts[:i], "/")) {
				out = !r.negate
				break
			}
		}
	}
	return out
}
