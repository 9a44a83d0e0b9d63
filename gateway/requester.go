package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/mesh"
)

// requester sends commands on streams and waits for their replies on this gateway's
// subject, each with a deadline: past it the caller gets unavailable.
type requester struct {
	bus     bus.Bus
	replyTo string
	timeout time.Duration

	mu      sync.Mutex
	waiting map[string]chan mesh.Reply
}

func newRequester(b bus.Bus, gatewayID string, timeout time.Duration) *requester {
	return &requester{bus: b, replyTo: mesh.GatewaySubject(gatewayID), timeout: timeout, waiting: map[string]chan mesh.Reply{}}
}

// do appends cmd to stream and waits for the reply. The command gets an id, this gateway's
// reply subject and the deadline.
func (r *requester) do(ctx context.Context, stream string, cmd *mesh.Command) mesh.Reply {
	cmd.ID = ulid.Make().String()
	cmd.ReplyTo = r.replyTo
	deadline := time.Now().Add(r.timeout)
	cmd.Deadline = deadline.UnixMilli()
	ch := make(chan mesh.Reply, 1)
	r.mu.Lock()
	r.waiting[cmd.ID] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, cmd.ID)
		r.mu.Unlock()
	}()
	b, err := json.Marshal(cmd)
	if err != nil {
		return mesh.Reply{ID: cmd.ID, Error: mesh.Errorf(mesh.CodeInternal, "encode command")}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if _, err := r.bus.Append(ctx, stream, b); err != nil {
		return mesh.Reply{ID: cmd.ID, Error: unavailable(fmt.Sprintf("the mesh could not take the request: %v", err))}
	}
	select {
	case rep := <-ch:
		return rep
	case <-ctx.Done():
		return mesh.Reply{ID: cmd.ID, Error: unavailable("the mesh did not answer in time; try again")}
	}
}

// tell appends cmd to stream without waiting for a reply.
func (r *requester) tell(ctx context.Context, stream string, cmd *mesh.Command) error {
	cmd.ID = ulid.Make().String()
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err = r.bus.Append(ctx, stream, b)
	return err
}

// deliver hands a reply to its waiter (replies nobody waits for any more are dropped).
func (r *requester) deliver(data []byte) {
	var rep mesh.Reply
	if err := json.Unmarshal(data, &rep); err != nil {
		return
	}
	r.mu.Lock()
	ch := r.waiting[rep.ID]
	r.mu.Unlock()
	if ch != nil {
		select {
		case ch <- rep:
		default:
		}
	}
}

func unavailable(msg string) *mesh.Error { return mesh.Errorf(mesh.CodeUnavailable, "%s", msg) }
