package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// config is every setting meshd reads, with its default. README.md lists the same table;
// a test keeps the two in step.
type config struct {
	Addr                   string
	DBPath                 string
	RedisURL               string
	RedisPrefix            string
	MongoURI               string
	JWTSecret              string
	TokenTTL               time.Duration
	BcryptCost             int
	GatewayID              string
	RequestTimeout         time.Duration
	MaxContentBytes        int
	MaxFrameBytes          int
	MaxBodyBytes           int
	MaxFileBytes           int
	FilesDir               string
	UploadsPerMinute       int
	HTTPTimeout            time.Duration
	FileTimeout            time.Duration
	MaxUploads             int
	CORSOrigins            string
	RESTPerSecond          float64
	RESTBurst              int
	FramesPerSecond        float64
	FrameBurst             int
	SendQueue              int
	AuthTimeout            time.Duration
	Writers                int
	WriteInterval          time.Duration
	ShutdownTimeout        time.Duration
	RegistrationsPerMinute int
	FailedLoginsPerMinute  int
	APIConcurrency         int
	LogLevel               slog.Level
	LogFormat              string
	DebugAddr              string
	AdminAddr              string
	WorldID                string
	WorldPeers             string
	WorldRaftAddr          string
	WorldData              string
}

// setting describes one environment variable.
type setting struct {
	env, def string
	set      func(c *config, v string) error
}

func str(f func(*config) *string) func(*config, string) error {
	return func(c *config, v string) error { *f(c) = v; return nil }
}

func num(f func(*config) *int) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("must be a non-negative integer")
		}
		*f(c) = n
		return nil
	}
}

func dur(f func(*config) *time.Duration) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("must be a positive duration like 5s")
		}
		*f(c) = d
		return nil
	}
}

// settings is the table of every environment variable meshd reads.
var settings = []setting{
	{"MESH_ADDR", ":4000", str(func(c *config) *string { return &c.Addr })},
	{"MESH_DB_PATH", "mesh.sqlite", str(func(c *config) *string { return &c.DBPath })},
	{"REDIS_URL", "", str(func(c *config) *string { return &c.RedisURL })},
	{"MESH_REDIS_PREFIX", "", str(func(c *config) *string { return &c.RedisPrefix })},
	{"MONGODB_URI", "", str(func(c *config) *string { return &c.MongoURI })},
	{"MESH_JWT_SECRET", "", str(func(c *config) *string { return &c.JWTSecret })},
	{"MESH_TOKEN_TTL", "720h", dur(func(c *config) *time.Duration { return &c.TokenTTL })},
	{"MESH_BCRYPT_COST", "10", func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4 || n > 31 {
			return fmt.Errorf("must be between 4 and 31")
		}
		c.BcryptCost = n
		return nil
	}},
	{"MESH_GATEWAY_ID", "", str(func(c *config) *string { return &c.GatewayID })},
	{"MESH_REQUEST_TIMEOUT", "5s", dur(func(c *config) *time.Duration { return &c.RequestTimeout })},
	{"MESH_MAX_CONTENT_BYTES", "16384", num(func(c *config) *int { return &c.MaxContentBytes })},
	{"MESH_MAX_FRAME_BYTES", "65536", num(func(c *config) *int { return &c.MaxFrameBytes })},
	{"MESH_MAX_BODY_BYTES", "1048576", num(func(c *config) *int { return &c.MaxBodyBytes })},
	{"MESH_MAX_FILE_BYTES", "26214400", num(func(c *config) *int { return &c.MaxFileBytes })},
	{"MESH_FILES_DIR", "", str(func(c *config) *string { return &c.FilesDir })},
	{"MESH_UPLOADS_PER_MINUTE", "60", num(func(c *config) *int { return &c.UploadsPerMinute })},
	{"MESH_HTTP_TIMEOUT", "30s", dur(func(c *config) *time.Duration { return &c.HTTPTimeout })},
	{"MESH_FILE_TIMEOUT", "10m", dur(func(c *config) *time.Duration { return &c.FileTimeout })},
	{"MESH_MAX_UPLOADS", "64", num(func(c *config) *int { return &c.MaxUploads })},
	{"MESH_REST_RATE", "50", func(c *config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("must be a positive number")
		}
		c.RESTPerSecond = f
		return nil
	}},
	{"MESH_REST_BURST", "100", num(func(c *config) *int { return &c.RESTBurst })},
	{"MESH_CORS_ORIGINS", "", func(c *config, v string) error {
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimSpace(o)
			if o != "*" && !(strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://")) || strings.HasSuffix(o, "/") {
				return fmt.Errorf("must be a comma-separated list of origins like https://app.example.com (no path), or *")
			}
		}
		c.CORSOrigins = v
		return nil
	}},
	{"MESH_WS_FRAMES_PER_SECOND", "200", func(c *config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("must be a positive number")
		}
		c.FramesPerSecond = f
		return nil
	}},
	{"MESH_WS_FRAME_BURST", "400", num(func(c *config) *int { return &c.FrameBurst })},
	{"MESH_WS_SEND_QUEUE", "4096", num(func(c *config) *int { return &c.SendQueue })},
	{"MESH_WS_WRITERS", "0", num(func(c *config) *int { return &c.Writers })},
	{"MESH_WS_WRITE_INTERVAL", "50ms", func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Second {
			return fmt.Errorf("must be a duration from 0s to 1s")
		}
		if d == 0 {
			d = -1 // off
		}
		c.WriteInterval = d
		return nil
	}},
	{"MESH_WS_AUTH_TIMEOUT", "10s", dur(func(c *config) *time.Duration { return &c.AuthTimeout })},
	{"MESH_SHUTDOWN_TIMEOUT", "10s", dur(func(c *config) *time.Duration { return &c.ShutdownTimeout })},
	{"MESH_REGISTRATIONS_PER_MINUTE", "120", num(func(c *config) *int { return &c.RegistrationsPerMinute })},
	{"MESH_FAILED_LOGINS_PER_MINUTE", "20", num(func(c *config) *int { return &c.FailedLoginsPerMinute })},
	{"MESH_API_CONCURRENCY", "16", num(func(c *config) *int { return &c.APIConcurrency })},
	{"MESH_LOG_LEVEL", "info", func(c *config, v string) error {
		return c.LogLevel.UnmarshalText([]byte(v))
	}},
	{"MESH_DEBUG_ADDR", "", str(func(c *config) *string { return &c.DebugAddr })},
	{"MESH_ADMIN_ADDR", "", str(func(c *config) *string { return &c.AdminAddr })},
	{"MESH_WORLD_ID", "", str(func(c *config) *string { return &c.WorldID })},
	{"MESH_WORLD_PEERS", "", str(func(c *config) *string { return &c.WorldPeers })},
	{"MESH_WORLD_RAFT_ADDR", "", str(func(c *config) *string { return &c.WorldRaftAddr })},
	{"MESH_WORLD_DATA", "mesh-world", str(func(c *config) *string { return &c.WorldData })},
	{"MESH_LOG_FORMAT", "text", func(c *config, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("must be text or json")
		}
		c.LogFormat = v
		return nil
	}},
}

// loadConfig reads every setting from getenv, with defaults; a bad value is an error naming
// the variable.
func loadConfig(getenv func(string) string) (config, error) {
	var c config
	for _, s := range settings {
		v := strings.TrimSpace(getenv(s.env))
		if v == "" {
			v = s.def
		}
		if v == "" {
			continue
		}
		if err := s.set(&c, v); err != nil {
			return config{}, fmt.Errorf("%s=%q: %w", s.env, v, err)
		}
	}
	return c, nil
}
