package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Every variable meshd reads is in the README's table, with its default, and nothing else is.
func TestREADMEListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if strings.HasPrefix(name, "MESH_") || name == "REDIS_URL" || name == "MONGODB_URI" {
			rows[name] = strings.Trim(strings.TrimSpace(cells[2]), "`")
		}
	}
	for _, s := range settings {
		def, ok := rows[s.env]
		if !ok {
			t.Errorf("README lacks %s", s.env)
			continue
		}
		if s.def != "" && def != s.def {
			t.Errorf("README gives %s a default of %q, meshd uses %q", s.env, def, s.def)
		}
		delete(rows, s.env)
	}
	for name := range rows {
		t.Errorf("README lists %s, which meshd does not read", name)
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"MESH_ADDR": "127.0.0.1:9", "MESH_BCRYPT_COST": "4", "MESH_REQUEST_TIMEOUT": "2s"}
	c, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9" || c.BcryptCost != 4 || c.RequestTimeout.Seconds() != 2 || c.DBPath != "mesh.sqlite" || c.SendQueue != 4096 {
		t.Fatalf("config = %+v", c)
	}
	for k, v := range map[string]string{
		"MESH_BCRYPT_COST": "99", "MESH_REQUEST_TIMEOUT": "soon", "MESH_MAX_FRAME_BYTES": "-1",
		"MESH_LOG_LEVEL": "loud", "MESH_WS_FRAMES_PER_SECOND": "0",
		"MESH_CORS_ORIGINS": "app.example.com", "MESH_FILE_TIMEOUT": "0s",
	} {
		_, err := loadConfig(func(key string) string {
			if key == k {
				return v
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: error %v, want one naming the variable", k, v, err)
		}
	}
}

// Services never import each other, and pkg/mesh imports nothing of ours (STYLE.md).
func TestImportBoundaries(t *testing.T) {
	const mod = "github.com/themesh/mesh/"
	services := []string{"gateway", "apisvc", "worldsvc", "botsvc", "proxysvc"}
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg+"/...").Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	t.Chdir("../..")
	for _, s := range services {
		for _, d := range deps(s) {
			for _, other := range services {
				if other != s && (d == mod+other || strings.HasPrefix(d, mod+other+"/")) {
					t.Errorf("%s imports %s", s, d)
				}
			}
		}
	}
	for _, d := range deps("pkg/mesh") {
		if strings.HasPrefix(d, mod) && d != mod+"pkg/mesh" {
			t.Errorf("pkg/mesh imports %s", d)
		}
	}
	for _, d := range deps("pkg") {
		if strings.HasPrefix(d, mod) && !strings.HasPrefix(d, mod+"pkg/") && !strings.HasPrefix(d, mod+"internal/") {
			t.Errorf("a pkg/ package imports %s", d)
		}
	}
	for _, d := range deps("gateway") {
		if strings.HasPrefix(d, mod+"pkg/store") {
			t.Errorf("the gateway imports %s; it has no store access", d)
		}
	}
	for _, s := range []string{"apisvc", "worldsvc", "botsvc", "proxysvc", "pkg"} {
		for _, d := range deps(s) {
			if strings.HasPrefix(d, "github.com/gofiber/") {
				t.Errorf("%s imports Fiber; only the gateway may", s)
			}
		}
	}
}
