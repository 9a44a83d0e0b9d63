package worldsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Log is the world's replicated log. A Service given one (Deps.Log) applies nothing itself:
// its leader proposes the inputs it consumes and its ticks as entries (an Entry, batched per
// tick), and the log applies each committed entry, on every node and in log order, to that
// node's Machine. The leader publishes what an entry produced once Wait reports it committed;
// followers publish nothing. worldsvc/raftelect implements it over hashicorp/raft; this
// package does not import Raft.
type Log interface {
	// Propose appends entry (an encoded Entry) to the log. It returns once the entry is on
	// its way, not once it is committed: wait on the Proposal for that. It may block while
	// the log is busy; the Service calls it from one goroutine, in entry order, and expects
	// entries proposed in that order to be committed in it.
	Propose(entry []byte) Proposal
}

// Proposal is an entry on its way through the log.
type Proposal interface {
	// Wait waits until the entry is committed and applied to this node's Machine, and returns
	// what Machine.Apply returned for it. It fails if the entry was not committed while this
	// node led: the node did not lead, lost the lead, or was shut down; or if ctx is done
	// first. An entry whose Wait failed may still be committed later, under the next leader:
	// its inputs are then applied everywhere but its events are published by no one (events
	// are at most once), and an input that must not be lost, having been left on the stream,
	// is delivered again and applied a second time, without effect (World.Apply is idempotent
	// for those).
	Wait(ctx context.Context) (*Applied, error)
}

// EntryVersion is the version of the Entry format written by the Service.
const EntryVersion = 1

// Entry is one entry of the world's log, encoded as JSON. The leader chooses its time, so
// every replica applies it identically: Resume (if set), then each input in order, then the
// step (if set), all at Now. The Service writes one per tick (inputs consumed during the tick,
// then its step) and, between ticks, one as soon as an input that must not be lost arrives
// (connect, disconnect, membership, heartbeat), so that its consumer can ack it.
type Entry struct {
	// V is the format's version: EntryVersion.
	V int `json:"v"`
	// Now is the entry's time in unix nanoseconds.
	Now int64 `json:"now"`
	// Resume is set on the first entry of a new leader: World.Resume(Now) runs first.
	Resume bool `json:"resume,omitempty"`
	// Inputs are world operations, applied in order.
	Inputs []EntryInput `json:"inputs,omitempty"`
	// Step ends a tick after the inputs: the world's next tick number, at Now.
	Step bool `json:"step,omitempty"`
}

// EntryInput is one world operation of an Entry: Op (mesh.WorldConnect, ...) and its
// arguments, the command's Args.Body as it came.
type EntryInput struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args"`
}

// Applied is what applying one Entry produced.
type Applied struct {
	// Outputs[i] is what Inputs[i] produced. An input whose arguments are invalid (the leader
	// checks them before proposing, so only across versions) produced nothing and is Invalid.
	Outputs []Output
	// Invalid[i] reports that Inputs[i] was refused as a bad request; nil if none was.
	Invalid []bool
	// Step is what the step produced; nil without a step.
	Step []Publication
	// Stats sums up the world after the entry.
	Stats Stats
}

// Machine is the world as a replicated state machine: a World that applies entries of the
// log. Every node of a cluster holds one; applying the same entries in the same order to the
// same snapshot yields the same world, byte for byte, and the same outputs. It is safe for
// concurrent use: the log applies entries from one goroutine, and others may read.
type Machine struct {
	mu    sync.Mutex
	world *World
}

// NewMachine returns a machine holding an empty world. Every replica must use the same cfg.
func NewMachine(cfg WorldConfig) *Machine {
	return &Machine{world: NewWorld(cfg)}
}

// Apply applies one encoded Entry. It fails, leaving the world unchanged, only on an entry it
// cannot decode or whose version it does not know.
func (m *Machine) Apply(entry []byte) (*Applied, error) {
	var e Entry
	if err := json.Unmarshal(entry, &e); err != nil {
		return nil, fmt.Errorf("worldsvc: decode entry: %w", err)
	}
	if e.V != EntryVersion {
		return nil, fmt.Errorf("worldsvc: entry version %d, want %d", e.V, EntryVersion)
	}
	now := time.Unix(0, e.Now)
	a := &Applied{Outputs: make([]Output, len(e.Inputs))}
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.world
	if e.Resume {
		w.Resume(now)
	}
	for i, in := range e.Inputs {
		out, err := w.Apply(in.Op, in.Args, now)
		if err != nil {
			if a.Invalid == nil {
				a.Invalid = make([]bool, len(e.Inputs))
			}
			a.Invalid[i] = true
			continue
		}
		a.Outputs[i] = out
	}
	if e.Step {
		a.Step = w.Step(w.Tick()+1, now)
	}
	a.Stats = w.Stats()
	return a, nil
}

// Snapshot is World.Snapshot of the machine's world.
func (m *Machine) Snapshot() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.world.Snapshot()
}

// Restore is World.Restore of the machine's world.
func (m *Machine) Restore(data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.world.Restore(data)
}

// Stats is World.Stats of the machine's world.
func (m *Machine) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.world.Stats()
}

// errNotLeader fails the inputs a node held when it stopped leading.
var errNotLeader = errors.New("worldsvc: not the leader")
