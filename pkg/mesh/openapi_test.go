package mesh

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/openapi.json")

// docs/openapi.json is the document the gateway serves; `go test ./pkg/mesh -update` rewrites it.
func TestOpenAPIFileIsCurrent(t *testing.T) {
	b, err := json.MarshalIndent(OpenAPI(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	const path = "../../docs/openapi.json"
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/mesh -update)", err)
	}
	if !bytes.Equal(have, b) {
		t.Fatal("docs/openapi.json is stale: run go test ./pkg/mesh -update")
	}
}

func TestEveryRouteDocumented(t *testing.T) {
	for _, r := range Routes {
		if _, ok := opDocs[r.Op]; !ok {
			t.Errorf("%s %s (%s) has no OpenAPI description", r.Method, r.Path, r.Op)
		}
	}
	doc := OpenAPI()
	n := 0
	for _, item := range doc["paths"].(map[string]any) {
		n += len(item.(map[string]any))
	}
	if n != len(Routes)+len(OpenAPIRoutes) {
		t.Fatalf("document has %d operations, the tables %d", n, len(Routes)+len(OpenAPIRoutes))
	}
}

// Every $ref of the document names a schema or response it defines.
func TestOpenAPIRefsResolve(t *testing.T) {
	doc := OpenAPI()
	comps := doc["components"].(map[string]any)
	b, _ := json.Marshal(doc)
	for _, m := range regexp.MustCompile(`"\$ref":"#/components/(\w+)/(\w+)"`).FindAllStringSubmatch(string(b), -1) {
		kind, _ := comps[m[1]].(map[string]any)
		if _, ok := kind[m[2]]; !ok {
			t.Errorf("$ref to %s/%s, which the document does not define", m[1], m[2])
		}
	}
}
