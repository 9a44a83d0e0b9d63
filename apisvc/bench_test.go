package apisvc

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/themesh/mesh/pkg/mesh"
)

// BenchmarkSendMessage is the send path behind the gateway: authenticate the actor, check
// membership and mute, assign the seq and store the message (SQLite, WAL), publish the event
// (in-process bus).
func BenchmarkSendMessage(b *testing.B) {
	t := &testing.T{}
	s := newService(t, Config{})
	ctx := context.Background()
	r := do(t, s, mesh.OpAuthRegister, "a", map[string]string{"email": "b@example.com", "password": "password-1", "displayName": "B"})
	var sess struct {
		Participant mesh.Participant `json:"participant"`
	}
	_ = json.Unmarshal(r.Result, &sess)
	sub, _ := s.bus.Subscribe(ctx)
	defer sub.Close()
	go func() {
		for range sub.Messages() {
		}
	}()
	actor := &mesh.Actor{ID: sess.Participant.ID, TokenID: "bench"}
	room := s.Handle(ctx, &mesh.Command{ID: "r", Op: mesh.OpRoomsCreate, Actor: actor, Args: mesh.Request{Body: []byte(`{"name":"bench"}`)}})
	var rm mesh.Room
	_ = json.Unmarshal(room.Result, &rm)
	_ = sub.Add(ctx, mesh.RoomSubject(rm.ID))
	body := []byte(`{"content":"` + fmt.Sprintf("%0200d", 0) + `"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rep := s.Handle(ctx, &mesh.Command{ID: ulid.Make().String(), Op: mesh.OpMessagesSend, Actor: actor,
				Args: mesh.Request{Params: map[string]string{"roomId": rm.ID}, Body: body}})
			if rep.Error != nil {
				b.Fatal(rep.Error)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
