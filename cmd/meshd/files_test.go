package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	mt "github.com/themesh/mesh/internal/meshtest"
	"github.com/themesh/mesh/internal/testmongo"
	"github.com/themesh/mesh/internal/testredis"
)

// testFiles: uploads are sniffed, named safely, limited, and served only to those who may
// see them; attachments travel with messages and go with them.
func testFiles(t *testing.T, c *mt.Client, m *mesh, owner mt.User) {
	alice, bob, carol := c.Register(t, "FileAlice"), c.Register(t, "FileBob"), c.Register(t, "FileCarol")
	room := newRoom(t, c, alice, bob)
	wb, _ := mt.Connect(t, m.gw(), bob.Token)

	// HTML claiming to be a PNG, under a name that tries to climb out of any folder.
	html := []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")
	r := c.Upload(t, alice.Token, room, "../../etc/passwd", "image/png", html)
	if r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	f := r.JSON()
	sum := sha256.Sum256(html)
	if f["name"] != "passwd" || f["contentType"] != "text/html; charset=utf-8" || f["size"] != float64(len(html)) ||
		f["sha256"] != hex.EncodeToString(sum[:]) || f["roomId"] != room || f["uploaderId"] != alice.ID || f["messageId"] != nil {
		t.Fatalf("uploaded file = %v", f)
	}
	htmlID := f["id"].(string)
	// Until it is attached, only its uploader sees it.
	if r := c.Do(t, "GET", "/api/files/"+htmlID, bob.Token, nil); r.Status != 404 || r.ErrorCode() != "not_found" {
		t.Fatalf("another member reads an unattached file: %d %s", r.Status, r.Body)
	}
	got := c.Do(t, "GET", "/api/files/"+htmlID, alice.Token, nil)
	if got.Status != 200 || !bytes.Equal(got.Body, html) {
		t.Fatalf("uploader reads her file: %d %q", got.Status, got.Body)
	}
	// Served so that it cannot run on the mesh's origin: a download, never sniffed, sandboxed.
	for k, want := range map[string]string{
		"Content-Type": "text/html; charset=utf-8", "Content-Disposition": `attachment; filename=passwd`,
		"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
		"Etag": `"` + hex.EncodeToString(sum[:]) + `"`,
	} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if r := c.Do(t, "GET", "/api/files/"+htmlID, alice.Token, nil, "If-None-Match", got.Header.Get("Etag")); r.Status != 304 || len(r.Body) != 0 {
		t.Fatalf("If-None-Match: %d", r.Status)
	}

	// A real PNG, claimed to be a PDF, with a name in another script.
	var pngBuf bytes.Buffer
	_ = png.Encode(&pngBuf, image.NewRGBA(image.Rect(0, 0, 2, 2)))
	r = c.Upload(t, alice.Token, room, "лето.png", "application/pdf", pngBuf.Bytes())
	if r.Status != 201 || r.JSON()["contentType"] != "image/png" || r.JSON()["name"] != "лето.png" {
		t.Fatalf("png upload: %d %s", r.Status, r.Body)
	}
	pngID := r.JSON()["id"].(string)

	// Attached to a message, both go to whoever sees the message.
	msg := c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", alice.Token, M{"content": "look", "attachments": []string{pngID, htmlID}})
	atts, _ := msg["attachments"].([]any)
	if len(atts) != 2 || atts[0].(M)["id"] != pngID || atts[1].(M)["id"] != htmlID || atts[0].(M)["messageId"] != msg["id"] {
		t.Fatalf("message attachments = %v", msg["attachments"])
	}
	frame := wb.ExpectWhere(t, "message", func(f M) bool { return f["message"].(M)["id"] == msg["id"] })
	if a, _ := frame["message"].(M)["attachments"].([]any); len(a) != 2 || a[0].(M)["name"] != "лето.png" {
		t.Fatalf("bob's message frame: %v", frame)
	}
	img := c.Do(t, "GET", "/api/files/"+pngID, bob.Token, nil)
	if img.Status != 200 || !bytes.Equal(img.Body, pngBuf.Bytes()) || img.Header.Get("Content-Type") != "image/png" ||
		!strings.HasPrefix(img.Header.Get("Content-Disposition"), "inline;") || !strings.Contains(img.Header.Get("Content-Disposition"), "filename*=utf-8''%D0%BB") {
		t.Fatalf("bob reads the png: %d %v", img.Status, img.Header)
	}
	if r := c.Do(t, "GET", "/api/files/"+pngID+"?download=1", bob.Token, nil); !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("download=1: %v", r.Header.Get("Content-Disposition"))
	}
	// A public room's files are seen by those who may see the room, members or not.
	if r := c.Do(t, "GET", "/api/files/"+pngID, carol.Token, nil); r.Status != 200 {
		t.Fatalf("a non-member reads a public room's file: %d", r.Status)
	}
	list := c.Must(t, 200, "GET", "/api/rooms/"+room+"/files", bob.Token, nil)["items"].([]any)
	if len(list) != 2 || list[0].(M)["id"] != pngID {
		t.Fatalf("room files for bob = %v", list)
	}
	// A file goes with one message only, and only its uploader attaches it, in its room.
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/messages", alice.Token, M{"content": "again", "attachments": []string{pngID}}); r.Status != 409 || r.ErrorCode() != "conflict" {
		t.Fatalf("attach twice: %d %s", r.Status, r.Body)
	}
	mine := c.Upload(t, alice.Token, room, "notes.txt", "text/plain", []byte("notes")).JSON()["id"].(string)
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/messages", bob.Token, M{"content": "mine now", "attachments": []string{mine}}); r.Status != 400 {
		t.Fatalf("attach another's file: %d %s", r.Status, r.Body)
	}
	other := newRoom(t, c, alice)
	if r := c.Do(t, "POST", "/api/rooms/"+other+"/messages", alice.Token, M{"content": "moved", "attachments": []string{mine}}); r.Status != 400 {
		t.Fatalf("attach a file of another room: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/messages", alice.Token, M{"attachments": []string{"01J00000000000000000000000"}}); r.Status != 400 {
		t.Fatalf("attach an unknown file: %d %s", r.Status, r.Body)
	}
	// An unattached file can be deleted by its uploader; an attached one goes with its message.
	c.Must(t, 204, "DELETE", "/api/files/"+mine, alice.Token, nil)
	if r := c.Do(t, "GET", "/api/files/"+mine, alice.Token, nil); r.Status != 404 {
		t.Fatalf("deleted file: %d", r.Status)
	}
	if r := c.Do(t, "DELETE", "/api/files/"+pngID, alice.Token, nil); r.Status != 409 {
		t.Fatalf("delete an attached file: %d %s", r.Status, r.Body)
	}

	// Over the WebSocket, with no text: files alone make a message.
	wa, _ := mt.Connect(t, m.gw(), alice.Token)
	sole := c.Upload(t, alice.Token, room, "sole.txt", "text/plain", []byte("only a file")).JSON()["id"].(string)
	ack := wa.Ack(t, M{"type": "send_message", "roomId": room, "attachments": []string{sole}})
	if ack["type"] != "ack" {
		t.Fatalf("send with only a file: %v", ack)
	}
	if r := c.Do(t, "GET", "/api/files/"+sole, bob.Token, nil); r.Status != 200 || string(r.Body) != "only a file" {
		t.Fatalf("bob reads the file sent over the socket: %d %s", r.Status, r.Body)
	}

	// A whisper's files stay with its two parties.
	secret := c.Upload(t, alice.Token, room, "secret.txt", "text/plain", []byte("for bob")).JSON()["id"].(string)
	c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", alice.Token, M{"content": "psst", "to": bob.ID, "attachments": []string{secret}})
	if r := c.Do(t, "GET", "/api/files/"+secret, bob.Token, nil); r.Status != 200 {
		t.Fatalf("the addressee reads the whisper's file: %d", r.Status)
	}
	c.Must(t, 200, "POST", "/api/rooms/"+room+"/join", carol.Token, nil)
	if r := c.Do(t, "GET", "/api/files/"+secret, carol.Token, nil); r.Status != 404 {
		t.Fatalf("a third member reads a whisper's file: %d", r.Status)
	}
	if body := c.Do(t, "GET", "/api/rooms/"+room+"/files", carol.Token, nil).Body; strings.Contains(string(body), secret) {
		t.Fatalf("a third member's file list holds the whisper's file: %s", body)
	}

	// A private room's files never reach a non-member, by any route.
	priv := c.Must(t, 201, "POST", "/api/rooms", alice.Token, M{"name": "files private", "private": true})["id"].(string)
	r = c.Upload(t, alice.Token, priv, "plan.txt", "text/plain", []byte("the plan"))
	planID := r.JSON()["id"].(string)
	c.Must(t, 201, "POST", "/api/rooms/"+priv+"/messages", alice.Token, M{"content": "plan", "attachments": []string{planID}})
	for _, path := range []string{"/api/files/" + planID, "/api/rooms/" + priv + "/files"} {
		if r := c.Do(t, "GET", path, carol.Token, nil); r.Status != 404 || strings.Contains(string(r.Body), "plan.txt") {
			t.Fatalf("non-member GET %s: %d %s", path, r.Status, r.Body)
		}
	}
	if r := c.Upload(t, carol.Token, priv, "x.txt", "text/plain", []byte("x")); r.Status != 404 {
		t.Fatalf("non-member uploads to a private room: %d %s", r.Status, r.Body)
	}
	// Deleting the message deletes its files.
	delID := c.Upload(t, alice.Token, room, "gone.txt", "text/plain", []byte("soon gone")).JSON()["id"].(string)
	gone := c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", alice.Token, M{"content": "gone", "attachments": []string{delID}})
	c.Must(t, 204, "DELETE", "/api/messages/"+gone["id"].(string), alice.Token, nil)
	if r := c.Do(t, "GET", "/api/files/"+delID, alice.Token, nil); r.Status != 404 {
		t.Fatalf("a deleted message's file: %d", r.Status)
	}

	// A file larger than the request prefetch streams through whole.
	big := make([]byte, 5<<20+123)
	_, _ = rand.Read(big)
	r = c.Upload(t, alice.Token, room, "big.bin", "text/plain", big)
	if r.Status != 201 || r.JSON()["contentType"] != "application/octet-stream" || r.JSON()["size"] != float64(len(big)) {
		t.Fatalf("big upload: %d %.300s", r.Status, r.Body)
	}
	bigID := r.JSON()["id"].(string)
	if got := c.Do(t, "GET", "/api/files/"+bigID, alice.Token, nil); !bytes.Equal(got.Body, big) || got.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("big download: %d, %d bytes", got.Status, len(got.Body))
	}
	// HEAD: the size and type, no bytes.
	if h := c.Do(t, "HEAD", "/api/files/"+bigID, alice.Token, nil); h.Status != 200 || len(h.Body) != 0 ||
		h.Header.Get("Content-Length") != fmt.Sprint(len(big)) || h.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("HEAD: %d %v, %d bytes", h.Status, h.Header, len(h.Body))
	}
	// Ranges: what players and resumed downloads ask for.
	checkRanges(t, c, alice.Token, bigID, big)

	// The owner lowers the limit; a file one byte over is refused and leaves nothing.
	c.Must(t, 200, "PATCH", "/api/settings", owner.Token, M{"maxFileBytes": 1000})
	before := len(c.Must(t, 200, "GET", "/api/rooms/"+room+"/files?limit=200", alice.Token, nil)["items"].([]any))
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Other API workers drop the limit they keep as the change is announced (pub/sub),
		// within milliseconds; the loop allows for that.
		r = c.Upload(t, alice.Token, room, "over.bin", "text/plain", bytes.Repeat([]byte{0}, 1001))
		if r.Status == 413 || time.Now().After(deadline) {
			break
		}
		before++
		time.Sleep(20 * time.Millisecond)
	}
	if r.Status != 413 || r.ErrorCode() != "payload_too_large" || r.JSON()["error"].(M)["details"].(M)["maxBytes"] != 1000.0 {
		t.Fatalf("over the mesh's limit: %d %s", r.Status, r.Body)
	}
	if n := len(c.Must(t, 200, "GET", "/api/rooms/"+room+"/files?limit=200", alice.Token, nil)["items"].([]any)); n != before {
		t.Fatalf("a refused upload left a file: %d files, want %d", n, before)
	}
	if r := c.Upload(t, alice.Token, room, "exact.bin", "text/plain", bytes.Repeat([]byte{0}, 1000)); r.Status != 201 {
		t.Fatalf("at the mesh's limit: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "PATCH", "/api/settings", owner.Token, M{"maxFileBytes": 1 << 40}); r.Status != 400 {
		t.Fatalf("a limit above the server's: %d %s", r.Status, r.Body)
	}
	c.Must(t, 200, "PATCH", "/api/settings", owner.Token, M{"maxFileBytes": 26214400})

	// Bad uploads get the contract's errors.
	if r := c.Do(t, "POST", "/api/files", alice.Token, M{"roomId": room}); r.Status != 415 || r.ErrorCode() != "unsupported_media_type" {
		t.Fatalf("JSON upload: %d %s", r.Status, r.Body)
	}
	if r := c.Upload(t, alice.Token, "", "a.txt", "text/plain", []byte("a")); r.Status != 400 || r.ErrorCode() != "bad_request" || !strings.Contains(string(r.Body), "before the part file") {
		t.Fatalf("upload without roomId: %d %s", r.Status, r.Body)
	}
	// roomId as a query parameter does as well.
	if r := c.UploadTo(t, "/api/files?roomId="+room, alice.Token, "", "q.txt", "text/plain", []byte("q")); r.Status != 201 {
		t.Fatalf("upload with ?roomId=: %d %s", r.Status, r.Body)
	}
	if r := c.Upload(t, "", room, "a.txt", "text/plain", []byte("a")); r.Status != 401 {
		t.Fatalf("upload without a token: %d", r.Status)
	}
	if r := c.Upload(t, c.Register(t, "FileStranger").Token, room, "a.txt", "text/plain", []byte("a")); r.Status != 403 {
		t.Fatalf("a non-member uploads to a public room: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "GET", "/api/files/..%2F..%2Fetc%2Fpasswd", alice.Token, nil); r.Status != 404 {
		t.Fatalf("a path for a file id: %d", r.Status)
	}
	// Idempotency-Key: a retried upload is one file.
	n0 := len(c.Must(t, 200, "GET", "/api/rooms/"+room+"/files?limit=200", alice.Token, nil)["items"].([]any))
	u1 := c.Upload(t, alice.Token, room, "retry.txt", "text/plain", []byte("once"), "Idempotency-Key", "upload-1")
	u2 := c.Upload(t, alice.Token, room, "retry.txt", "text/plain", []byte("once"), "Idempotency-Key", "upload-1")
	if u1.Status != 201 || u2.Status != 201 || u1.JSON()["id"] != u2.JSON()["id"] {
		t.Fatalf("retried upload: %s / %s", u1.Body, u2.Body)
	}
	if n := len(c.Must(t, 200, "GET", "/api/rooms/"+room+"/files?limit=200", alice.Token, nil)["items"].([]any)); n != n0+1 {
		t.Fatalf("a retried upload made %d files", n-n0)
	}
	// Deleting the room deletes its files.
	c.Must(t, 204, "DELETE", "/api/rooms/"+room, owner.Token, nil)
	if r := c.Do(t, "GET", "/api/files/"+pngID, alice.Token, nil); r.Status != 404 {
		t.Fatalf("a deleted room's file: %d", r.Status)
	}
}

// In a cluster with no shared folder, files' bytes live in GridFS: uploaded through one
// gateway, they are read through another, and go with their message.
func TestFilesOverGridFS(t *testing.T) {
	cl := startCluster(t, 2, 1)
	c1, c2 := mt.NewClient(cl.gateways[0]), mt.NewClient(cl.gateways[1])
	a, b := c1.Register(t, "GridA"), c2.Register(t, "GridB")
	room := c1.Must(t, 201, "POST", "/api/rooms", a.Token, M{"name": "gridfs"})["id"].(string)
	c2.Must(t, 200, "POST", "/api/rooms/"+room+"/join", b.Token, nil)
	content := make([]byte, 600<<10) // three GridFS chunks
	_, _ = rand.Read(content)
	up := c1.Upload(t, a.Token, room, "data.bin", "image/png", content)
	if up.Status != 201 || up.JSON()["contentType"] != "application/octet-stream" {
		t.Fatalf("upload: %d %s", up.Status, up.Body)
	}
	id := up.JSON()["id"].(string)
	msg := c1.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", a.Token, M{"content": "data", "attachments": []string{id}})
	if got := c2.Do(t, "GET", "/api/files/"+id, b.Token, nil); got.Status != 200 || !bytes.Equal(got.Body, content) {
		t.Fatalf("read through the other gateway: %d, %d bytes", got.Status, len(got.Body))
	}
	checkRanges(t, c2, b.Token, id, content)
	c1.Must(t, 204, "DELETE", "/api/messages/"+msg["id"].(string), a.Token, nil)
	if r := c2.Do(t, "GET", "/api/files/"+id, b.Token, nil); r.Status != 404 {
		t.Fatalf("the deleted message's file: %d", r.Status)
	}
}

// checkRanges reads parts of a file of content with Range requests.
func checkRanges(t *testing.T, c *mt.Client, token, id string, content []byte) {
	t.Helper()
	n := len(content)
	etag := c.Do(t, "GET", "/api/files/"+id, token, nil, "Range", "bytes=0-0").Header.Get("Etag")
	for _, tt := range []struct {
		h          string
		start, end int
	}{
		{"bytes=0-99", 0, 99},
		{"bytes=261100-261200", 261100, 261200}, // across a GridFS chunk's end
		{"bytes=-10", n - 10, n - 1},
		{fmt.Sprintf("bytes=%d-", n-3), n - 3, n - 1},
	} {
		r := c.Do(t, "GET", "/api/files/"+id, token, nil, "Range", tt.h)
		want := fmt.Sprintf("bytes %d-%d/%d", tt.start, tt.end, n)
		if r.Status != 206 || r.Header.Get("Content-Range") != want || !bytes.Equal(r.Body, content[tt.start:tt.end+1]) {
			t.Fatalf("Range %s: %d %q, %d bytes", tt.h, r.Status, r.Header.Get("Content-Range"), len(r.Body))
		}
	}
	if r := c.Do(t, "GET", "/api/files/"+id, token, nil, "Range", fmt.Sprintf("bytes=%d-", n)); r.Status != 416 ||
		r.ErrorCode() != "range_not_satisfiable" || r.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", n) {
		t.Fatalf("Range past the end: %d %s", r.Status, r.Body)
	}
	// If-Range with other bytes' tag: the whole file.
	if r := c.Do(t, "GET", "/api/files/"+id, token, nil, "Range", "bytes=0-9", "If-Range", `"other"`); r.Status != 200 || len(r.Body) != n {
		t.Fatalf("If-Range mismatch: %d, %d bytes", r.Status, len(r.Body))
	}
	if r := c.Do(t, "GET", "/api/files/"+id, token, nil, "Range", "bytes=0-9", "If-Range", etag); r.Status != 206 || len(r.Body) != 10 {
		t.Fatalf("If-Range match: %d, %d bytes", r.Status, len(r.Body))
	}
}

// A slow upload has MESH_FILE_TIMEOUT, where any other request has MESH_HTTP_TIMEOUT; and a
// gateway takes MESH_MAX_UPLOADS uploads at once, answering more unavailable.
func TestSlowUploads(t *testing.T) {
	m := startAllInOne(t, map[string]string{"MESH_HTTP_TIMEOUT": "1s", "MESH_MAX_UPLOADS": "1", "MESH_UPLOADS_PER_MINUTE": "100000", "MESH_REST_RATE": "100000"})
	c := mt.NewClient(m.base)
	u := c.Register(t, "Slow")
	room := c.Must(t, 201, "POST", "/api/rooms", u.Token, M{"name": "slow"})["id"].(string)

	// The upload sends a first part, holds until the test has seen the gateway busy, then
	// trickles the rest in well past the 1 s other requests get.
	pr, pw := io.Pipe()
	form := multipart.NewWriter(pw)
	firstSent, busySeen := make(chan struct{}), make(chan struct{})
	go func() {
		_ = form.WriteField("roomId", room)
		part, _ := form.CreateFormFile("file", "slow.txt")
		_, _ = part.Write(bytes.Repeat([]byte("x"), 10000))
		close(firstSent)
		select {
		case <-busySeen:
		case <-time.After(10 * time.Second):
		}
		for range 2 {
			time.Sleep(700 * time.Millisecond) // a slow client: the time is what is tested
			_, _ = part.Write(bytes.Repeat([]byte("x"), 10000))
		}
		_ = form.Close()
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", m.base+"/api/files", pr)
	req.Header.Set("Authorization", "Bearer "+u.Token)
	req.Header.Set("Content-Type", form.FormDataContentType())
	type result struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: body}
	}()
	<-firstSent
	// While it is in progress (the gateway says so in its metrics), its one upload slot is
	// taken.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(string(c.Do(t, "GET", "/metrics", "", nil).Body), "mesh_gateway_uploads_in_progress 1"); {
		if time.Now().After(deadline) {
			t.Fatal("the slow upload never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	busy := c.Upload(t, u.Token, room, "b.txt", "text/plain", []byte("b"))
	close(busySeen)
	if busy.Status != 503 || busy.ErrorCode() != "unavailable" || busy.Header.Get("Retry-After") == "" {
		t.Fatalf("a second upload at once: %d %s", busy.Status, busy.Body)
	}
	res := <-done
	if res.err != nil || res.status != 201 || !strings.Contains(string(res.body), `"size":30000`) {
		t.Fatalf("slow upload: %d %s %v", res.status, res.body, res.err)
	}
	if r := c.Upload(t, u.Token, room, "after.txt", "text/plain", []byte("after")); r.Status != 201 {
		t.Fatalf("an upload once the slot is free: %d %s", r.Status, r.Body)
	}

	// Any other request that trickles in as slowly is cut off.
	conn, err := net.Dial("tcp", strings.TrimPrefix(m.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = fmt.Fprintf(conn, "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{\"email\":")
	time.Sleep(1500 * time.Millisecond) // past MESH_HTTP_TIMEOUT
	_, _ = conn.Write([]byte(`"slow@example.com","password":"password-123"}`))
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	answer, _ := io.ReadAll(conn)
	if strings.HasPrefix(string(answer), "HTTP/1.1 2") || strings.HasPrefix(string(answer), "HTTP/1.1 4") && !strings.HasPrefix(string(answer), "HTTP/1.1 408") {
		t.Fatalf("a request slower than MESH_HTTP_TIMEOUT was answered: %.200s", answer)
	}
}

// A gateway whose files live in GridFS starts while MongoDB is away, says it is not ready,
// and becomes ready once MongoDB answers: it does not crash-loop behind its database.
func TestGatewayStartsWithoutMongo(t *testing.T) {
	mongo := testmongo.Start(t)
	if err := mongo.Stop(); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startMeshd(t, "gateway", map[string]string{
		"REDIS_URL": "redis://" + testredis.Shared(t).Addr(), "MESH_REDIS_PREFIX": testredis.Prefix(t),
		"MESH_JWT_SECRET": strings.Repeat("s", 40), "MESH_ADDR": addr,
		"MONGODB_URI": mongo.URI() + mongo.DB(t) + "?serverSelectionTimeoutMS=500",
	})
	base := "http://" + addr
	status := func(path string) int {
		r, err := (&http.Client{Timeout: 3 * time.Second}).Get(base + path)
		if err != nil {
			return 0
		}
		r.Body.Close()
		return r.StatusCode
	}
	for deadline := time.Now().Add(15 * time.Second); status("/healthz") != 200; time.Sleep(50 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("the gateway exited without MongoDB: %v\n%s", p.err, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not start without MongoDB")
		}
	}
	if s := status("/readyz"); s != 503 {
		t.Fatalf("/readyz without MongoDB: %d", s)
	}
	if err := mongo.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); status("/readyz") != 200; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not become ready once MongoDB answered")
		}
	}
}
