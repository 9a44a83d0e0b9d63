package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mt "github.com/themesh/mesh/internal/meshtest"
)

type M = mt.M

// runSuite drives the contract of PROTOCOL.md ("Setup and auth", "Rooms and messages",
// "WebSocket") against a running mesh with several clients.
func runSuite(t *testing.T, m *mesh) {
	c := mt.NewClient(m.base)

	// Setup: the first participant is the owner.
	setup := c.Must(t, 200, "GET", "/api/setup", "", nil)
	if setup["needsSetup"] != true {
		t.Fatalf("a fresh mesh needs setup: %v", setup)
	}
	res := c.Must(t, 201, "POST", "/api/setup", "", M{"meshName": "Test Mesh", "email": "Owner@Example.com", "password": "password-123", "displayName": "Owner"})
	owner := mt.User{ID: res["participant"].(M)["id"].(string), Token: res["token"].(string), Email: "owner@example.com", Name: "Owner"}
	if role := res["participant"].(M)["role"]; role != "owner" {
		t.Fatalf("first participant's role = %v, want owner", role)
	}
	if got := c.Must(t, 200, "GET", "/api/setup", "", nil); got["needsSetup"] != false || got["meshName"] != "Test Mesh" {
		t.Fatalf("after setup: %v", got)
	}
	if r := c.Do(t, "POST", "/api/setup", "", M{"meshName": "x", "email": "x@example.com", "password": "password-123", "displayName": "X"}); r.Status != 409 || r.ErrorCode() != "conflict" {
		t.Fatalf("second setup: %d %s", r.Status, r.Body)
	}

	t.Run("auth", func(t *testing.T) { testAuth(t, c, owner) })
	t.Run("rooms", func(t *testing.T) { testRooms(t, c, owner) })
	t.Run("messages", func(t *testing.T) { testMessages(t, c, m, owner) })
	t.Run("whispers", func(t *testing.T) { testWhispers(t, c, m) })
	t.Run("websocket frames", func(t *testing.T) { testFrames(t, c, m) })
	t.Run("presence typing positions", func(t *testing.T) { testLive(t, c, m) })
	t.Run("kick and mute", func(t *testing.T) { testModeration(t, c, m, owner) })
	t.Run("logout revokes everywhere", func(t *testing.T) { testLogout(t, c, m) })
	t.Run("ban and deactivate", func(t *testing.T) { testBan(t, c, m, owner) })
	t.Run("settings", func(t *testing.T) { testSettings(t, c, owner) })
	t.Run("pins and locked threads", func(t *testing.T) { testPinsLocks(t, c, m, owner) })
	t.Run("files", func(t *testing.T) { testFiles(t, c, m, owner) })
	t.Run("feed events", func(t *testing.T) { testFeed(t, c, m, owner) })
	t.Run("a new owner's roles", func(t *testing.T) { testNewOwner(t, c, m, owner) })
	t.Run("account", func(t *testing.T) { testAccount(t, c, m) })
	t.Run("delete account", func(t *testing.T) { testDeleteAccount(t, c, m) })
	t.Run("read marks", func(t *testing.T) { testReadMarks(t, c, m) })
	t.Run("threads", func(t *testing.T) { testThreads(t, c) })
	t.Run("find participants", func(t *testing.T) { testFindParticipants(t, c) })
	t.Run("room directory", func(t *testing.T) { testRoomDirectory(t, c) })
	t.Run("seq under concurrency", func(t *testing.T) { testConcurrentSeq(t, c, m) })
	t.Run("operations", func(t *testing.T) {
		// After all those requests of every method, the metrics still export.
		r := c.Do(t, "GET", "/metrics", "", nil)
		for _, want := range []string{"mesh_gateway_connections", "mesh_gateway_frames_out_total", "mesh_gateway_command_seconds", "process_resident_memory_bytes"} {
			if r.Status != 200 || !strings.Contains(string(r.Body), want) {
				t.Fatalf("/metrics: %d, lacks %s:\n%.2000s", r.Status, want, r.Body)
			}
		}
		if h := c.Do(t, "GET", "/healthz", "", nil); h.Status != 200 {
			t.Fatalf("/healthz: %d", h.Status)
		}
		if h := c.Do(t, "GET", "/", "", nil); h.Status != 200 || !strings.Contains(string(h.Body), "The Mesh") {
			t.Fatalf("GET /: %d %.200s", h.Status, h.Body)
		}
		doc := c.Must(t, 200, "GET", "/api/openapi.json", "", nil)
		if doc["openapi"] != "3.1.0" {
			t.Fatalf("openapi.json: %v", doc["openapi"])
		}
	})
}

func testAuth(t *testing.T, c *mt.Client, owner mt.User) {
	alice := c.Register(t, "Alice")
	me := c.Must(t, 200, "GET", "/api/auth/me", alice.Token, nil)
	if me["role"] != "member" || me["email"] != alice.Email || me["isAgent"] != false || me["id"] != alice.ID {
		t.Fatalf("me = %v", me)
	}
	for _, f := range []string{"displayName", "ownerId", "did", "status", "createdAt"} {
		if _, ok := me[f]; !ok {
			t.Errorf("participant lacks %q: %v", f, me)
		}
	}
	if ts, _ := me["createdAt"].(string); len(ts) != len("2006-01-02T15:04:05.000Z") || !strings.HasSuffix(ts, "Z") {
		t.Errorf("createdAt %q is not RFC 3339 UTC with milliseconds", ts)
	}
	tests := []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"taken email, other case", "/api/auth/register", M{"email": strings.ToUpper(alice.Email), "password": "password-123", "displayName": "A2"}, 409, "conflict"},
		{"short password", "/api/auth/register", M{"email": "short@example.com", "password": "short", "displayName": "S"}, 400, "bad_request"},
		{"bad email", "/api/auth/register", M{"email": "not-an-email", "password": "password-123", "displayName": "S"}, 400, "bad_request"},
		{"no name", "/api/auth/register", M{"email": "noname@example.com", "password": "password-123"}, 400, "bad_request"},
		{"not json", "/api/auth/register", []byte("{nope"), 400, "bad_request"},
		{"wrong password", "/api/auth/login", M{"email": alice.Email, "password": "wrong-password"}, 401, "invalid_credentials"},
		{"unknown email", "/api/auth/login", M{"email": "nobody@example.com", "password": "password-123"}, 401, "invalid_credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Do(t, "POST", tt.path, "", tt.body)
			if r.Status != tt.status || r.ErrorCode() != tt.code {
				t.Fatalf("status %d code %q, want %d %q: %s", r.Status, r.ErrorCode(), tt.status, tt.code, r.Body)
			}
			if msg, _ := r.JSON()["error"].(M)["message"].(string); msg == "" {
				t.Fatalf("error without message: %s", r.Body)
			}
		})
	}
	login := c.Must(t, 200, "POST", "/api/auth/login", "", M{"email": strings.ToUpper(alice.Email), "password": "password-123"})
	if login["participant"].(M)["id"] != alice.ID || login["token"] == "" {
		t.Fatalf("login = %v", login)
	}
	for _, tok := range []string{"", "garbage", alice.Token[:len(alice.Token)-3] + "abc"} {
		if r := c.Do(t, "GET", "/api/auth/me", tok, nil); r.Status != 401 || r.ErrorCode() != "unauthorized" {
			t.Fatalf("me with token %q: %d %s", tok, r.Status, r.Body)
		}
	}
	// The permissions and roles of DESIGN.md.
	perms := c.Must(t, 200, "GET", "/api/permissions", alice.Token, nil)["items"].([]any)
	if len(perms) != 34 || perms[0].(M)["key"] != "view_rooms" || perms[0].(M)["category"] != "general" {
		t.Fatalf("permissions = %d, first %v", len(perms), perms[0])
	}
	roles := c.Must(t, 200, "GET", "/api/roles", alice.Token, nil)["items"].([]any)
	if len(roles) != 7 || roles[0].(M)["name"] != "owner" || roles[0].(M)["priority"] != 999.0 || roles[6].(M)["name"] != "spectator" {
		t.Fatalf("roles = %v", roles)
	}
	// Another participant's email is not shown; one's own is.
	p := c.Must(t, 200, "GET", "/api/participants/"+owner.ID, alice.Token, nil)
	if _, has := p["email"]; has || p["role"] != "owner" {
		t.Fatalf("owner as alice sees it: %v", p)
	}
	// Idempotency-Key: a repeated registration returns the first result.
	body := M{"email": "idem@example.com", "password": "password-123", "displayName": "Idem"}
	r1 := c.Do(t, "POST", "/api/auth/register", "", body, "Idempotency-Key", "k-1")
	r2 := c.Do(t, "POST", "/api/auth/register", "", body, "Idempotency-Key", "k-1")
	if r1.Status != 201 || r2.Status != 201 || r1.JSON()["participant"].(M)["id"] != r2.JSON()["participant"].(M)["id"] {
		t.Fatalf("idempotent register: %d %s / %d %s", r1.Status, r1.Body, r2.Status, r2.Body)
	}
	// Bodies over the limit are refused.
	big := []byte(`{"email":"` + strings.Repeat("a", 1<<20) + `"}`)
	if r := c.Do(t, "POST", "/api/auth/login", "", big); r.Status != 413 || r.ErrorCode() != "payload_too_large" {
		t.Fatalf("1 MiB body: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "GET", "/api/nothing-here", alice.Token, nil); r.Status != 404 || r.ErrorCode() != "not_found" {
		t.Fatalf("unknown route: %d %s", r.Status, r.Body)
	}
}

func testRooms(t *testing.T, c *mt.Client, owner mt.User) {
	bob := c.Register(t, "Bob")
	carol := c.Register(t, "Carol")
	room := c.Must(t, 201, "POST", "/api/rooms", bob.Token, M{"name": "General", "topic": "all things"})
	id := room["id"].(string)
	if room["name"] != "General" || room["private"] != false || room["archived"] != false || room["createdBy"] != bob.ID || room["memberCount"] != 1.0 {
		t.Fatalf("room = %v", room)
	}
	if r := c.Do(t, "POST", "/api/rooms", bob.Token, M{"name": "  "}); r.Status != 400 {
		t.Fatalf("blank name: %d", r.Status)
	}
	joined := c.Must(t, 200, "POST", "/api/rooms/"+id+"/join", carol.Token, nil)
	if joined["memberCount"] != 2.0 {
		t.Fatalf("after join: %v", joined)
	}
	members := c.Must(t, 200, "GET", "/api/rooms/"+id+"/members", bob.Token, nil)["items"].([]any)
	if len(members) != 2 {
		t.Fatalf("members = %v", members)
	}
	upd := c.Must(t, 200, "PATCH", "/api/rooms/"+id, owner.Token, M{"topic": "new topic"})
	if upd["topic"] != "new topic" {
		t.Fatalf("patched = %v", upd)
	}
	if r := c.Do(t, "PATCH", "/api/rooms/"+id, bob.Token, M{"topic": "mine"}); r.Status != 403 || r.ErrorCode() != "forbidden" {
		t.Fatalf("member edits room: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "POST", "/api/rooms/"+id+"/leave", carol.Token, nil); r.Status != 204 {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	if got := c.Must(t, 200, "GET", "/api/rooms/"+id, carol.Token, nil); got["memberCount"] != 1.0 {
		t.Fatalf("after leave: %v", got)
	}

	// A private room is invisible to non-members on every route.
	priv := c.Must(t, 201, "POST", "/api/rooms", bob.Token, M{"name": "Secret Plans", "private": true})
	pid := priv["id"].(string)
	list := c.Do(t, "GET", "/api/rooms", carol.Token, nil)
	if strings.Contains(string(list.Body), "Secret Plans") || strings.Contains(string(list.Body), pid) {
		t.Fatalf("private room listed for a non-member: %s", list.Body)
	}
	for _, path := range []string{"/api/rooms/" + pid, "/api/rooms/" + pid + "/messages", "/api/rooms/" + pid + "/members"} {
		r := c.Do(t, "GET", path, carol.Token, nil)
		if r.Status != 404 || strings.Contains(string(r.Body), "Secret") {
			t.Fatalf("GET %s as non-member: %d %s", path, r.Status, r.Body)
		}
	}
	if r := c.Do(t, "POST", "/api/rooms/"+pid+"/join", carol.Token, nil); r.Status != 404 {
		t.Fatalf("join private: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(string(c.Do(t, "GET", "/api/rooms", bob.Token, nil).Body), "Secret Plans") {
		t.Fatal("private room not listed for its member")
	}
	// An invitation is the way in: then carol sees it and its history.
	c.Must(t, 200, "POST", "/api/rooms/"+pid+"/invites", bob.Token, M{"participantId": carol.ID})
	if r := c.Do(t, "GET", "/api/rooms/"+pid, carol.Token, nil); r.Status != 200 || !strings.Contains(string(r.Body), "Secret Plans") {
		t.Fatalf("invited member reads the private room: %d", r.Status)
	}
	c.Must(t, 204, "POST", "/api/rooms/"+pid+"/leave", carol.Token, nil)
	// Search never finds what is in a private room one is not in.
	c.Must(t, 201, "POST", "/api/rooms/"+pid+"/messages", bob.Token, M{"content": "the secret word is zebra"})
	if r := c.Must(t, 200, "GET", "/api/search?q=ZEBRA", bob.Token, nil)["items"].([]any); len(r) != 1 {
		t.Fatalf("member's search = %v", r)
	}
	if r := c.Do(t, "GET", "/api/search?q=zebra", carol.Token, nil); r.Status != 200 || strings.Contains(string(r.Body), "zebra") {
		t.Fatalf("non-member's search: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "GET", "/api/search?q=zebra&roomId="+pid, carol.Token, nil); r.Status != 404 {
		t.Fatalf("non-member's search in the private room: %d", r.Status)
	}
	// Paging: limit and nextCursor.
	for i := 0; i < 3; i++ {
		c.Must(t, 201, "POST", "/api/rooms", bob.Token, M{"name": fmt.Sprintf("page %d", i)})
	}
	var seen []string
	cursor := ""
	for i := 0; i < 20; i++ {
		page := c.Must(t, 200, "GET", "/api/rooms?limit=2&cursor="+cursor, bob.Token, nil)
		for _, r := range page["items"].([]any) {
			seen = append(seen, r.(M)["id"].(string))
		}
		next, _ := page["nextCursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	all := c.Must(t, 200, "GET", "/api/rooms?limit=200", bob.Token, nil)["items"].([]any)
	if len(seen) != len(all) || len(all) < 5 {
		t.Fatalf("paged %d rooms, listed %d", len(seen), len(all))
	}
	if r := c.Do(t, "DELETE", "/api/rooms/"+id, bob.Token, nil); r.Status != 403 {
		t.Fatalf("member deletes room: %d", r.Status)
	}
	if r := c.Do(t, "DELETE", "/api/rooms/"+id, owner.Token, nil); r.Status != 204 {
		t.Fatalf("owner deletes room: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "GET", "/api/rooms/"+id, bob.Token, nil); r.Status != 404 {
		t.Fatalf("deleted room: %d", r.Status)
	}
}

// newRoom makes a room of creator's that the others join.
func newRoom(t *testing.T, c *mt.Client, creator mt.User, others ...mt.User) string {
	t.Helper()
	id := c.Must(t, 201, "POST", "/api/rooms", creator.Token, M{"name": "room " + t.Name()})["id"].(string)
	for _, u := range others {
		c.Must(t, 200, "POST", "/api/rooms/"+id+"/join", u.Token, nil)
	}
	return id
}

func testMessages(t *testing.T, c *mt.Client, m *mesh, owner mt.User) {
	dan := c.Register(t, "Dan")
	eve := c.Register(t, "Eve")
	room := newRoom(t, c, dan, eve)
	wd, snap := mt.Connect(t, m.gw(), dan.Token)
	we, _ := mt.Connect(t, m.gw(), eve.Token)
	rooms := snap["rooms"].([]any)
	if len(rooms) != 1 || rooms[0].(M)["id"] != room || len(rooms[0].(M)["members"].([]any)) != 2 {
		t.Fatalf("snapshot rooms = %v", rooms)
	}

	// Over WebSocket: ack with messageId and seq; both sockets get the message.
	ack := wd.Ack(t, M{"type": "send_message", "roomId": room, "content": "hello", "clientMsgId": "c-1"})
	if ack["seq"] != 1.0 || ack["messageId"] == "" {
		t.Fatalf("ack = %v", ack)
	}
	for _, w := range []*mt.WS{wd, we} {
		msg := w.Expect(t, "message")["message"].(M)
		if msg["content"] != "hello" || msg["seq"] != 1.0 || msg["authorId"] != dan.ID || msg["clientMsgId"] != "c-1" || msg["deleted"] != false {
			t.Fatalf("message = %v", msg)
		}
		if r, ok := msg["reactions"].(M); !ok || len(r) != 0 {
			t.Fatalf("reactions = %v", msg["reactions"])
		}
	}
	// The same clientMsgId again: the first message back, nothing new stored or broadcast.
	again := wd.Ack(t, M{"type": "send_message", "roomId": room, "content": "hello again", "clientMsgId": "c-1"})
	if again["messageId"] != ack["messageId"] || again["seq"] != 1.0 {
		t.Fatalf("repeat ack = %v", again)
	}
	we.Quiet(t, "message", 200*time.Millisecond)
	// Over REST: same effects.
	rest := c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", eve.Token, M{"content": "from rest"})
	if rest["seq"] != 2.0 {
		t.Fatalf("rest message = %v", rest)
	}
	if got := wd.Expect(t, "message")["message"].(M); got["id"] != rest["id"] {
		t.Fatalf("socket got %v", got)
	}
	// Threads.
	root := ack["messageId"].(string)
	reply := wd.Ack(t, M{"type": "send_message", "roomId": room, "content": "in thread", "threadId": root})
	if reply["seq"] != 3.0 {
		t.Fatalf("thread reply ack = %v", reply)
	}
	thread := c.Must(t, 200, "GET", "/api/rooms/"+room+"/messages?threadId="+root, eve.Token, nil)["items"].([]any)
	if len(thread) != 2 || thread[1].(M)["threadId"] != root {
		t.Fatalf("thread = %v", thread)
	}
	if e := wd.Request(t, M{"type": "send_message", "roomId": room, "content": "x", "threadId": "nope"}); e["code"] != "bad_request" {
		t.Fatalf("bad threadId: %v", e)
	}
	// Edits, reactions, deletes reach the room.
	edited := wd.Ack(t, M{"type": "edit_message", "messageId": root, "content": "hello, edited"})
	if edited["messageId"] != root {
		t.Fatalf("edit ack = %v", edited)
	}
	if m := we.Expect(t, "message_edited")["message"].(M); m["content"] != "hello, edited" || m["editedAt"] == nil {
		t.Fatalf("edited = %v", m)
	}
	if e := we.Request(t, M{"type": "edit_message", "messageId": root, "content": "not mine"}); e["code"] != "forbidden" {
		t.Fatalf("editing another's message: %v", e)
	}
	we.Ack(t, M{"type": "add_reaction", "messageId": root, "emoji": "👍"})
	if r := wd.Expect(t, "reaction_added"); r["emoji"] != "👍" || r["participantId"] != eve.ID || r["messageId"] != root || r["roomId"] != room {
		t.Fatalf("reaction_added = %v", r)
	}
	withReaction := c.Must(t, 200, "POST", "/api/messages/"+root+"/reactions", dan.Token, M{"emoji": "👍"})
	if got := withReaction["reactions"].(M)["👍"].([]any); len(got) != 2 || got[0] != eve.ID {
		t.Fatalf("reactions = %v", withReaction["reactions"])
	}
	after := c.Must(t, 200, "DELETE", "/api/messages/"+root+"/reactions/%F0%9F%91%8D", eve.Token, nil)
	if got := after["reactions"].(M)["👍"].([]any); len(got) != 1 || got[0] != dan.ID {
		t.Fatalf("after removal = %v", after["reactions"])
	}
	if r := wd.Expect(t, "reaction_removed"); r["participantId"] != eve.ID {
		t.Fatalf("reaction_removed = %v", r)
	}
	we.Ack(t, M{"type": "delete_message", "messageId": rest["id"]})
	if e := we.Request(t, M{"type": "delete_message", "messageId": reply["messageId"]}); e["code"] != "forbidden" {
		t.Fatalf("deleting another's message: %v", e)
	}
	c.Must(t, 204, "DELETE", "/api/messages/"+rest["id"].(string), owner.Token, nil) // already deleted: fine
	if d := wd.Expect(t, "message_deleted"); d["messageId"] != rest["id"] || d["roomId"] != room {
		t.Fatalf("message_deleted = %v", d)
	}
	// History: seq order, after/before/limit, deleted messages keep id and seq.
	for i := 0; i < 7; i++ {
		c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", dan.Token, M{"content": fmt.Sprintf("n%d", i)})
	}
	all := c.Must(t, 200, "GET", "/api/rooms/"+room+"/messages?limit=200", eve.Token, nil)["items"].([]any)
	if len(all) != 10 {
		t.Fatalf("history has %d messages, want 10", len(all))
	}
	for i, m := range all {
		if m.(M)["seq"] != float64(i+1) {
			t.Fatalf("history[%d].seq = %v", i, m.(M)["seq"])
		}
	}
	if del := all[1].(M); del["deleted"] != true || del["content"] != "" || del["id"] != rest["id"] {
		t.Fatalf("deleted message = %v", del)
	}
	page := c.Must(t, 200, "GET", "/api/rooms/"+room+"/messages?after=3&limit=4", eve.Token, nil)
	if items := page["items"].([]any); len(items) != 4 || items[0].(M)["seq"] != 4.0 || page["nextCursor"] != "7" {
		t.Fatalf("after=3&limit=4 = %v", page)
	}
	page = c.Must(t, 200, "GET", "/api/rooms/"+room+"/messages?after=0&limit=2", eve.Token, nil)
	if items := page["items"].([]any); len(items) != 2 || items[0].(M)["seq"] != 1.0 || page["nextCursor"] != "2" {
		t.Fatalf("after=0&limit=2 = %v", page)
	}
	page = c.Must(t, 200, "GET", "/api/rooms/"+room+"/messages?before=5&limit=2", eve.Token, nil)
	if items := page["items"].([]any); len(items) != 2 || items[0].(M)["seq"] != 3.0 || items[1].(M)["seq"] != 4.0 {
		t.Fatalf("before=5&limit=2 = %v", page)
	}
	if r := c.Do(t, "GET", "/api/rooms/"+room+"/messages?after=x", eve.Token, nil); r.Status != 400 {
		t.Fatalf("after=x: %d", r.Status)
	}
	// Content limits.
	if e := wd.Request(t, M{"type": "send_message", "roomId": room, "content": strings.Repeat("a", 16<<10+1)}); e["code"] != "payload_too_large" {
		t.Fatalf("16 KiB + 1 content: %v", e)
	}
	if ok := wd.Ack(t, M{"type": "send_message", "roomId": room, "content": strings.Repeat("a", 16<<10)}); ok["seq"] != 11.0 {
		t.Fatalf("16 KiB content: %v", ok)
	}
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/messages", dan.Token, M{"content": ""}); r.Status != 400 {
		t.Fatalf("empty content: %d", r.Status)
	}
	// A non-member cannot send.
	frank := c.Register(t, "Frank")
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/messages", frank.Token, M{"content": "hi"}); r.Status != 403 {
		t.Fatalf("non-member sends: %d %s", r.Status, r.Body)
	}
}

func testWhispers(t *testing.T, c *mt.Client, m *mesh) {
	a, b, x := c.Register(t, "WhisperA"), c.Register(t, "WhisperB"), c.Register(t, "Outsider")
	room := newRoom(t, c, a, b, x)
	wa, _ := mt.Connect(t, m.gw(), a.Token)
	wb, _ := mt.Connect(t, m.gw(), b.Token)
	wx, _ := mt.Connect(t, m.gw(), x.Token)
	ack := wa.Ack(t, M{"type": "send_message", "roomId": room, "content": "psst", "to": b.ID})
	wa.Ack(t, M{"type": "send_message", "roomId": room, "content": "public"})
	for _, w := range []*mt.WS{wa, wb} {
		if m := w.Expect(t, "message")["message"].(M); m["content"] != "psst" || m["to"] != b.ID {
			t.Fatalf("whisper = %v", m)
		}
	}
	if m := wx.Expect(t, "message")["message"].(M); m["content"] != "public" {
		t.Fatalf("outsider got %v first", m)
	}
	hist := c.Do(t, "GET", "/api/rooms/"+room+"/messages", x.Token, nil)
	if strings.Contains(string(hist.Body), "psst") || strings.Contains(string(hist.Body), ack["messageId"].(string)) {
		t.Fatalf("outsider's history holds the whisper: %s", hist.Body)
	}
	if !strings.Contains(string(c.Do(t, "GET", "/api/rooms/"+room+"/messages", b.Token, nil).Body), "psst") {
		t.Fatal("addressee's history lacks the whisper")
	}
	// Reacting to, editing or deleting a whisper one cannot see: not found.
	if r := c.Do(t, "POST", "/api/messages/"+ack["messageId"].(string)+"/reactions", x.Token, M{"emoji": "👀"}); r.Status != 404 {
		t.Fatalf("outsider reacts to whisper: %d", r.Status)
	}
	wx.Quiet(t, "reaction_added", 100*time.Millisecond)
	wa.Ack(t, M{"type": "edit_message", "messageId": ack["messageId"], "content": "psst!"})
	wb.Expect(t, "message_edited")
	wx.Quiet(t, "message_edited", 300*time.Millisecond)
}

func testFrames(t *testing.T, c *mt.Client, m *mesh) {
	u := c.Register(t, "Framer")
	w := mt.DialWS(t, m.gw())
	// Anything before authenticate: unauthorized, socket stays open.
	if e := w.Request(t, M{"type": "send_message", "roomId": "r", "content": "x"}); e["type"] != "error" || e["code"] != "unauthorized" {
		t.Fatalf("before auth: %v", e)
	}
	if e := w.Request(t, M{"type": "authenticate", "token": "bad"}); e["code"] != "unauthorized" {
		t.Fatalf("bad token: %v", e)
	}
	w.Send(t, M{"type": "authenticate", "token": u.Token})
	w.Expect(t, "auth_ok")
	w.Expect(t, "snapshot")
	bad := []struct {
		frame string
		code  string
	}{
		{`not json`, "bad_request"},
		{`[1,2]`, "bad_request"},
		{`{"type":"nope","ref":"a"}`, "bad_request"},
		{`{"type":"send_message","ref":"b"}`, "bad_request"},
		{`{"type":"send_message","ref":"c","roomId":5,"content":"x"}`, "bad_request"},
		{`{"type":"move","ref":"d","roomId":"r","x":"a","y":1}`, "bad_request"},
		{`{"type":"send_message","ref":"e","roomId":"no-such-room","content":"x"}`, "not_found"},
	}
	for _, b := range bad {
		w.SendRaw(t, []byte(b.frame))
		e := w.Expect(t, "error")
		if e["code"] != b.code {
			t.Fatalf("frame %s: error %v, want %s", b.frame, e, b.code)
		}
	}
	// The socket stayed open through all of that.
	if p := w.Request(t, M{"type": "ping"}); p["type"] != "pong" {
		t.Fatalf("ping: %v", p)
	}
}

func testLive(t *testing.T, c *mt.Client, m *mesh) {
	a, b := c.Register(t, "LiveA"), c.Register(t, "LiveB")
	room := newRoom(t, c, a, b)
	wb, _ := mt.Connect(t, m.gw(), b.Token)
	// a's first socket: online to b; a's second socket: no new presence.
	wa1, snap := mt.Connect(t, m.gw(), a.Token)
	if p := wb.ExpectWhere(t, "presence", func(m M) bool { return m["participantId"] == a.ID }); p["status"] != "online" {
		t.Fatalf("presence = %v", p)
	}
	var bStatus any
	for _, p := range snap["participants"].([]any) {
		if p.(M)["id"] == b.ID {
			bStatus = p.(M)["status"]
		}
	}
	if bStatus != "online" {
		t.Fatalf("snapshot says b is %v", bStatus)
	}
	wa2, _ := mt.Connect(t, m.gw(), a.Token)
	// Typing reaches the others, not the typer.
	wa1.Ack(t, M{"type": "typing", "roomId": room, "isTyping": true})
	if ty := wb.Expect(t, "typing"); ty["participantId"] != a.ID || ty["isTyping"] != true || ty["roomId"] != room {
		t.Fatalf("typing = %v", ty)
	}
	wa2.Quiet(t, "typing", 150*time.Millisecond)
	// Moves are folded into the tick: the latest position per mover, one event per tick.
	for i := 1; i <= 5; i++ {
		wa1.Send(t, M{"type": "move", "roomId": room, "x": float64(i), "y": float64(2 * i)})
	}
	wa1.Ack(t, M{"type": "ping"})
	deadline := time.Now().Add(5 * time.Second)
	var last M
	events := 0
	for time.Now().Before(deadline) {
		p := wb.ExpectWhere(t, "positions", func(M) bool { return true })
		events++
		ps := p["positions"].([]any)
		if len(ps) != 1 || p["roomId"] != room || p["tick"] == nil {
			t.Fatalf("positions = %v", p)
		}
		last = ps[0].(M)
		if last["x"] == 5.0 {
			break
		}
	}
	if last["x"] != 5.0 || last["y"] != 10.0 || last["participantId"] != a.ID || events > 5 {
		t.Fatalf("last position %v after %d events", last, events)
	}
	if e := wa1.Request(t, M{"type": "move", "roomId": "elsewhere", "x": 1, "y": 1}); e["type"] != "error" {
		t.Fatalf("move in a room one is not in: %v", e)
	}
	// A new socket's snapshot has the positions.
	wb2, snap2 := mt.Connect(t, m.gw(), b.Token)
	ps := snap2["positions"].(M)[room].([]any)
	if len(ps) != 1 || ps[0].(M)["x"] != 5.0 {
		t.Fatalf("snapshot positions = %v", snap2["positions"])
	}
	wb2.Close()
	// Offline only when a's last socket closes.
	wa1.Close()
	wb.Quiet(t, "presence", 300*time.Millisecond)
	wa2.Close()
	if p := wb.ExpectWhere(t, "presence", func(m M) bool { return m["participantId"] == a.ID }); p["status"] != "offline" {
		t.Fatalf("presence after last socket = %v", p)
	}
}

func testModeration(t *testing.T, c *mt.Client, m *mesh, owner mt.User) {
	m1, m2 := c.Register(t, "ModA"), c.Register(t, "ModB")
	room := newRoom(t, c, owner, m1, m2)
	wo, _ := mt.Connect(t, m.gw(), owner.Token)
	w1, _ := mt.Connect(t, m.gw(), m1.Token)
	w2, _ := mt.Connect(t, m.gw(), m2.Token)
	// A member cannot kick (no permission), nor anyone kick the owner (priority).
	if e := w1.Request(t, M{"type": "kick", "roomId": room, "participantId": m2.ID}); e["code"] != "forbidden" {
		t.Fatalf("member kicks: %v", e)
	}
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/mute", m1.Token, M{"participantId": owner.ID, "durationSeconds": 60}); r.Status != 403 {
		t.Fatalf("member mutes owner: %d", r.Status)
	}
	// Mute: the muted participant hears of it, and its sends are refused.
	wo.Ack(t, M{"type": "mute", "roomId": room, "participantId": m1.ID, "durationSeconds": 60})
	mu := w1.Expect(t, "muted")
	if mu["participantId"] != m1.ID || mu["until"] == nil {
		t.Fatalf("muted = %v", mu)
	}
	wo.Expect(t, "muted")
	w2.Quiet(t, "muted", 150*time.Millisecond)
	if e := w1.Request(t, M{"type": "send_message", "roomId": room, "content": "let me speak"}); e["code"] != "muted" {
		t.Fatalf("muted send: %v", e)
	}
	c.Must(t, 204, "POST", "/api/rooms/"+room+"/mute", owner.Token, M{"participantId": m1.ID, "durationSeconds": 0})
	w1.Ack(t, M{"type": "send_message", "roomId": room, "content": "free again"})
	// Kick: everyone sees participant_left with kicked; the kicked one gets kicked and
	// leaves the room.
	wo.Ack(t, M{"type": "kick", "roomId": room, "participantId": m2.ID, "reason": "spam"})
	if k := w2.Expect(t, "kicked"); k["roomId"] != room || k["by"] != owner.ID || k["reason"] != "spam" {
		t.Fatalf("kicked = %v", k)
	}
	if l := w1.ExpectWhere(t, "participant_left", func(m M) bool { return m["participantId"] == m2.ID }); l["kicked"] != true {
		t.Fatalf("participant_left = %v", l)
	}
	wo.Ack(t, M{"type": "send_message", "roomId": room, "content": "after the kick"})
	w1.ExpectWhere(t, "message", func(m M) bool { return m["message"].(M)["content"] == "after the kick" })
	w2.Quiet(t, "message", 300*time.Millisecond)
	if e := w2.Request(t, M{"type": "send_message", "roomId": room, "content": "still here?"}); e["code"] != "forbidden" {
		t.Fatalf("kicked participant sends: %v", e)
	}
	// A member demoted to spectator cannot send one more message on the socket it has.
	c.Must(t, 200, "PUT", "/api/participants/"+m1.ID+"/role", owner.Token, M{"role": "spectator"})
	if rc := w1.Expect(t, "role_changed"); rc["role"] != "spectator" {
		t.Fatalf("role_changed = %v", rc)
	}
	if e := w1.Request(t, M{"type": "send_message", "roomId": room, "content": "still a member?"}); e["code"] != "forbidden" {
		t.Fatalf("demoted member sends: %v", e)
	}
	c.Must(t, 200, "PUT", "/api/participants/"+m1.ID+"/role", owner.Token, M{"role": "member"})
	w1.Ack(t, M{"type": "send_message", "roomId": room, "content": "member again"})
	// join_room / leave_room over WebSocket.
	w2.Ack(t, M{"type": "join_room", "roomId": room})
	if j := w2.Expect(t, "participant_joined"); j["participant"].(M)["id"] != m2.ID {
		t.Fatalf("joiner's participant_joined = %v", j)
	}
	w1.ExpectWhere(t, "participant_joined", func(m M) bool { return m["participant"].(M)["id"] == m2.ID })
	wo.Ack(t, M{"type": "send_message", "roomId": room, "content": "welcome back"})
	w2.ExpectWhere(t, "message", func(m M) bool { return m["message"].(M)["content"] == "welcome back" })
	w2.Ack(t, M{"type": "leave_room", "roomId": room})
	w2.ExpectWhere(t, "participant_left", func(m M) bool { return m["participantId"] == m2.ID })
}

func testLogout(t *testing.T, c *mt.Client, m *mesh) {
	u := c.Register(t, "Leaver")
	other := c.Must(t, 200, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "password-123"})["token"].(string)
	w, _ := mt.Connect(t, m.gw(), u.Token)
	w2, _ := mt.Connect(t, m.gw(), other)
	if r := c.Do(t, "POST", "/api/auth/logout", u.Token, nil); r.Status != 204 {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if code := w.WaitClosed(t, 5*time.Second); code != 4001 {
		t.Fatalf("socket of the revoked token closed with %d, want 4001", code)
	}
	if r := c.Do(t, "GET", "/api/auth/me", u.Token, nil); r.Status != 401 {
		t.Fatalf("revoked token on REST: %d", r.Status)
	}
	ws := mt.DialWS(t, m.gw())
	if e := ws.Request(t, M{"type": "authenticate", "token": u.Token}); e["code"] != "unauthorized" {
		t.Fatalf("revoked token on WebSocket: %v", e)
	}
	// The other token of the same participant still works.
	w2.Ack(t, M{"type": "ping"})
	c.Must(t, 200, "GET", "/api/auth/me", other, nil)
}

func testConcurrentSeq(t *testing.T, c *mt.Client, m *mesh) {
	users := make([]mt.User, 4)
	for i := range users {
		users[i] = c.Register(t, fmt.Sprintf("Seq%d", i))
	}
	room := newRoom(t, c, users[0], users[1:]...)
	watcher, _ := mt.Connect(t, m.gw(), users[0].Token)
	const per = 25
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func(u mt.User) {
			defer wg.Done()
			w, _ := mt.Connect(t, m.gw(), u.Token)
			for i := 0; i < per; i++ {
				w.Ack(t, M{"type": "send_message", "roomId": room, "content": fmt.Sprintf("%s-%d", u.Name, i)})
			}
		}(u)
	}
	wg.Wait()
	// The watcher receives every message, in seq order, with no gap.
	for want := 1; want <= per*len(users); want++ {
		m := watcher.Expect(t, "message")["message"].(M)
		if m["seq"] != float64(want) {
			t.Fatalf("watcher got seq %v, want %d", m["seq"], want)
		}
	}
	items := c.Must(t, 200, "GET", "/api/rooms/"+room+"/messages?limit=200", users[1].Token, nil)["items"].([]any)
	if len(items) != per*len(users) {
		t.Fatalf("stored %d messages, want %d", len(items), per*len(users))
	}
}

func testBan(t *testing.T, c *mt.Client, m *mesh, owner mt.User) {
	u := c.Register(t, "Troll")
	w, _ := mt.Connect(t, m.gw(), u.Token)
	// A member cannot ban; the owner can, and the banned participant's sockets close.
	if r := c.Do(t, "POST", "/api/participants/"+owner.ID+"/ban", u.Token, nil); r.Status != 403 {
		t.Fatalf("member bans the owner: %d", r.Status)
	}
	if p := c.Must(t, 200, "POST", "/api/participants/"+u.ID+"/ban", owner.Token, nil); p["id"] != u.ID {
		t.Fatalf("ban = %v", p)
	}
	if code := w.WaitClosed(t, 5*time.Second); code != 4003 {
		t.Fatalf("banned participant's socket closed with %d, want 4003", code)
	}
	if r := c.Do(t, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "password-123"}); r.Status != 403 || r.ErrorCode() != "banned" {
		t.Fatalf("banned login: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "GET", "/api/auth/me", u.Token, nil); r.Status != 403 {
		t.Fatalf("banned token on REST: %d", r.Status)
	}
	ws := mt.DialWS(t, m.gw())
	if e := ws.Request(t, M{"type": "authenticate", "token": u.Token}); e["code"] != "banned" {
		t.Fatalf("banned participant connects: %v", e)
	}
	c.Must(t, 200, "DELETE", "/api/participants/"+u.ID+"/ban", owner.Token, nil)
	c.Must(t, 200, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "password-123"})
	// Deactivation likewise keeps the account out.
	c.Must(t, 200, "POST", "/api/participants/"+u.ID+"/deactivate", owner.Token, nil)
	if r := c.Do(t, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "password-123"}); r.Status != 401 {
		t.Fatalf("deactivated login: %d", r.Status)
	}
	c.Must(t, 200, "POST", "/api/participants/"+u.ID+"/reactivate", owner.Token, nil)
	c.Must(t, 200, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "password-123"})
	// The list of participants: emails only for manage_members.
	list := c.Must(t, 200, "GET", "/api/participants?limit=200", u.Token, nil)["items"].([]any)
	for _, p := range list {
		if _, has := p.(M)["email"]; has && p.(M)["id"] != u.ID {
			t.Fatalf("a member sees another's email: %v", p)
		}
	}
	full := c.Must(t, 200, "GET", "/api/participants?limit=200", owner.Token, nil)["items"].([]any)
	if len(full) != len(list) || full[0].(M)["email"] == nil {
		t.Fatalf("owner's list: %d items, first %v", len(full), full[0])
	}
}

func testSettings(t *testing.T, c *mt.Client, owner mt.User) {
	u := c.Register(t, "Plain")
	if r := c.Do(t, "PATCH", "/api/settings", u.Token, M{"registrationOpen": false}); r.Status != 403 {
		t.Fatalf("member changes settings: %d", r.Status)
	}
	got := c.Must(t, 200, "PATCH", "/api/settings", owner.Token, M{"registrationOpen": false, "defaultRole": "spectator"})
	if got["registrationOpen"] != false || got["defaultRole"] != "spectator" || got["meshName"] != "Test Mesh" {
		t.Fatalf("settings = %v", got)
	}
	r := c.Do(t, "POST", "/api/auth/register", "", M{"email": "late@example.com", "password": "password-123", "displayName": "Late"})
	if r.Status != 403 || r.ErrorCode() != "registration_closed" {
		t.Fatalf("register while closed: %d %s", r.Status, r.Body)
	}
	// While closed, an invite code opens the door, as many times as it allows.
	inv := c.Must(t, 201, "POST", "/api/invites", owner.Token, M{"maxUses": 1})
	code := inv["code"].(string)
	if inv["uses"] != 0.0 || inv["maxUses"] != 1.0 || inv["expiresAt"] == nil {
		t.Fatalf("invite = %v", inv)
	}
	c.Must(t, 201, "POST", "/api/auth/register", "", M{"email": "invited@example.com", "password": "password-123", "displayName": "Invited", "inviteCode": code})
	r = c.Do(t, "POST", "/api/auth/register", "", M{"email": "second@example.com", "password": "password-123", "displayName": "Second", "inviteCode": code})
	if r.Status != 403 || r.ErrorCode() != "registration_closed" {
		t.Fatalf("a used-up invite: %d %s", r.Status, r.Body)
	}
	if list := c.Must(t, 200, "GET", "/api/invites", owner.Token, nil)["items"].([]any); list[0].(M)["uses"] != 1.0 {
		t.Fatalf("invites = %v", list)
	}
	c.Must(t, 204, "DELETE", "/api/invites/"+code, owner.Token, nil)
	c.Must(t, 200, "PATCH", "/api/settings", owner.Token, M{"registrationOpen": true})
	if p := c.Register(t, "Newcomer"); p.ID == "" {
		t.Fatal("no registration after reopening")
	}
	me := c.Must(t, 200, "GET", "/api/auth/me", c.Register(t, "Watcher").Token, nil)
	if me["role"] != "spectator" {
		t.Fatalf("a newcomer's role = %v, want the default spectator", me["role"])
	}
	c.Must(t, 200, "PATCH", "/api/settings", owner.Token, M{"defaultRole": "member"})

	// The audit log holds those changes, the refused one too; only its readers see it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		items := c.Must(t, 200, "GET", "/api/audit?action=settings.update&limit=200", owner.Token, nil)["items"].([]any)
		refused := 0
		for _, it := range items {
			if it.(M)["result"] == "forbidden" && it.(M)["actorId"] == u.ID {
				refused++
			}
		}
		if len(items) >= 4 && refused == 1 {
			break
		}
		if time.Now().After(deadline) { // the log is written in batches, within 50 ms
			t.Fatalf("audit of settings.update: %d entries, %d refused", len(items), refused)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := c.Do(t, "GET", "/api/audit", u.Token, nil); r.Status != 403 {
		t.Fatalf("a member reads the audit log: %d", r.Status)
	}
}

func testPinsLocks(t *testing.T, c *mt.Client, m *mesh, owner mt.User) {
	u := c.Register(t, "Pinner")
	room := newRoom(t, c, owner, u)
	wu, _ := mt.Connect(t, m.gw(), u.Token)
	root := c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", owner.Token, M{"content": "read me"})
	id := root["id"].(string)
	// Members cannot pin (moderators and up can); the owner pins, the room hears it.
	if r := c.Do(t, "POST", "/api/messages/"+id+"/pin", u.Token, nil); r.Status != 403 {
		t.Fatalf("member pins: %d", r.Status)
	}
	if p := c.Must(t, 200, "POST", "/api/messages/"+id+"/pin", owner.Token, nil); p["pinned"] != true {
		t.Fatalf("pinned = %v", p)
	}
	if f := wu.Expect(t, "message_pinned"); f["messageId"] != id || f["by"] != owner.ID {
		t.Fatalf("message_pinned = %v", f)
	}
	pins := c.Must(t, 200, "GET", "/api/rooms/"+room+"/pins", u.Token, nil)["items"].([]any)
	if len(pins) != 1 || pins[0].(M)["id"] != id {
		t.Fatalf("pins = %v", pins)
	}
	// A locked thread takes replies only from lock_threads holders.
	c.Must(t, 200, "POST", "/api/messages/"+id+"/lock", owner.Token, nil)
	wu.Expect(t, "thread_locked")
	if e := wu.Request(t, M{"type": "send_message", "roomId": room, "content": "reply", "threadId": id}); e["code"] != "forbidden" {
		t.Fatalf("reply in a locked thread: %v", e)
	}
	c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", owner.Token, M{"content": "owner replies", "threadId": id})
	c.Must(t, 200, "DELETE", "/api/messages/"+id+"/lock", owner.Token, nil)
	wu.Ack(t, M{"type": "send_message", "roomId": room, "content": "reply", "threadId": id})
	c.Must(t, 200, "DELETE", "/api/messages/"+id+"/pin", owner.Token, nil)
	if pins := c.Must(t, 200, "GET", "/api/rooms/"+room+"/pins", u.Token, nil)["items"].([]any); len(pins) != 0 {
		t.Fatalf("pins after unpin = %v", pins)
	}
}
