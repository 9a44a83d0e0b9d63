package main

import (
	"testing"
	"time"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// testAccount: one's own profile, password change, and signing out everywhere.
func testAccount(t *testing.T, c *mt.Client, m *mesh) {
	u, peer := c.Register(t, "Acct"), c.Register(t, "AcctPeer")
	newRoom(t, c, u, peer)
	newRoom(t, c, peer, u) // two rooms shared: still one frame
	wp, _ := mt.Connect(t, m.gw(), peer.Token)
	if got := c.Must(t, 200, "PATCH", "/api/auth/me", u.Token, M{"displayName": "  Renamed  "}); got["displayName"] != "Renamed" || got["email"] != u.Email {
		t.Fatalf("profile update: %v", got)
	}
	// Whoever shares a room hears it, once, without the email.
	upd := wp.Expect(t, "participant_updated")["participant"].(M)
	if upd["id"] != u.ID || upd["displayName"] != "Renamed" || upd["email"] != nil {
		t.Fatalf("peer heard %v", upd)
	}
	wp.Quiet(t, "participant_updated", 200*time.Millisecond)
	if r := c.Do(t, "PATCH", "/api/auth/me", u.Token, M{"displayName": ""}); r.Status != 400 {
		t.Fatalf("empty display name: %d", r.Status)
	}
	other := c.Must(t, 200, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "password-123"})["token"].(string)
	// A refreshed token works, and so does the one it was refreshed from.
	refreshed := c.Must(t, 200, "POST", "/api/auth/refresh", other, nil)["token"].(string)
	for _, tok := range []string{refreshed, other} {
		if r := c.Do(t, "GET", "/api/auth/me", tok, nil); r.Status != 200 || r.JSON()["id"] != u.ID {
			t.Fatalf("after a refresh: %d %s", r.Status, r.Body)
		}
	}
	ws, _ := mt.Connect(t, m.gw(), u.Token)

	for name, body := range map[string]M{
		"wrong current": {"currentPassword": "not-it-at-all", "newPassword": "a-new-password"},
		"short new":     {"currentPassword": "password-123", "newPassword": "short"},
	} {
		if r := c.Do(t, "POST", "/api/auth/password", u.Token, body); r.Status != 400 && r.Status != 401 {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	res := c.Must(t, 200, "POST", "/api/auth/password", u.Token, M{"currentPassword": "password-123", "newPassword": "a-new-password"})
	fresh := res["token"].(string)
	// Every session before the change ends: open sockets close with 4001, tokens are refused.
	if code := ws.WaitClosed(t, 5*time.Second); code != 4001 {
		t.Fatalf("socket after the password change: closed %d", code)
	}
	for name, tok := range map[string]string{"the changing token": u.Token, "another session": other, "a refreshed one": refreshed} {
		if r := c.Do(t, "GET", "/api/auth/me", tok, nil); r.Status != 401 {
			t.Fatalf("%s after the change: %d", name, r.Status)
		}
	}
	if r := c.Do(t, "GET", "/api/auth/me", fresh, nil); r.Status != 200 {
		t.Fatalf("the new token: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "password-123"}); r.Status != 401 {
		t.Fatalf("the old password: %d", r.Status)
	}
	again := c.Must(t, 200, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "a-new-password"})["token"].(string)

	// Signing out everywhere ends every session, the one that asks included.
	ws2, _ := mt.Connect(t, m.gw(), again)
	c.Must(t, 204, "DELETE", "/api/auth/sessions", fresh, nil)
	if code := ws2.WaitClosed(t, 5*time.Second); code != 4001 {
		t.Fatalf("socket after signing out everywhere: closed %d", code)
	}
	for _, tok := range []string{fresh, again} {
		if r := c.Do(t, "GET", "/api/auth/me", tok, nil); r.Status != 401 {
			t.Fatalf("a token after signing out everywhere: %d", r.Status)
		}
	}
	c.Must(t, 200, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "a-new-password"})
}

// testDeleteAccount: one deletes one's own account; its messages stay, under a neutral name.
func testDeleteAccount(t *testing.T, c *mt.Client, m *mesh) {
	leaver, peer := c.Register(t, "Leaver"), c.Register(t, "LeaverPeer")
	room := newRoom(t, c, peer, leaver)
	msg := c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", leaver.Token, M{"content": "goodbye"})
	wp, _ := mt.Connect(t, m.gw(), peer.Token)
	wl, _ := mt.Connect(t, m.gw(), leaver.Token)
	if r := c.Do(t, "DELETE", "/api/auth/me", leaver.Token, M{"password": "wrong-password"}); r.Status != 401 {
		t.Fatalf("delete with a wrong password: %d %s", r.Status, r.Body)
	}
	c.Must(t, 204, "DELETE", "/api/auth/me", leaver.Token, M{"password": "password-123"})
	if code := wl.WaitClosed(t, 5*time.Second); code != 4001 {
		t.Fatalf("the deleted account's socket: closed %d", code)
	}
	upd := wp.ExpectWhere(t, "participant_updated", func(f M) bool { return f["participant"].(M)["id"] == leaver.ID })
	if upd["participant"].(M)["displayName"] != "Deleted participant" {
		t.Fatalf("peer heard %v", upd)
	}
	p := c.Must(t, 200, "GET", "/api/participants/"+leaver.ID, peer.Token, nil)
	if p["displayName"] != "Deleted participant" || p["email"] != nil {
		t.Fatalf("the deleted participant: %v", p)
	}
	members := c.Must(t, 200, "GET", "/api/rooms/"+room+"/members", peer.Token, nil)["items"].([]any)
	for _, mem := range members {
		if mem.(M)["id"] == leaver.ID {
			t.Fatalf("the deleted participant is still a member: %v", members)
		}
	}
	hist := c.Must(t, 200, "GET", "/api/rooms/"+room+"/messages", peer.Token, nil)["items"].([]any)
	if len(hist) != 1 || hist[0].(M)["id"] != msg["id"] || hist[0].(M)["authorId"] != leaver.ID {
		t.Fatalf("history after the deletion: %v", hist)
	}
	if r := c.Do(t, "POST", "/api/auth/login", "", M{"email": leaver.Email, "password": "password-123"}); r.Status != 401 {
		t.Fatalf("login to a deleted account: %d", r.Status)
	}
	// The address is free again.
	c.Must(t, 201, "POST", "/api/auth/register", "", M{"email": leaver.Email, "password": "password-123", "displayName": "Back"})
}
