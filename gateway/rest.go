package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/themesh/mesh/pkg/auth"
	"github.com/themesh/mesh/pkg/mesh"
)

var pathParam = regexp.MustCompile(`\{([A-Za-z]+)\}`)

// fiberPath turns /api/rooms/{roomId} into /api/rooms/:roomId.
func fiberPath(p string) string { return pathParam.ReplaceAllString(p, ":$1") }

func (g *Gateway) newApp() *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "meshd",
		DisableStartupMessage: true,
		// Bodies are streamed to the handlers (fasthttp reads 8 KiB ahead), and each applies
		// its own limit: the contract's for JSON routes, the file limit for uploads (see
		// finishBody for what is left unread). Multipart forms are not parsed ahead: an
		// upload goes straight to the blob store. BodyLimit only decides which bodies are
		// streamed from the start.
		BodyLimit:                    g.cfg.MaxBodyBytes + 1<<20,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  g.cfg.ReadTimeout,
		WriteTimeout:                 g.cfg.ReadTimeout,
		IdleTimeout:                  120 * time.Second,
		// fasthttp keeps this buffer for the life of an upgraded connection: it is per-socket
		// memory, so it stays at the default (which also bounds request headers).
		ReadBufferSize: 4096,
		ErrorHandler:   g.fiberError,
	})
	app.Use(func(c *fiber.Ctx) error {
		defer g.finishBody(c)
		if g.draining.Load() && c.Path() != "/healthz" {
			return writeError(c, mesh.Errorf(mesh.CodeUnavailable, "the server is shutting down"))
		}
		start := time.Now()
		err := c.Next()
		if strings.HasPrefix(c.Path(), "/api/") {
			// Route().Path is the route's own string; Method() points into a reused buffer.
			g.metrics.requests.WithLabelValues(c.Route().Path, strings.Clone(c.Method())).Observe(time.Since(start).Seconds())
		}
		return err
	})
	if len(g.cfg.CORSOrigins) > 0 {
		app.Use("/api", cors.New(cors.Config{
			AllowOrigins:  strings.Join(g.cfg.CORSOrigins, ","),
			AllowMethods:  "GET,POST,PUT,PATCH,DELETE,HEAD",
			AllowHeaders:  "Authorization,Content-Type,Idempotency-Key,If-None-Match,If-Range,Range",
			ExposeHeaders: "ETag,Content-Range,Content-Disposition,Accept-Ranges,Retry-After",
			MaxAge:        600,
		}))
	}
	app.Use("/api", g.limitREST)
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", g.readyz)
	if g.gather != nil {
		h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g.gather, promhttp.HandlerOpts{}))
		app.Get("/metrics", func(c *fiber.Ctx) error { h(c.Context()); return nil })
	}
	for _, r := range mesh.Routes {
		h := g.restHandler(r)
		switch r.Op {
		case mesh.OpFilesUpload:
			h = g.upload(r)
		case mesh.OpFilesGet:
			h = g.download(r)
			// HEAD too: players and link previews ask for a file's size and type first.
			app.Add(fiber.MethodHead, fiberPath(r.Path), h)
		}
		app.Add(r.Method, fiberPath(r.Path), h)
	}
	openapi, _ := json.Marshal(mesh.OpenAPI())
	app.Get("/api/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(openapi)
	})
	app.All("/api/*", func(c *fiber.Ctx) error {
		return writeError(c, mesh.Errorf(mesh.CodeNotFound, "no route %s %s", c.Method(), c.Path()))
	})
	app.Get("/ws", func(c *fiber.Ctx) error {
		if !websocket.IsWebSocketUpgrade(c) {
			return writeError(c, mesh.Errorf(mesh.CodeBadRequest, "this is a WebSocket endpoint"))
		}
		if bc, ok := c.Context().Conn().(*bufConn); ok {
			c.Locals("bufconn", bc)
		}
		return c.Next()
	}, websocket.New(g.serveSocket, websocket.Config{
		// The gateway writes frames itself (see socket.turn); the library writes only control
		// frames, through a small pooled buffer.
		// Reads already go through fasthttp's buffer; a small second one is enough.
		ReadBufferSize:  512,
		WriteBufferSize: 256,
		WriteBufferPool: &sync.Pool{},
	}))
	if g.cfg.Web != nil && hasFile(g.cfg.Web, "index.html") {
		app.Use("/", filesystem.New(filesystem.Config{Root: http.FS(g.cfg.Web), Index: "index.html", NotFoundFile: "404.html"}))
	} else {
		// No web build in this binary: say so at /, rather than a bare 404.
		app.Get("/", func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
			return c.SendString(placeholderPage)
		})
	}
	app.Server().HeaderReceived = g.fileTimeouts
	return app
}

// fiberError turns Fiber's own errors (body too large, no route) into the contract's shape.
func (g *Gateway) fiberError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusRequestEntityTooLarge:
			return writeError(c, mesh.Errorf(mesh.CodePayloadTooLarge, "the body is larger than %d bytes", g.cfg.MaxBodyBytes))
		case fiber.StatusNotFound:
			return writeError(c, mesh.Errorf(mesh.CodeNotFound, "not found"))
		case fiber.StatusMethodNotAllowed:
			return writeError(c, &mesh.Error{Code: mesh.CodeBadRequest, Message: "method not allowed"})
		case fiber.StatusBadRequest:
			return writeError(c, mesh.Errorf(mesh.CodeBadRequest, "%s", fe.Message))
		}
	}
	g.log.Error("request failed", "path", c.Path(), "err", err)
	return writeError(c, mesh.Errorf(mesh.CodeInternal, "internal error"))
}

// verified is a request's bearer token as verified, kept in its Locals: the rate limit and the
// handler both need it, and it is checked once.
type verified struct {
	claims auth.Claims
	err    *mesh.Error
}

// claims verifies the request's bearer token (once per request).
func (g *Gateway) claims(c *fiber.Ctx) (auth.Claims, *mesh.Error) {
	if v, ok := c.Locals(verified{}).(*verified); ok {
		return v.claims, v.err
	}
	v := &verified{}
	tok, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		v.err = mesh.Errorf(mesh.CodeUnauthorized, "an Authorization: Bearer token is required")
	} else if claims, err := g.tokens.Verify(strings.TrimSpace(tok)); err != nil {
		v.err = mesh.AsError(err)
	} else {
		v.claims = claims
	}
	c.Locals(verified{}, v)
	return v.claims, v.err
}

// bearer verifies the request's bearer token.
func (g *Gateway) bearer(c *fiber.Ctx) (*mesh.Actor, *mesh.Error) {
	claims, err := g.claims(c)
	if err != nil {
		return nil, err
	}
	return &mesh.Actor{ID: claims.ParticipantID, TokenID: claims.TokenID, TokenExp: claims.ExpiresAt.Unix(), TokenGen: claims.Generation, Addr: c.IP()}, nil
}

// restHandler serves one route by sending its operation to the API service.
func (g *Gateway) restHandler(r mesh.Route) fiber.Handler {
	names := pathParam.FindAllStringSubmatch(r.Path, -1)
	return func(c *fiber.Ctx) error {
		raw, merr := readBody(c, g.cfg.MaxBodyBytes)
		if merr != nil {
			return writeError(c, merr)
		}
		cmd := mesh.Command{Op: r.Op, Args: mesh.Request{Addr: c.IP()}}
		if r.Auth {
			a, err := g.bearer(c)
			if err != nil {
				return writeError(c, err)
			}
			cmd.Actor = a
		}
		if len(names) > 0 {
			cmd.Args.Params = make(map[string]string, len(names))
			for _, n := range names {
				v, err := url.PathUnescape(c.Params(n[1]))
				if err != nil {
					return writeError(c, mesh.Errorf(mesh.CodeBadRequest, "bad %s", n[1]))
				}
				cmd.Args.Params[n[1]] = v
			}
		}
		if q := c.Context().QueryArgs(); q.Len() > 0 {
			cmd.Args.Query = make(map[string]string, q.Len())
			q.VisitAll(func(k, v []byte) { cmd.Args.Query[string(k)] = string(v) })
		}
		if body := bytes.TrimSpace(raw); len(body) > 0 {
			ct := c.Get(fiber.HeaderContentType)
			if ct != "" && !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
				return writeError(c, mesh.Errorf(mesh.CodeUnsupportedMediaType, "send JSON (Content-Type: application/json)"))
			}
			if !json.Valid(body) {
				return writeError(c, mesh.Errorf(mesh.CodeBadRequest, "the body is not valid JSON"))
			}
			cmd.Args.Body = append([]byte(nil), body...)
		}
		if r.Mutating {
			if k := c.Get("Idempotency-Key"); k != "" {
				if len(k) > 255 {
					return writeError(c, mesh.Errorf(mesh.CodeBadRequest, "Idempotency-Key is longer than 255 characters"))
				}
				cmd.IdempotencyKey = k
			}
		}
		rep := g.req.do(context.Background(), mesh.StreamAPI, &cmd)
		if rep.Error != nil {
			return writeError(c, rep.Error)
		}
		status := rep.Status
		if status == 0 {
			status = http.StatusOK
		}
		if status == http.StatusNoContent || len(rep.Result) == 0 {
			return c.SendStatus(status)
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(status).Send(rep.Result)
	}
}

func hasFile(fsys fs.FS, name string) bool {
	f, err := fsys.Open(name)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

const placeholderPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The Mesh</title>
<style>body{background:#0b0d10;color:#e6e6e6;font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}code{color:#9cdcfe}a{color:#7aa2f7}</style>
</head><body>
<h1>The Mesh is running</h1>
<p>This build has no web app (it is built into <code>web/out</code> by the web issue's build).
Clients can use the API now:</p>
<ul>
<li>REST under <code>/api</code>: the OpenAPI document is at <a href="/api/openapi.json">/api/openapi.json</a></li>
<li>WebSocket at <code>/ws</code>: send <code>{"type":"authenticate","token":"..."}</code> first</li>
<li>Operations: <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>, <a href="/metrics">/metrics</a></li>
</ul>
</body></html>
`
