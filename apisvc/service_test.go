package apisvc

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/themesh/mesh/pkg/bus/membus"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store/sqlite"
)

func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.sqlite"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := membus.New(membus.Options{})
	t.Cleanup(func() { b.Close() })
	cfg.JWTSecret = []byte(strings.Repeat("k", 32))
	cfg.BcryptCost = bcrypt.MinCost
	s, err := New(cfg, Deps{Bus: b, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(t *testing.T, s *Service, op, addr string, body any) mesh.Reply {
	t.Helper()
	b, _ := json.Marshal(body)
	return s.Handle(context.Background(), &mesh.Command{ID: "c", Op: op, Args: mesh.Request{Body: b, Addr: addr}})
}

func TestRegistrationRateLimit(t *testing.T) {
	s := newService(t, Config{RegistrationsPerMinute: 3})
	for i := 0; i < 3; i++ {
		if r := do(t, s, mesh.OpAuthRegister, "10.0.0.1", map[string]string{"email": fmt.Sprintf("u%d@example.com", i), "password": "password-1", "displayName": "U"}); r.Error != nil {
			t.Fatalf("registration %d: %v", i, r.Error)
		}
	}
	r := do(t, s, mesh.OpAuthRegister, "10.0.0.1", map[string]string{"email": "u9@example.com", "password": "password-1", "displayName": "U"})
	if r.Error == nil || r.Error.Code != mesh.CodeRateLimited || r.Error.Details["retryAfter"] == nil {
		t.Fatalf("fourth registration = %+v", r)
	}
	if n, _ := s.store.CountParticipants(context.Background()); n != 3 {
		t.Fatalf("%d participants stored, want 3: a refused request changes nothing", n)
	}
	// Another address is not limited; the window resets after a minute.
	if r := do(t, s, mesh.OpAuthRegister, "10.0.0.2", map[string]string{"email": "v@example.com", "password": "password-1", "displayName": "V"}); r.Error != nil {
		t.Fatalf("other address: %v", r.Error)
	}
	s.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	if r := do(t, s, mesh.OpAuthRegister, "10.0.0.1", map[string]string{"email": "w@example.com", "password": "password-1", "displayName": "W"}); r.Error != nil {
		t.Fatalf("after a minute: %v", r.Error)
	}
}

func TestFailedLoginLimit(t *testing.T) {
	s := newService(t, Config{FailedLoginsPerMinute: 2})
	do(t, s, mesh.OpAuthRegister, "a", map[string]string{"email": "x@example.com", "password": "password-1", "displayName": "X"})
	for i := 0; i < 2; i++ {
		if r := do(t, s, mesh.OpAuthLogin, "a", map[string]string{"email": "x@example.com", "password": "wrong-one"}); r.Error.Code != mesh.CodeInvalidCredentials {
			t.Fatalf("failed login %d: %v", i, r.Error)
		}
	}
	// Past the limit even the right password is refused, so guessing cannot go on.
	if r := do(t, s, mesh.OpAuthLogin, "a", map[string]string{"email": "X@example.com", "password": "password-1"}); r.Error == nil || r.Error.Code != mesh.CodeRateLimited {
		t.Fatalf("login past the limit = %+v", r)
	}
}

func TestRegistrationClosedAndDefaultRole(t *testing.T) {
	s := newService(t, Config{})
	ctx := context.Background()
	_ = s.store.SetSetting(ctx, settingRegistrationOpen, "false")
	// The very first participant may always register: a mesh needs an owner.
	r := do(t, s, mesh.OpAuthRegister, "a", map[string]string{"email": "first@example.com", "password": "password-1", "displayName": "F"})
	if r.Error != nil || !strings.Contains(string(r.Result), `"role":"owner"`) {
		t.Fatalf("first registration = %+v %s", r.Error, r.Result)
	}
	r = do(t, s, mesh.OpAuthRegister, "a", map[string]string{"email": "second@example.com", "password": "password-1", "displayName": "S"})
	if r.Error == nil || r.Error.Code != mesh.CodeRegistrationClosed {
		t.Fatalf("closed registration = %+v", r)
	}
	_ = s.store.SetSetting(ctx, settingRegistrationOpen, "true")
	_ = s.store.SetSetting(ctx, settingDefaultRole, "spectator")
	r = do(t, s, mesh.OpAuthRegister, "a", map[string]string{"email": "third@example.com", "password": "password-1", "displayName": "T"})
	if r.Error != nil || !strings.Contains(string(r.Result), `"role":"spectator"`) {
		t.Fatalf("registration with default role = %+v %s", r.Error, r.Result)
	}
}

func TestUnknownOpAndExpiredCommand(t *testing.T) {
	s := newService(t, Config{})
	if r := do(t, s, "no.such.op", "", nil); r.Error == nil || r.Error.Code != mesh.CodeBadRequest {
		t.Fatalf("unknown op = %+v", r)
	}
	if r := do(t, s, mesh.OpAuthMe, "", nil); r.Error == nil || r.Error.Code != mesh.CodeUnauthorized {
		t.Fatalf("me without actor = %+v", r)
	}
}

// A send command handled twice (redelivered after a worker died) stores one message: the
// message's id is the command's.
func TestRedeliveredSendStoresOnce(t *testing.T) {
	s := newService(t, Config{})
	ctx := context.Background()
	r := do(t, s, mesh.OpAuthRegister, "a", map[string]string{"email": "r@example.com", "password": "password-1", "displayName": "R"})
	var sess struct {
		Participant mesh.Participant `json:"participant"`
	}
	_ = json.Unmarshal(r.Result, &sess)
	actor := &mesh.Actor{ID: sess.Participant.ID, TokenID: "t"}
	rr := s.Handle(ctx, &mesh.Command{ID: ulid.Make().String(), Op: mesh.OpRoomsCreate, Actor: actor, Args: mesh.Request{Body: []byte(`{"name":"r"}`)}})
	var room mesh.Room
	_ = json.Unmarshal(rr.Result, &room)
	cmd := &mesh.Command{ID: ulid.Make().String(), Op: mesh.OpMessagesSend, Actor: actor,
		Args: mesh.Request{Params: map[string]string{"roomId": room.ID}, Body: []byte(`{"content":"once"}`)}}
	var first, second mesh.Message
	_ = json.Unmarshal(s.Handle(ctx, cmd).Result, &first)
	_ = json.Unmarshal(s.Handle(ctx, cmd).Result, &second)
	if first.ID != cmd.ID || second.ID != first.ID || second.Seq != 1 {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	if last, _ := s.store.LastSeq(ctx, room.ID); last != 1 {
		t.Fatalf("LastSeq = %d after the same command twice, want 1", last)
	}
}
