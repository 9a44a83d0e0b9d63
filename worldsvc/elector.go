package worldsvc

// Elector says whether this node leads the world. Only the leader consumes world commands and
// ticks; followers stay warm and silent. The one-node world uses Always; a cluster elects its
// leader with Raft (worldsvc/raftelect), which this package does not import.
type Elector interface {
	// IsLeader reports whether this node is the leader now. It must be cheap: the service
	// asks it on every tick.
	IsLeader() bool
	// Changes is signalled, best effort, when leadership may have changed; the service then
	// asks IsLeader. Missed signals are caught at the next tick. A nil channel means
	// leadership never changes.
	Changes() <-chan struct{}
}

// Always is the Elector of a world with one node: it always leads.
type Always struct{}

// IsLeader is always true.
func (Always) IsLeader() bool { return true }

// Changes is nil: leadership never changes.
func (Always) Changes() <-chan struct{} { return nil }

var _ Elector = Always{}
