// Command healthcheck GETs one URL and exits 0 when it answers 2xx in time, 1 otherwise.
//
// The meshd image is distroless: it has no shell, curl or wget, so a container healthcheck
// (docker-compose's `healthcheck.test`) cannot run one. This small static binary, shipped
// beside /meshd in the image, is what it runs instead:
//
//	healthcheck [-timeout 3s] http://127.0.0.1:4000/readyz
//
// Kubernetes does not need it: its probes are httpGet probes made by the kubelet.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: healthcheck [-timeout 3s] http://HOST:PORT/PATH\n")
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(check(flag.Arg(0), *timeout, os.Stderr))
}

// check GETs url and returns the exit code: 0 for a 2xx answer within timeout, 1 for
// anything else (refused, timed out, 4xx, 5xx), with the reason written to w.
func check(url string, timeout time.Duration, w io.Writer) int {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		fmt.Fprintf(w, "healthcheck: %q is not an http(s) URL\n", url)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(w, "healthcheck: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(w, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(w, "healthcheck: %s answered %s: %s\n", url, resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	return 0
}
