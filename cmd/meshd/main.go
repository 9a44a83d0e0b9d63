// Command meshd is The Mesh's only server binary.
//
//	meshd                 every service in one process (SQLite, in-process bus, port 4000)
//	meshd gateway         one gateway        (REDIS_URL, MESH_JWT_SECRET)
//	meshd api             one API worker     (REDIS_URL, MESH_JWT_SECRET, MESH_DB_PATH)
//	meshd world           one world replica  (REDIS_URL)
//	meshd bots | proxy    the bot service, the model proxy (REDIS_URL)
//
// Configuration is read from the environment (see README.md, "Configuration"). This is the
// only place that picks implementations: openBus, openStore and openBlobs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only on MESH_DEBUG_ADDR
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/themesh/mesh/apisvc"
	"github.com/themesh/mesh/botsvc"
	"github.com/themesh/mesh/gateway"
	"github.com/themesh/mesh/pkg/auth"
	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/blob/disk"
	"github.com/themesh/mesh/pkg/blob/gridfs"
	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/bus/membus"
	"github.com/themesh/mesh/pkg/bus/redisbus"
	"github.com/themesh/mesh/pkg/limit"
	"github.com/themesh/mesh/pkg/limit/memlimit"
	"github.com/themesh/mesh/pkg/limit/redislimit"
	"github.com/themesh/mesh/pkg/store"
	"github.com/themesh/mesh/pkg/store/mongo"
	"github.com/themesh/mesh/pkg/store/sqlite"
	"github.com/themesh/mesh/proxysvc"
	"github.com/themesh/mesh/web"
	"github.com/themesh/mesh/worldsvc"
	"github.com/themesh/mesh/worldsvc/raftelect"
)

// roles maps a command-line role to the services it runs.
var roles = map[string][]string{
	"":        {"gateway", "api", "world", "bots", "proxy"},
	"all":     {"gateway", "api", "world", "bots", "proxy"},
	"gateway": {"gateway"},
	"api":     {"api"},
	"world":   {"world"},
	"bots":    {"bots"},
	"proxy":   {"proxy"},
}

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: meshd [all|gateway|api|world|bots|proxy]\n\nConfiguration comes from the environment; see README.md.\n")
	}
	flag.Parse()
	role := flag.Arg(0)
	if _, ok := roles[role]; !ok || flag.NArg() > 1 {
		flag.Usage()
		os.Exit(2)
	}
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshd:", err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, role, cfg, log); err != nil {
		log.Error("meshd stopped", "err", err)
		os.Exit(1)
	}
}

func newLogger(cfg config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// run runs the role's services until ctx is done, then stops them in order: the gateway
// drains first (no new work, in-flight requests finish, sockets close with 1001), then the
// services behind it finish their in-flight commands, then the bus and the store close.
func run(ctx context.Context, role string, cfg config, log *slog.Logger) error {
	services := map[string]bool{}
	for _, s := range roles[role] {
		services[s] = true
	}
	allInOne := len(services) > 1
	if !allInOne && cfg.RedisURL == "" {
		return fmt.Errorf("meshd %s needs REDIS_URL: the services of a cluster meet through Redis", role)
	}

	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	b, limits, err := openBus(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()

	var st store.Store
	if services["api"] {
		if st, err = openStore(ctx, cfg); err != nil {
			return err
		}
		defer st.Close()
	}
	var blobs blob.Store
	if services["api"] || services["gateway"] {
		if blobs, err = openBlobs(ctx, cfg, services["api"]); err != nil {
			return err
		}
		defer blobs.Close()
	}
	secret, err := jwtSecret(ctx, cfg, st, services)
	if err != nil {
		return err
	}

	svcCtx, stopServices := context.WithCancel(context.Background())
	defer stopServices()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(svcCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	if services["api"] {
		api, err := apisvc.New(apisvc.Config{
			JWTSecret: secret, TokenTTL: cfg.TokenTTL, BcryptCost: cfg.BcryptCost,
			MaxContentBytes: cfg.MaxContentBytes, RegistrationsPerMinute: cfg.RegistrationsPerMinute,
			FailedLoginsPerMinute: cfg.FailedLoginsPerMinute, Concurrency: cfg.APIConcurrency,
			UploadsPerMinute: cfg.UploadsPerMinute, MaxFileBytes: int64(cfg.MaxFileBytes),
		}, apisvc.Deps{Bus: b, Store: st, Blobs: blobs, Limits: limits, Metrics: reg, Logger: log})
		if err != nil {
			return err
		}
		start("api", api.Run)
	}
	if services["world"] {
		deps := worldsvc.Deps{Bus: b, Metrics: reg, Logger: log}
		if cfg.WorldPeers != "" {
			node, err := openRaft(cfg, log)
			if err != nil {
				return err
			}
			defer node.Close()
			deps.Log = node
		}
		wcfg := worldsvc.Config{}
		if deps.Log != nil {
			// A command a dying leader had taken comes back to the next one well inside the
			// gateways' request deadline.
			wcfg.ReclaimIdle = time.Second
		}
		world, err := worldsvc.New(wcfg, deps)
		if err != nil {
			return err
		}
		start("world", world.Run)
	}
	if services["bots"] {
		bots, err := botsvc.New(botsvc.Config{}, botsvc.Deps{Bus: b, Logger: log})
		if err != nil {
			return err
		}
		start("bots", bots.Run)
	}
	if services["proxy"] {
		proxy, err := proxysvc.New(proxysvc.Config{}, proxysvc.Deps{Bus: b, Logger: log})
		if err != nil {
			return err
		}
		start("proxy", proxy.Run)
	}

	if services["gateway"] {
		ready := []gateway.Check{blobs.Ping}
		if st != nil {
			ready = append(ready, st.Ping)
		}
		gw, err := gateway.New(gateway.Config{
			Addr: cfg.Addr, JWTSecret: secret, ID: cfg.GatewayID,
			RequestTimeout: cfg.RequestTimeout, MaxFrameBytes: cfg.MaxFrameBytes, MaxBodyBytes: cfg.MaxBodyBytes,
			MaxFileBytes: int64(cfg.MaxFileBytes), ReadTimeout: cfg.HTTPTimeout, FileTimeout: cfg.FileTimeout, MaxUploads: cfg.MaxUploads,
			CORSOrigins: corsOrigins(cfg.CORSOrigins), RESTPerSecond: cfg.RESTPerSecond, RESTBurst: cfg.RESTBurst,
			FramesPerSecond: cfg.FramesPerSecond, FrameBurst: cfg.FrameBurst, SendQueue: cfg.SendQueue,
			AuthTimeout: cfg.AuthTimeout, Writers: cfg.Writers, WriteInterval: cfg.WriteInterval, ShutdownTimeout: cfg.ShutdownTimeout,
			Web: web.Files(),
		}, gateway.Deps{Bus: b, Metrics: reg, Gatherer: reg, Logger: log, Ready: ready, Blobs: blobs})
		if err != nil {
			return err
		}
		gwErr := make(chan error, 1)
		go func() { gwErr <- gw.Run(ctx, nil) }()
		select {
		case err = <-gwErr:
		case err = <-errs:
			stop := make(chan struct{})
			go func() { <-gwErr; close(stop) }()
			<-stop
		}
		if err != nil {
			stopServices()
			wg.Wait()
			return err
		}
	} else {
		var checks []func(context.Context) error
		checks = append(checks, b.Ping)
		if st != nil {
			checks = append(checks, st.Ping)
		}
		if blobs != nil {
			checks = append(checks, blobs.Ping)
		}
		admin := serveAdmin(cfg.AdminAddr, reg, checks, log)
		select {
		case <-ctx.Done():
		case err = <-errs:
		}
		if admin != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = admin.Shutdown(sctx)
			cancel()
		}
	}
	log.Info("stopping services")
	stopServices()
	wg.Wait()
	return err
}

// subscriptionBuffer is how many events a subscription (a gateway's, mostly) holds before it
// drops: deep enough to absorb bursts of fan-out at full speed.
const subscriptionBuffer = 1 << 16

// openBus opens the bus, and the counters of the rate limits beside it: in this process
// all-in-one, in Redis for a cluster (so that every API worker adds to the same counts).
func openBus(ctx context.Context, cfg config, log *slog.Logger) (bus.Bus, limit.Counter, error) {
	if cfg.RedisURL == "" {
		return membus.New(membus.Options{Logger: log, SubscriptionBuffer: subscriptionBuffer}), memlimit.New(), nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	client := redis.NewClient(opts)
	b, err := redisbus.New(client, redisbus.Options{Prefix: cfg.RedisPrefix, Logger: log, SubscriptionBuffer: subscriptionBuffer})
	if err != nil {
		return nil, nil, err
	}
	counter, err := redislimit.New(client, cfg.RedisPrefix)
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Ping(pctx); err != nil {
		log.Warn("redis is not answering yet; continuing, and retrying in the background", "err", err)
	}
	return b, counter, nil
}

func openStore(ctx context.Context, cfg config) (store.Store, error) {
	if cfg.MongoURI != "" {
		db, err := mongoDatabase(cfg.MongoURI)
		if err != nil {
			return nil, err
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		st, err := mongo.Open(octx, cfg.MongoURI, db, mongo.Options{})
		if err != nil {
			return nil, fmt.Errorf("MONGODB_URI: %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, cfg.DBPath, sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.DBPath, err)
	}
	return st, nil
}

// openBlobs opens where files' bytes live: a folder when MESH_FILES_DIR names one (it must be
// the same folder for every gateway and API worker: one machine, or a shared volume); else
// GridFS in the MongoDB of MONGODB_URI, which every node reaches; else a folder beside the
// SQLite file (mesh.sqlite's files go in mesh-files/).
//
// A gateway alone does not wait for MongoDB (its /readyz says when files are reachable); an
// API worker does, as it does for its store.
func openBlobs(ctx context.Context, cfg config, wait bool) (blob.Store, error) {
	if cfg.FilesDir == "" && cfg.MongoURI != "" && !wait {
		bs, err := gridfs.Connect(cfg.MongoURI)
		if err != nil {
			return nil, fmt.Errorf("MONGODB_URI (files): %w", err)
		}
		return bs, nil
	}
	if cfg.FilesDir == "" && cfg.MongoURI != "" {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		bs, err := gridfs.Open(octx, cfg.MongoURI)
		if err != nil {
			return nil, fmt.Errorf("MONGODB_URI (files): %w", err)
		}
		return bs, nil
	}
	dir := cfg.FilesDir
	if dir == "" {
		dir = strings.TrimSuffix(cfg.DBPath, filepath.Ext(cfg.DBPath)) + "-files"
	}
	bs, err := disk.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("MESH_FILES_DIR %s: %w", dir, err)
	}
	return bs, nil
}

// openRaft joins this world replica to its Raft cluster (MESH_WORLD_PEERS). The peers' host
// names may not resolve yet when a cluster starts (DNS of new pods): it retries for a while.
func openRaft(cfg config, log *slog.Logger) (*raftelect.Node, error) {
	peers, err := raftelect.ParsePeers(cfg.WorldPeers)
	if err != nil {
		return nil, fmt.Errorf("MESH_WORLD_PEERS: %w", err)
	}
	id := cfg.WorldID
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("MESH_WORLD_ID: %w", err)
		}
	}
	rc := raftelect.Config{ID: id, Peers: peers, BindAddr: cfg.WorldRaftAddr, DataDir: cfg.WorldData, Logger: log}
	deadline := time.Now().Add(30 * time.Second)
	for {
		node, err := raftelect.Open(rc)
		if err == nil {
			return node, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("world raft: %w", err)
		}
		log.Warn("world raft not ready; retrying", "err", err)
		time.Sleep(time.Second)
	}
}

// mongoDatabase is the database named in a MongoDB URI's path ("mesh" when none).
func mongoDatabase(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("MONGODB_URI: %w", err)
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		return db, nil
	}
	return "mesh", nil
}

// jwtSecret is MESH_JWT_SECRET, or (where the store is at hand) one generated on the first
// run and kept in the store, so that a restart logs no one out.
func jwtSecret(ctx context.Context, cfg config, st store.Store, services map[string]bool) ([]byte, error) {
	if cfg.JWTSecret != "" {
		if len(cfg.JWTSecret) < auth.MinSecretBytes {
			return nil, fmt.Errorf("MESH_JWT_SECRET must be at least %d characters", auth.MinSecretBytes)
		}
		return []byte(cfg.JWTSecret), nil
	}
	if !services["gateway"] && !services["api"] {
		return nil, nil
	}
	if st == nil {
		return nil, errors.New("MESH_JWT_SECRET is required for a gateway that runs apart from the API service")
	}
	gen, err := auth.NewSecret()
	if err != nil {
		return nil, err
	}
	s, err := st.SetSettingIfAbsent(ctx, "jwt_secret", gen)
	if err != nil {
		return nil, fmt.Errorf("keep the JWT secret: %w", err)
	}
	return []byte(s), nil
}

// serveAdmin serves /healthz, /readyz and /metrics for a role without a gateway (probes and
// scraping in a cluster), on addr; nothing when addr is empty.
func serveAdmin(addr string, gather prometheus.Gatherer, ready []func(context.Context) error, log *slog.Logger) *http.Server {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		for _, check := range ready {
			if err := check(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, `{"error":{"code":"unavailable","message":%q}}`, "not ready: "+err.Error())
				return
			}
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		log.Info("admin server listening", "addr", addr)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "err", err)
		}
	}()
	return srv
}

// serveDebug serves Go's profiler (net/http/pprof) on a separate, operator-only address.
func serveDebug(addr string, log *slog.Logger) {
	srv := &http.Server{Addr: addr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("debug server (pprof) listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil {
		log.Warn("debug server stopped", "err", err)
	}
}

// corsOrigins splits MESH_CORS_ORIGINS (checked by loadConfig).
func corsOrigins(v string) []string {
	var out []string
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}
