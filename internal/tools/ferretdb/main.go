// Command ferretdb runs FerretDB v1 (a MongoDB wire protocol server) over SQLite, for tests.
//
// It embeds github.com/FerretDB/FerretDB/ferretdb rather than building FerretDB's own command,
// whose module lacks the generated build/version/version.txt that its main package needs. This
// module is separate from The Mesh's own so that FerretDB's dependencies stay out of the
// product's go.mod; internal/testmongo builds it once per machine and starts it per test binary.
//
// Usage:
//
//	ferretdb -listen-addr 127.0.0.1:27017 -data-dir /tmp/ferret [-log-level info] [-shutdown-timeout 3s]
//
// Once listening, it writes one line to standard output, "ready mongodb://HOST:PORT/", and runs
// until SIGTERM or SIGINT; then it closes the listener, lets open connections finish (for up
// to the shutdown timeout; FerretDB itself gives them up to 3 s) and exits with status 0. Logs
// go to standard error. The data is in SQLite files (WAL mode), safe from a kill at any time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		addr     = flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (port 0 picks a free one)")
		dataDir  = flag.String("data-dir", "", "folder of the SQLite files, one per database (created if missing; required)")
		logLevel = flag.String("log-level", "info", "log level: debug, info, warn or error")
		grace    = flag.Duration("shutdown-timeout", 3*time.Second,
			"on SIGTERM or SIGINT, how long open connections may go on before the process exits anyway")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *dataDir == "" {
		return errors.New("-data-dir is required")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + dirURI(*dataDir) + "/",
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// New has bound the listener already; MongoDBURI waits for it, so the line means "listening".
	fmt.Printf("ready %s\n", f.MongoDBURI())

	select {
	case err = <-done:
	case <-ctx.Done():
		// FerretDB stops listening at once, and gives open connections up to 3 s to finish.
		t := time.NewTimer(*grace)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			logger.Warn("connections still open after the shutdown timeout: exiting anyway",
				slog.Duration("timeout", *grace))
			return nil
		}
	}
	logger.Info("stopped", slog.Any("error", err))
	return err
}

// dirURI makes a folder path usable in an SQLite "file:" URI: absolute, with the characters
// that URIs give a meaning to escaped.
func dirURI(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	dir = strings.TrimRight(dir, "/")
	var b []byte
	for i := 0; i < len(dir); i++ {
		switch c := dir[i]; c {
		case '%', '?', '#':
			b = fmt.Appendf(b, "%%%02X", c)
		default:
			b = append(b, c)
		}
	}
	return string(b)
}
