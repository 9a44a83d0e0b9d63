package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/mesh"
)

// Files' bytes go between the client and the blob store through the gateway, never over the
// bus: the API service decides (files.authorize before an upload is read, files.get before a
// download), records (files.upload) and deletes; the gateway streams.

const (
	// maxFormParts bounds the parts of an upload's form (roomId and file, and a few the client
	// may add, which are read and dropped).
	maxFormParts = 8
	// maxFieldBytes bounds a form field that is not the file.
	maxFieldBytes = 1024
	// formOverhead is what an upload's body may hold beyond its file: part headers and fields.
	formOverhead = 64 << 10
)

// The server streams request bodies (Fiber's StreamRequestBody): a handler reads the body
// from c.Request().BodyStream(), never with c.Body(), which would read any amount into
// memory. A body is in memory already up to Fiber's BodyLimit, and streamed past it.

// bodyStream is the request's body as a reader.
func bodyStream(c *fiber.Ctx) io.Reader {
	if r := c.Request().BodyStream(); r != nil {
		return r
	}
	return bytes.NewReader(c.Request().Body())
}

// readBody reads a JSON route's body, at most max bytes: past that, payload_too_large
// without reading the rest.
func readBody(c *fiber.Ctx, max int) ([]byte, *mesh.Error) {
	tooLarge := mesh.Errorf(mesh.CodePayloadTooLarge, "the body is larger than %d bytes", max)
	if n := c.Request().Header.ContentLength(); n > max {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(bodyStream(c), int64(max)+1))
	if err != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "the body could not be read")
	}
	if len(b) > max {
		return nil, tooLarge
	}
	return b, nil
}

// finishBody runs after every handler: a body left unread must not be taken for the next
// request on the connection. Up to the JSON limit and a margin, the rest is read and
// dropped, so that a client still sending an oversized body gets its 413 on a connection
// that stays open; a longer rest closes the connection instead (the client may then see
// its write fail before it reads the answer).
func (g *Gateway) finishBody(c *fiber.Ctx) {
	r := c.Request().BodyStream()
	if r == nil {
		return
	}
	max := int64(g.cfg.MaxBodyBytes) + 1<<20
	if n, err := io.Copy(io.Discard, io.LimitReader(r, max+1)); n > max || err != nil {
		c.Set(fiber.HeaderConnection, "close")
	}
}

// upload serves POST /api/files: a multipart form whose roomId field (or query parameter)
// comes before its file part. The API service is asked first; then the bytes are streamed
// into the blob store, measured (size, SHA-256) and sniffed; then the API records the file.
func (g *Gateway) upload(r mesh.Route) fiber.Handler {
	return func(c *fiber.Ctx) error {
		fail := func(e *mesh.Error) error { return writeError(c, e) }
		a, merr := g.bearer(c)
		if merr != nil {
			return fail(merr)
		}
		if g.blobs == nil {
			return fail(mesh.Errorf(mesh.CodeUnavailable, "this mesh has no file storage configured"))
		}
		select {
		case g.uploads <- struct{}{}:
			g.metrics.uploads.Inc()
			defer func() { g.metrics.uploads.Dec(); <-g.uploads }()
		default:
			c.Set(fiber.HeaderRetryAfter, "5")
			return fail(mesh.Errorf(mesh.CodeUnavailable, "too many uploads in progress on this server; try again shortly"))
		}
		mt, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
		if err != nil || mt != fiber.MIMEMultipartForm || params["boundary"] == "" {
			return fail(mesh.Errorf(mesh.CodeUnsupportedMediaType, "send multipart/form-data with the fields roomId and file"))
		}
		if n := c.Request().Header.ContentLength(); n > 0 && int64(n) > g.cfg.MaxFileBytes+formOverhead {
			return fail(tooLarge(g.cfg.MaxFileBytes))
		}
		idemKey := c.Get("Idempotency-Key")
		if len(idemKey) > 255 {
			return fail(mesh.Errorf(mesh.CodeBadRequest, "Idempotency-Key is longer than 255 characters"))
		}
		room := c.Query("roomId")
		form := multipart.NewReader(bodyStream(c), params["boundary"])
		var file *multipart.Part
		for i := 0; file == nil; i++ {
			if i == maxFormParts {
				return fail(mesh.Errorf(mesh.CodeBadRequest, "the form has more than %d parts", maxFormParts))
			}
			part, err := form.NextPart()
			if errors.Is(err, io.EOF) {
				return fail(mesh.Errorf(mesh.CodeBadRequest, "the form has no part named file"))
			}
			if err != nil {
				return fail(mesh.Errorf(mesh.CodeBadRequest, "the form is not valid multipart: %v", err))
			}
			switch part.FormName() {
			case "file":
				file = part
			case "roomId":
				v, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
				if err != nil || len(v) > maxFieldBytes {
					return fail(mesh.Errorf(mesh.CodeBadRequest, "roomId is not a room id"))
				}
				room = string(v)
			default:
				if n, _ := io.Copy(io.Discard, io.LimitReader(part, maxFieldBytes+1)); n > maxFieldBytes {
					return fail(mesh.Errorf(mesh.CodeBadRequest, "field %q is larger than %d bytes", part.FormName(), maxFieldBytes))
				}
			}
		}
		if room == "" {
			return fail(mesh.Errorf(mesh.CodeBadRequest, "roomId is required: a form field before the part file, or ?roomId="))
		}
		ctx := context.Background()
		body, _ := json.Marshal(map[string]string{"roomId": room})
		rep := g.req.do(ctx, mesh.StreamAPI, &mesh.Command{Op: mesh.OpFilesAuthorize, Actor: a, Args: mesh.Request{Addr: c.IP(), Body: body}})
		if rep.Error != nil {
			return fail(rep.Error)
		}
		var grant mesh.FileGrant
		if err := json.Unmarshal(rep.Result, &grant); err != nil || grant.FileID == "" {
			return fail(mesh.Errorf(mesh.CodeInternal, "internal error"))
		}
		max := min(grant.MaxBytes, g.cfg.MaxFileBytes)
		// Sniff the type from the first bytes (http.DetectContentType reads at most 512);
		// what the client says of the type is not trusted.
		br := bufio.NewReaderSize(file, 512)
		head, _ := br.Peek(512)
		contentType := http.DetectContentType(head)
		sum := sha256.New()
		client := &clientReader{r: br}
		size, err := g.blobs.Put(ctx, grant.FileID, io.TeeReader(client, sum), max)
		if err != nil {
			var me *mesh.Error
			if errors.As(err, &me) && me.Code == mesh.CodePayloadTooLarge {
				return fail(tooLarge(max))
			}
			if client.err != nil {
				// The client's side: cut short, malformed, or slower than MESH_FILE_TIMEOUT.
				return fail(mesh.Errorf(mesh.CodeBadRequest, "the upload was cut short or too slow (%v)", client.err))
			}
			g.log.Warn("file not stored", "file", grant.FileID, "err", err)
			return fail(mesh.Errorf(mesh.CodeUnavailable, "the file could not be stored; try again"))
		}
		up, _ := json.Marshal(mesh.FileUpload{
			FileID: grant.FileID, RoomID: room, Name: file.FileName(), ContentType: contentType,
			Size: size, SHA256: hex.EncodeToString(sum.Sum(nil)),
		})
		rep = g.req.do(ctx, mesh.StreamAPI, &mesh.Command{
			Op: r.Op, Actor: a, IdempotencyKey: idemKey, Args: mesh.Request{Addr: c.IP(), Body: up},
		})
		var stored mesh.File
		if rep.Error == nil {
			_ = json.Unmarshal(rep.Result, &stored)
		}
		// Refused, or an Idempotency-Key replay that answers with the first upload: these bytes
		// are nobody's. (When the API is unavailable the record may exist: keep them.)
		if (rep.Error != nil && rep.Error.Code != mesh.CodeUnavailable) || (rep.Error == nil && stored.ID != grant.FileID) {
			if err := g.blobs.Delete(ctx, grant.FileID); err != nil {
				g.log.Warn("file bytes not deleted", "file", grant.FileID, "err", err)
			}
		}
		if rep.Error != nil {
			return writeError(c, rep.Error)
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(http.StatusCreated).Send(rep.Result)
	}
}

// clientReader keeps the error of reading an upload from its client (other than its end), to
// tell the client's failures from the blob store's.
type clientReader struct {
	r   io.Reader
	err error
}

func (c *clientReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func tooLarge(max int64) *mesh.Error {
	return mesh.Errorf(mesh.CodePayloadTooLarge, "the file is larger than %d bytes", max).
		WithDetails(map[string]any{"maxBytes": max})
}

// inlineTypes are shown in place by browsers without running anything; every other type is
// sent as an attachment (a download), so that no uploaded HTML, SVG or script runs on the
// mesh's origin.
var inlineTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/bmp": true,
	"application/pdf": true, "text/plain": true, "application/ogg": true,
}

// download serves GET /api/files/{fileId}: the API service says whether the actor may see
// the file and what it is; the bytes come from the blob store.
func (g *Gateway) download(r mesh.Route) fiber.Handler {
	return func(c *fiber.Ctx) error {
		a, merr := g.bearer(c)
		if merr != nil {
			return writeError(c, merr)
		}
		if g.blobs == nil {
			return writeError(c, mesh.Errorf(mesh.CodeUnavailable, "this mesh has no file storage configured"))
		}
		id := c.Params("fileId")
		if err := blob.CheckID(id); err != nil {
			return writeError(c, mesh.Errorf(mesh.CodeNotFound, "no such file"))
		}
		ctx := context.Background()
		rep := g.req.do(ctx, mesh.StreamAPI, &mesh.Command{Op: r.Op, Actor: a, Args: mesh.Request{Addr: c.IP(), Params: map[string]string{"fileId": id}}})
		if rep.Error != nil {
			return writeError(c, rep.Error)
		}
		var f mesh.File
		if err := json.Unmarshal(rep.Result, &f); err != nil {
			return writeError(c, mesh.Errorf(mesh.CodeInternal, "internal error"))
		}
		etag := `"` + f.SHA256 + `"`
		c.Set(fiber.HeaderETag, etag)
		// Who may see a file can change: caches keep it, but ask each time.
		c.Set(fiber.HeaderCacheControl, "private, no-cache")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; sandbox")
		if inm := c.Get(fiber.HeaderIfNoneMatch); inm != "" && etagMatches(inm, etag) {
			return c.SendStatus(http.StatusNotModified)
		}
		rc, size, err := g.blobs.Open(ctx, f.ID)
		if err != nil {
			if mesh.IsCode(err, mesh.CodeNotFound) {
				return writeError(c, mesh.Errorf(mesh.CodeNotFound, "the file's bytes are gone"))
			}
			g.log.Warn("file not read", "file", f.ID, "err", err)
			return writeError(c, mesh.Errorf(mesh.CodeUnavailable, "the file could not be read; try again"))
		}
		disposition := "attachment"
		if mt, _, _ := mime.ParseMediaType(f.ContentType); c.Query("download") == "" &&
			(inlineTypes[mt] || strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/")) {
			disposition = "inline"
		}
		c.Set(fiber.HeaderContentDisposition, mime.FormatMediaType(disposition, map[string]string{"filename": f.Name}))
		c.Set(fiber.HeaderContentType, f.ContentType)
		c.Set(fiber.HeaderAcceptRanges, "bytes")
		if c.Method() == fiber.MethodHead {
			rc.Close()
			c.Response().SkipBody = true
			c.Response().Header.SetContentLength(int(size))
			return nil
		}
		// One range (what players and resumed downloads ask for), unless If-Range names
		// other bytes than these; several ranges get the whole file.
		if h := c.Get(fiber.HeaderRange); h != "" && size > 0 && (c.Get(fiber.HeaderIfRange) == "" || c.Get(fiber.HeaderIfRange) == etag) {
			start, end, ok, satisfiable := byteRange(h, size)
			if ok && !satisfiable {
				rc.Close()
				c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", size))
				return writeError(c, mesh.Errorf(mesh.CodeRangeNotSatisfiable, "the file has %d bytes", size))
			}
			if ok {
				if err := skip(rc, start); err != nil {
					rc.Close()
					g.log.Warn("file not read", "file", f.ID, "err", err)
					return writeError(c, mesh.Errorf(mesh.CodeUnavailable, "the file could not be read; try again"))
				}
				c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", start, end, size))
				c.Status(http.StatusPartialContent)
				return c.SendStream(readCloser{io.LimitReader(rc, end-start+1), rc}, int(end-start+1))
			}
		}
		// fasthttp closes rc once it has sent it.
		return c.SendStream(rc, int(size))
	}
}

// byteRange reads a Range header of one range of bytes against a file of size bytes: ok if
// it is one (anything else is ignored, and the whole file sent), satisfiable if it overlaps
// the file, and then its first and last byte.
func byteRange(h string, size int64) (start, end int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" { // the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 {
			return 0, 0, true, false
		}
		return max(size-n, 0), size - 1, true, true
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false, false
	}
	end = size - 1
	if last != "" {
		if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
			return 0, 0, false, false
		}
		end = min(end, size-1)
	}
	if start >= size {
		return 0, 0, true, false
	}
	return start, end, true, true
}

// skip moves r n bytes on: by seeking when it can (a file on disk), by the GridFS stream's
// Skip, or by reading.
func skip(r io.Reader, n int64) error {
	if n == 0 {
		return nil
	}
	switch s := r.(type) {
	case io.Seeker:
		_, err := s.Seek(n, io.SeekStart)
		return err
	case interface{ Skip(int64) (int64, error) }:
		got, err := s.Skip(n)
		if err == nil && got != n {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	_, err := io.CopyN(io.Discard, r, n)
	return err
}

// readCloser reads from one reader and closes another (a limited view of a file).
type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// etagMatches reports whether an If-None-Match header names etag (or is "*").
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// fileTimeouts gives file uploads and downloads FileTimeout to be read and written, in place
// of ReadTimeout (fasthttp asks once a request's headers are in).
func (g *Gateway) fileTimeouts(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	path := string(h.RequestURI())
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch {
	case string(h.Method()) == fiber.MethodPost && path == "/api/files",
		string(h.Method()) == fiber.MethodGet && strings.HasPrefix(path, "/api/files/"):
		return fasthttp.RequestConfig{ReadTimeout: g.cfg.FileTimeout, WriteTimeout: g.cfg.FileTimeout}
	}
	return fasthttp.RequestConfig{}
}
