package apisvc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/rbac"
	"github.com/themesh/mesh/pkg/store"
)

// The route table is the single place where a route (and the WebSocket event that runs the
// same operation) names its permission. This test is generated from it: every route that
// needs a permission is tried as every built-in role. A role that holds the permission is not
// refused; one that does not gets forbidden, and nothing in the store changes.
func TestEveryRouteAsEveryRole(t *testing.T) {
	s := newService(t, Config{})
	ctx := context.Background()
	owner := register(t, s, "owner@example.com") // the first participant: owner
	actors := map[string]*mesh.Actor{}
	// The built-in roles, and a custom one of four permissions: each may do exactly what
	// its permissions allow.
	reviewer := store.Role{Name: "reviewer", Priority: 500, CreatedBy: owner.ID, CreatedAt: time.Now(),
		Permissions: []string{"view_rooms", "join_rooms", "send_messages", "pin_messages"}}
	if _, err := s.store.CreateRole(ctx, reviewer); err != nil {
		t.Fatal(err)
	}
	roles := append(rbac.Builtins(), rbac.Role{Name: reviewer.Name, Priority: reviewer.Priority})
	for _, r := range roles {
		if r.Name == mesh.RoleOwner {
			actors[r.Name] = owner
			continue
		}
		a := register(t, s, r.Name+"@example.com")
		role := r.Name
		if _, err := s.store.UpdateParticipant(ctx, a.ID, store.ParticipantUpdate{Role: &role}); err != nil {
			t.Fatal(err)
		}
		actors[r.Name] = a
	}
	// A room everyone is in, a message in it, and a target below every role that may act on
	// others (a second spectator).
	target := register(t, s, "target@example.com")
	spectator := mesh.RoleSpectator
	_, _ = s.store.UpdateParticipant(ctx, target.ID, store.ParticipantUpdate{Role: &spectator})
	room := s.Handle(ctx, cmd(mesh.OpRoomsCreate, owner, nil, `{"name":"everyone"}`))
	var r mesh.Room
	_ = json.Unmarshal(room.Result, &r)
	for _, a := range actors {
		_, _ = s.store.AddMember(ctx, r.ID, a.ID)
	}
	_, _ = s.store.AddMember(ctx, r.ID, target.ID)

	// The routes, and the operations the gateway sends on its own.
	for _, route := range append(append([]mesh.Route{}, mesh.Routes...), mesh.InternalOps...) {
		if route.Permission == "" {
			continue
		}
		for _, role := range roles {
			t.Run(route.Op+"/"+role.Name, func(t *testing.T) {
				actor := actors[role.Name]
				// Fresh objects per call, so one call cannot spoil the next.
				msg := s.Handle(ctx, cmd(mesh.OpMessagesSend, owner, map[string]string{"roomId": r.ID}, `{"content":"m"}`))
				var m mesh.Message
				_ = json.Unmarshal(msg.Result, &m)
				_, _, _ = s.store.AddReaction(ctx, m.ID, "👍", actor.ID)
				victim := s.Handle(ctx, cmd(mesh.OpRoomsCreate, owner, nil, `{"name":"victim"}`))
				var vr mesh.Room
				_ = json.Unmarshal(victim.Result, &vr)
				_, _ = s.store.AddMember(ctx, vr.ID, actor.ID)
				_, _ = s.store.AddMember(ctx, vr.ID, target.ID)

				// A custom role of low priority, for the role routes.
				custom := "low-" + strings.ToLower(ulid.Make().String()[20:])
				if _, err := s.store.CreateRole(ctx, store.Role{Name: custom, Priority: 10, CreatedBy: owner.ID, CreatedAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
				params, body := requestFor(route.Op, r.ID, vr.ID, m.ID, target.ID)
				switch route.Op {
				case mesh.OpInvitesDelete:
					code := "CODE" + strings.ToUpper(custom)
					if _, err := s.store.CreateInvite(ctx, store.Invite{Code: code, CreatedBy: owner.ID, CreatedAt: time.Now(), MaxUses: 1}); err != nil {
						t.Fatal(err)
					}
					params = map[string]string{"code": code}
				case mesh.OpRolesUpdate, mesh.OpRolesDelete:
					params = map[string]string{"name": custom}
				case mesh.OpRolesCreate:
					body = fmt.Sprintf(`{"name":"new-%s","priority":5,"permissions":["view_rooms"]}`, custom)
				case mesh.OpFilesGet:
					// The actor's own file, not attached yet: only it may see it.
					f := mesh.File{ID: ulid.Make().String(), RoomID: r.ID, UploaderID: actor.ID, Name: "a.txt", ContentType: "text/plain",
						Size: 1, SHA256: strings.Repeat("ab", 32), CreatedAt: mesh.TimeOf(time.Now())}
					if _, _, err := s.store.CreateFile(ctx, f); err != nil {
						t.Fatal(err)
					}
					params = map[string]string{"fileId": f.ID}
				}
				before := digest(t, s, owner, r.ID, vr.ID)
				command := cmd(route.Op, actor, params, body)
				if route.Op == mesh.OpSearch {
					command.Args.Query = map[string]string{"q": "m"}
				}
				rep := s.Handle(ctx, command)
				allowed := rbac.Allowed(s.resolver(ctx), role.Name, rbac.Permission(route.Permission))
				switch {
				case allowed && rep.Error != nil && rep.Error.Code == mesh.CodeForbidden:
					t.Fatalf("%s holds %s but was refused: %v", role.Name, route.Permission, rep.Error)
				case allowed && rep.Error != nil:
					t.Fatalf("%s: %v", role.Name, rep.Error)
				case !allowed && (rep.Error == nil || rep.Error.Code != mesh.CodeForbidden):
					t.Fatalf("%s lacks %s but got %+v", role.Name, route.Permission, rep)
				case !allowed:
					if after := digest(t, s, owner, r.ID, vr.ID); after != before {
						t.Fatalf("a refused %s changed the store:\n%s\n%s", route.Op, before, after)
					}
				}
			})
		}
	}
}

// The WebSocket events that run an operation name the same permission as its route.
func TestWebSocketEventsShareRoutePermissions(t *testing.T) {
	byOp := map[string]string{}
	for _, r := range mesh.Routes {
		byOp[r.Op] = r.Permission
	}
	for _, e := range mesh.WSEvents {
		if e.Service != mesh.ServiceAPI || e.Op == mesh.OpSessionOpen {
			continue
		}
		if p, ok := byOp[e.Op]; !ok || p != e.Permission {
			t.Errorf("event %s runs %s with permission %q; its route names %q", e.Type, e.Op, e.Permission, p)
		}
	}
}

func register(t *testing.T, s *Service, email string) *mesh.Actor {
	t.Helper()
	r := do(t, s, mesh.OpAuthRegister, "a", map[string]string{"email": email, "password": "password-1", "displayName": email})
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	var sess struct {
		Participant mesh.Participant `json:"participant"`
	}
	_ = json.Unmarshal(r.Result, &sess)
	return &mesh.Actor{ID: sess.Participant.ID, TokenID: ulid.Make().String()}
}

func cmd(op string, a *mesh.Actor, params map[string]string, body string) *mesh.Command {
	c := &mesh.Command{ID: ulid.Make().String(), Op: op, Actor: a, Args: mesh.Request{Params: params}}
	if body != "" {
		c.Args.Body = []byte(body)
	}
	return c
}

// requestFor is a valid request for op on the fixtures.
func requestFor(op, room, victimRoom, message, target string) (map[string]string, string) {
	switch op {
	case mesh.OpRoomsCreate:
		return nil, `{"name":"new"}`
	case mesh.OpRoomsUpdate:
		return map[string]string{"roomId": room}, `{"topic":"changed"}`
	case mesh.OpRoomsDelete:
		return map[string]string{"roomId": victimRoom}, ""
	case mesh.OpRoomsJoin:
		return map[string]string{"roomId": room}, ""
	case mesh.OpMessagesSend:
		return map[string]string{"roomId": room}, `{"content":"hello"}`
	case mesh.OpReactionsAdd:
		return map[string]string{"messageId": message}, `{"emoji":"🎉"}`
	case mesh.OpReactionsDel:
		return map[string]string{"messageId": message, "emoji": "👍"}, ""
	case mesh.OpRoomsKick:
		return map[string]string{"roomId": victimRoom}, fmt.Sprintf(`{"participantId":%q}`, target)
	case mesh.OpRoomsMute:
		return map[string]string{"roomId": victimRoom}, fmt.Sprintf(`{"participantId":%q,"durationSeconds":60}`, target)
	case mesh.OpRolesUpdate:
		return nil, `{"priority":20}`
	case mesh.OpRoleAssign:
		return map[string]string{"participantId": target}, `{"role":"agent"}`
	case mesh.OpInvitesCreate:
		return nil, `{"maxUses":2}`
	case mesh.OpRoomInvite:
		return map[string]string{"roomId": victimRoom}, fmt.Sprintf(`{"participantId":%q}`, target)
	case mesh.OpPin, mesh.OpUnpin, mesh.OpLock, mesh.OpUnlock:
		return map[string]string{"messageId": message}, ""
	case mesh.OpSettingsUpdate:
		return nil, `{"meshName":"renamed"}`
	case mesh.OpReadMark:
		return map[string]string{"roomId": room}, `{"seq":1}`
	case mesh.OpFeedPost:
		return map[string]string{"roomId": room}, `{"kind":"ci.build","title":"build 1 passed","data":{"n": 1}}`
	case mesh.OpFilesAuthorize:
		return nil, fmt.Sprintf(`{"roomId":%q}`, room)
	case mesh.OpFilesUpload:
		b, _ := json.Marshal(mesh.FileUpload{FileID: ulid.Make().String(), RoomID: room, Name: "a.txt",
			ContentType: "text/plain; charset=utf-8", Size: 1, SHA256: strings.Repeat("0f", 32)})
		return nil, string(b)
	case mesh.OpBan, mesh.OpUnban, mesh.OpDeactivate, mesh.OpReactivate:
		return map[string]string{"participantId": target}, ""
	default:
		return map[string]string{"roomId": room, "messageId": message}, ""
	}
}

// digest is what a refused call must leave as it was.
func digest(t *testing.T, s *Service, owner *mesh.Actor, rooms ...string) string {
	t.Helper()
	ctx := context.Background()
	all, err := s.store.ListRooms(ctx, store.RoomQuery{Viewer: owner.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(all)
	invites, _ := s.store.ListInvites(ctx)
	i0, _ := json.Marshal(invites)
	out = append(out, i0...)
	roles, _ := s.store.ListRoles(ctx)
	r0, _ := json.Marshal(roles)
	out = append(out, r0...)
	name, _, _ := s.store.Setting(ctx, settingMeshName)
	out = append(out, name...)
	// Every account as stored: roles, bans, deactivations.
	accs, _ := s.store.ListParticipants(ctx, "", 1000)
	for _, a := range accs {
		out = fmt.Appendf(out, "%s:%s:%v:%v;", a.ID, a.Role, a.Banned, a.Deactivated)
	}
	for _, r := range rooms {
		files, _ := s.store.ListFiles(ctx, store.FileQuery{RoomID: r, Limit: 1000})
		f0, _ := json.Marshal(files)
		out = append(out, f0...)
		members, _ := s.store.Members(ctx, r)
		msgs, _ := s.store.ListMessages(ctx, store.MessageQuery{RoomID: r, Viewer: owner.ID, Limit: 200})
		m1, _ := json.Marshal(members)
		m2, _ := json.Marshal(msgs)
		out = append(append(out, m1...), m2...)
	}
	return string(out)
}
