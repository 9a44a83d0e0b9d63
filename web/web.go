// Package web holds the web app's static build (web/out, made by `make web`), which the
// gateway serves at /.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:out
var out embed.FS

// Files is the built web app. It is empty (but valid) before the first web build.
func Files() fs.FS {
	f, err := fs.Sub(out, "out")
	if err != nil {
		return nil
	}
	return f
}
