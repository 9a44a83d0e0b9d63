package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the repository, seen from this package's folder (where `go test` runs).
const repoRoot = ".."

// meshdImage is the image of meshd in the manifests and in docker-compose.yml (any tag).
const meshdImage = "the-mesh/meshd"

// clusterRoles are the roles of `meshd <role>` a cluster runs, one workload each.
var clusterRoles = []string{"gateway", "api", "world", "bots", "proxy"}

// plannedSettings are variables meshd does not read yet: the cluster issue adds them to
// cmd/meshd's settings table, with exactly these names and meanings. The deployment files
// use them already. Once one lands in the table, the table is its source of truth and it can
// leave this list (TestPlannedSettings says so).
var plannedSettings = map[string]string{
	"MESH_WORLD_ID":        "this world replica's Raft server id; default: the host name",
	"MESH_WORLD_PEERS":     "every voter as id=host:port,... (this replica included; its own entry is the address it advertises); empty: a one-node world",
	"MESH_WORLD_RAFT_ADDR": "where this replica listens for Raft; default :7000",
	"MESH_WORLD_DATA":      "the folder of this replica's Raft log, stable store and snapshots, made if missing; default mesh-world",
}

// meshdFacts is what the deployment files must agree with, read from meshd's source.
type meshdFacts struct {
	settings  map[string]string // variable -> default ("" when none)
	roles     map[string]bool   // every `meshd <role>`, "" and "all" excluded
	minSecret int               // pkg/auth.MinSecretBytes
}

var (
	factsOnce sync.Once
	facts     meshdFacts
	factsErr  error
)

// meshd reads meshd's settings table, roles and minimum JWT secret length from the source.
func meshd(t *testing.T) meshdFacts {
	t.Helper()
	factsOnce.Do(func() { facts, factsErr = readMeshdFacts() })
	if factsErr != nil {
		t.Fatalf("reading meshd's source, the reference for every deployment file: %v", factsErr)
	}
	return facts
}

func readMeshdFacts() (meshdFacts, error) {
	f := meshdFacts{settings: map[string]string{}, roles: map[string]bool{}}
	dir := filepath.Join(repoRoot, "cmd", "meshd")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return f, err
	}
	fset := token.NewFileSet()
	var sawSettings, sawRoles bool
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return f, err
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.CompositeLit)
					if !ok {
						continue
					}
					switch id.Name {
					case "settings":
						sawSettings = true
						for _, elt := range lit.Elts {
							env, def, err := settingEntry(elt)
							if err != nil {
								return f, fmt.Errorf("%s: settings entry: %w", fset.Position(elt.Pos()), err)
							}
							f.settings[env] = def
						}
					case "roles":
						sawRoles = true
						for _, elt := range lit.Elts {
							kv, ok := elt.(*ast.KeyValueExpr)
							if !ok {
								return f, fmt.Errorf("%s: roles entry is not key: value", fset.Position(elt.Pos()))
							}
							role, err := stringLit(kv.Key)
							if err != nil {
								return f, fmt.Errorf("%s: roles key: %w", fset.Position(elt.Pos()), err)
							}
							if role != "" && role != "all" {
								f.roles[role] = true
							}
						}
					}
				}
			}
		}
	}
	if !sawSettings || len(f.settings) == 0 {
		return f, fmt.Errorf("no `var settings = []setting{...}` table with entries in %s/*.go", dir)
	}
	if !sawRoles || len(f.roles) == 0 {
		return f, fmt.Errorf("no `var roles = map[string]...{...}` with roles in %s/*.go", dir)
	}
	auth, err := os.ReadFile(filepath.Join(repoRoot, "pkg", "auth", "auth.go"))
	if err != nil {
		return f, err
	}
	m := regexp.MustCompile(`MinSecretBytes\s*=\s*(\d+)`).FindSubmatch(auth)
	if m == nil {
		return f, fmt.Errorf("pkg/auth/auth.go: no `MinSecretBytes = N`")
	}
	f.minSecret, _ = strconv.Atoi(string(m[1]))
	return f, nil
}

// settingEntry reads {"MESH_X", "default", ...} or {env: "MESH_X", def: "default", ...}.
func settingEntry(e ast.Expr) (env, def string, err error) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok || len(lit.Elts) < 2 {
		return "", "", fmt.Errorf("want {\"NAME\", \"default\", setter}")
	}
	var strs []string
	for _, el := range lit.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			key := fmt.Sprint(kv.Key)
			s, err := stringLit(kv.Value)
			switch {
			case key == "env" && err == nil:
				env = s
			case key == "def" && err == nil:
				def = s
			}
			continue
		}
		if s, err := stringLit(el); err == nil {
			strs = append(strs, s)
		}
	}
	if env == "" && len(strs) >= 2 {
		env, def = strs[0], strs[1]
	}
	if env == "" {
		return "", "", fmt.Errorf("no variable name")
	}
	return env, def, nil
}

func stringLit(e ast.Expr) (string, error) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", fmt.Errorf("not a string literal")
	}
	return strconv.Unquote(b.Value)
}

// known reports whether meshd reads name (its settings table) or will (plannedSettings).
func (f meshdFacts) known(name string) bool {
	if _, ok := f.settings[name]; ok {
		return true
	}
	_, ok := plannedSettings[name]
	return ok
}

// checkSetting returns what is wrong with giving name the value v: an unknown name, or a
// value whose form differs from the default's (a duration, a whole number, an address).
// v == "" means the value is not known here (it comes from a Secret, say).
func (f meshdFacts) checkSetting(name, v string) error {
	if !f.known(name) {
		return fmt.Errorf("%s is not a variable meshd reads (cmd/meshd/config.go `settings`: %s) nor a planned one (%s)",
			name, strings.Join(sortedKeys(f.settings), " "), strings.Join(sortedKeys(plannedSettings), " "))
	}
	def := f.settings[name]
	if v == "" || def == "" || strings.Contains(v, "$(") {
		return nil
	}
	if _, err := time.ParseDuration(def); err == nil {
		if _, err := time.ParseDuration(v); err != nil {
			return fmt.Errorf("%s=%q: meshd wants a duration like its default %q", name, v, def)
		}
	}
	if _, err := strconv.Atoi(def); err == nil {
		if _, err := strconv.Atoi(v); err != nil {
			return fmt.Errorf("%s=%q: meshd wants a whole number like its default %q", name, v, def)
		}
	}
	if strings.HasPrefix(def, ":") {
		if _, err := addrPort(v); err != nil {
			return fmt.Errorf("%s=%q: meshd wants host:port like its default %q: %v", name, v, def, err)
		}
	}
	return nil
}

// duration is the value of a duration setting: v if given, else meshd's default.
func (f meshdFacts) duration(t *testing.T, name, v string) time.Duration {
	t.Helper()
	if v == "" {
		v = f.settings[name]
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// addrPort is the port of a listen address like ":4000" or "0.0.0.0:4000".
func addrPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The source of truth is readable, and holds what the deployment relies on.
func TestMeshdSource(t *testing.T) {
	f := meshd(t)
	for _, role := range clusterRoles {
		if !f.roles[role] {
			t.Errorf("meshd has no role %q (roles in cmd/meshd: %v); the deployment runs one", role, sortedKeys(f.roles))
		}
	}
	for _, name := range []string{"MESH_ADDR", "REDIS_URL", "MONGODB_URI", "MESH_JWT_SECRET", "MESH_ADMIN_ADDR", "MESH_SHUTDOWN_TIMEOUT"} {
		if _, ok := f.settings[name]; !ok {
			t.Errorf("meshd's settings table lacks %s, which the deployment relies on", name)
		}
	}
	if f.minSecret < 16 {
		t.Errorf("MinSecretBytes = %d: implausibly short", f.minSecret)
	}
}

// The planned variables are planned only until they land.
func TestPlannedSettings(t *testing.T) {
	f := meshd(t)
	for _, name := range sortedKeys(plannedSettings) {
		if def, ok := f.settings[name]; ok {
			t.Logf("%s is in meshd's settings table now (default %q): drop it from plannedSettings", name, def)
		}
	}
}
