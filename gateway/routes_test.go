package gateway

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/themesh/mesh/pkg/bus/membus"
	"github.com/themesh/mesh/pkg/mesh"
)

// The routes the gateway serves are exactly the routes the OpenAPI document describes.
func TestServedRoutesAreDocumented(t *testing.T) {
	g, err := New(Config{JWTSecret: []byte(strings.Repeat("k", 32))}, Deps{Bus: membus.New(membus.Options{}), Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range mesh.OpenAPI()["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			documented[strings.ToUpper(method)+" "+fiberPath(path)] = true
		}
	}
	served := map[string]bool{}
	for _, r := range g.app.GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "OPTIONS" || r.Method == "TRACE" || r.Method == "CONNECT" || strings.HasSuffix(r.Path, "*") || r.Path == "/" {
			continue // Fiber's automatic HEAD, the catch-all 404 and the web app
		}
		served[r.Method+" "+r.Path] = true
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("%s is served but not documented", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("%s is documented but not served", k)
		}
	}
}
