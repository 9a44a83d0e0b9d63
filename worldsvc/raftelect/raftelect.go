// Package raftelect replicates the world service over hashicorp/raft: three or five replicas
// elect a leader, only the leader consumes world commands and ticks, and the world's inputs
// and ticks go through the Raft log, so that a new leader continues the world where the old
// one stopped (who is online, in which rooms, where).
//
// A Node is both what worldsvc.New needs for a cluster: its worldsvc.Elector (leadership is
// Raft's) and its worldsvc.Log (entries are proposed with raft.Apply and applied, on every
// replica, to the node's worldsvc.Machine by the Raft FSM). The world's rules stay in
// worldsvc and never import Raft.
//
//	node, err := raftelect.Open(raftelect.Config{ID: "w1", BindAddr: ":7000",
//		Peers: peers, DataDir: "/data/world"})
//	...
//	defer node.Close() // after the service has stopped
//	svc, err := worldsvc.New(worldsvc.Config{}, worldsvc.Deps{Bus: b, Log: node})
//
// Storage: the log and Raft's stable store in raft-wal (DataDir/wal), snapshots of the
// world in DataDir/snapshots. The cluster is bootstrapped from the static peer list the first
// time a node starts with an empty data folder; every node is given the same list, and every
// node may bootstrap. Membership changes are not supported: the peer list is the cluster.
package raftelect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/themesh/mesh/worldsvc"
)

// Defaults of Config, tuned for replicas on one LAN (elections take well under a second).
const (
	DefaultHeartbeatTimeout   = 200 * time.Millisecond
	DefaultElectionTimeout    = 200 * time.Millisecond
	DefaultLeaderLeaseTimeout = 100 * time.Millisecond
	DefaultCommitTimeout      = 25 * time.Millisecond
	DefaultSnapshotInterval   = 30 * time.Second
	DefaultSnapshotThreshold  = 1024
	DefaultTrailingLogs       = 1024
	DefaultTransportTimeout   = 5 * time.Second
	DefaultApplyTimeout       = time.Second
	// snapshotsRetained is how many snapshots are kept on disk.
	snapshotsRetained = 2
)

// Config configures one replica. ID, Peers and DataDir are required.
type Config struct {
	// ID is this replica's id: a key of Peers. It must stay the same across restarts.
	ID string
	// Peers lists every replica of the cluster, this one included: id → host:port of its Raft
	// transport (see ParsePeers). Every replica must be given the same list.
	Peers map[string]string
	// BindAddr is the address the Raft transport listens on, such as ":7000". Empty means
	// Peers[ID].
	BindAddr string
	// Advertise is the address the others reach this replica at. Empty means Peers[ID]. It
	// must resolve to an IP address when Open runs.
	Advertise string
	// DataDir holds this replica's log and snapshots; it is made if missing.
	DataDir string
	// World configures the world's rules; every replica must use the same.
	World worldsvc.WorldConfig

	// HeartbeatTimeout: a follower that hears nothing from the leader for this long (at random
	// between one and two times it) starts an election. Zero means 200 ms.
	HeartbeatTimeout time.Duration
	// ElectionTimeout: a candidate that wins no election for this long (likewise randomised)
	// starts another. Zero means 200 ms.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout: a leader that cannot reach a majority for this long steps down.
	// Zero means 100 ms.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is the longest a leader stays silent before it sends followers the
	// commit index. Zero means 25 ms.
	CommitTimeout time.Duration
	// SnapshotInterval is how often (at random between one and two times it) the replica
	// checks whether to snapshot; SnapshotThreshold is how many new entries make it do so;
	// TrailingLogs is how many entries it keeps after a snapshot, for slow followers. Zero
	// means 30 s, 1024 and 1024 (at 20 entries a second, about 50 s of log).
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SegmentSize is the size of raft-wal's segment files. Zero means raft-wal's default
	// (64 MiB, preallocated).
	SegmentSize int
	// TransportTimeout bounds the transport's dials and I/O. Zero means 5 s.
	TransportTimeout time.Duration
	// ApplyTimeout bounds how long a proposal waits for Raft to take it (not to commit it).
	// Zero means 1 s.
	ApplyTimeout time.Duration

	// Logger receives Raft's log (Info and above, Debug too if the logger's handler takes it).
	// Nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	def(&c.CommitTimeout, DefaultCommitTimeout)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.TransportTimeout, DefaultTransportTimeout)
	def(&c.ApplyTimeout, DefaultApplyTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.BindAddr == "" {
		c.BindAddr = c.Peers[c.ID]
	}
	if c.Advertise == "" {
		c.Advertise = c.Peers[c.ID]
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.ID == "":
		return errors.New("raftelect: Config.ID is required")
	case len(c.Peers) == 0:
		return errors.New("raftelect: Config.Peers is required")
	case c.Peers[c.ID] == "":
		return fmt.Errorf("raftelect: Config.Peers has no address for this replica's id %q", c.ID)
	case c.DataDir == "":
		return errors.New("raftelect: Config.DataDir is required")
	}
	for id, addr := range c.Peers {
		if id == "" || addr == "" {
			return fmt.Errorf("raftelect: Config.Peers: empty id or address (%q=%q)", id, addr)
		}
	}
	return nil
}

// ParsePeers parses a peer list written "id=host:port,id=host:port" (as in MESH_WORLD_PEERS).
// Spaces around items are ignored; ids and addresses must be unique.
func ParsePeers(s string) (map[string]string, error) {
	peers := map[string]string{}
	addrs := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, addr, ok := strings.Cut(item, "=")
		id, addr = strings.TrimSpace(id), strings.TrimSpace(addr)
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("raftelect: peer %q: want id=host:port", item)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("raftelect: peer %q: %w", item, err)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("raftelect: peer id %q listed twice", id)
		}
		if addrs[addr] {
			return nil, fmt.Errorf("raftelect: peer address %q listed twice", addr)
		}
		peers[id], addrs[addr] = addr, true
	}
	if len(peers) == 0 {
		return nil, errors.New("raftelect: empty peer list")
	}
	return peers, nil
}

// Node is one replica of the world: a Raft member whose FSM is a worldsvc.Machine. It is the
// worldsvc.Elector and the worldsvc.Log of the replica's worldsvc.Service.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *fsm
	wal       *raftwal.WAL
	meta      *metadb.BoltMetaDB
	transport *raft.NetworkTransport
	changes   chan struct{}
	done      chan struct{}
	watchDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var (
	_ worldsvc.Elector = (*Node)(nil)
	_ worldsvc.Log     = (*Node)(nil)
)

// Open starts a replica: it opens (or makes) its data folder, restores its latest snapshot,
// joins the cluster's transport, and bootstraps the cluster from Config.Peers if the folder
// held no state. It returns at once: the election runs in the background (watch IsLeader or
// Changes). Close it once the service using it has stopped.
func Open(cfg Config) (_ *Node, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	hl := newHCLogger(cfg.Logger.With("raft", cfg.ID))

	walDir := filepath.Join(cfg.DataDir, "wal")
	if err := os.MkdirAll(walDir, 0o750); err != nil {
		return nil, fmt.Errorf("raftelect: make %s: %w", walDir, err)
	}
	n := &Node{
		cfg:       cfg,
		meta:      &metadb.BoltMetaDB{},
		fsm:       &fsm{m: worldsvc.NewMachine(cfg.World)},
		changes:   make(chan struct{}, 1),
		done:      make(chan struct{}),
		watchDone: make(chan struct{}),
	}
	// On failure, close what was opened (n, not the result, which is nil by then).
	defer func() {
		if err == nil {
			return
		}
		if n.raft != nil {
			_ = n.raft.Shutdown().Error()
		}
		if n.transport != nil {
			_ = n.transport.Close()
		}
		if n.wal != nil {
			_ = n.wal.Close()
		}
		_ = n.meta.Close()
	}()

	segmentSize := cfg.SegmentSize
	if segmentSize <= 0 {
		segmentSize = raftwal.DefaultSegmentSize
	}
	// raft-wal v0.4.0's Close leaves its meta store open (and its file locked, so that the
	// folder cannot be opened again in this process): the node owns it and closes it.
	n.wal, err = raftwal.Open(walDir, raftwal.WithLogger(hl.Named("wal")), raftwal.WithSegmentSize(segmentSize),
		raftwal.WithMetaStore(n.meta))
	if err != nil {
		return nil, fmt.Errorf("raftelect: open log %s: %w", walDir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotsRetained, hl.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("raftelect: open snapshots in %s: %w", cfg.DataDir, err)
	}
	advertise, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
	if err != nil {
		return nil, fmt.Errorf("raftelect: resolve advertised address %s: %w", cfg.Advertise, err)
	}
	if n.transport, err = raft.NewTCPTransportWithLogger(cfg.BindAddr, advertise, 3, cfg.TransportTimeout, hl.Named("transport")); err != nil {
		return nil, fmt.Errorf("raftelect: listen on %s: %w", cfg.BindAddr, err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true // proposals queue without waiting for the leader's loop
	rc.NoLegacyTelemetry = true
	rc.Logger = hl
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raftelect: %w", err)
	}

	existing, err := raft.HasExistingState(n.wal, n.wal, snaps)
	if err != nil {
		return nil, fmt.Errorf("raftelect: read state in %s: %w", cfg.DataDir, err)
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, n.wal, n.wal, snaps, n.transport); err != nil {
		return nil, fmt.Errorf("raftelect: start raft: %w", err)
	}
	if !existing {
		ids := make([]string, 0, len(cfg.Peers))
		for id := range cfg.Peers {
			ids = append(ids, id)
		}
		slices.Sort(ids) // the same configuration on every replica
		var c raft.Configuration
		for _, id := range ids {
			c.Servers = append(c.Servers, raft.Server{
				Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(cfg.Peers[id]),
			})
		}
		// Every replica bootstraps the same configuration; a replica that has already heard
		// from the cluster refuses, which is as good.
		if err := n.raft.BootstrapCluster(c).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("raftelect: bootstrap: %w", err)
		}
	}
	go n.watch()
	return n, nil
}

// watch turns Raft's leadership notifications into Changes signals until the node closes.
func (n *Node) watch() {
	defer close(n.watchDone)
	leaderCh := n.raft.LeaderCh()
	for {
		select {
		case <-n.done:
			return
		case <-leaderCh:
			n.signal()
		}
	}
}

// signal wakes the Changes reader, without blocking; one pending signal is enough.
func (n *Node) signal() {
	select {
	case n.changes <- struct{}{}:
	default:
	}
}

// IsLeader reports whether this replica is Raft's leader now (an atomic read).
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Changes is signalled when this replica gains or loses the lead, and when it closes. It has
// one reader: the service.
func (n *Node) Changes() <-chan struct{} { return n.changes }

// Leader returns the id and address of the leader as this replica knows it (empty if none).
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// Machine is this replica's world, which Raft applies the committed entries to. Read it for
// stats or a snapshot; never apply to it directly.
func (n *Node) Machine() *worldsvc.Machine { return n.fsm.m }

// Propose proposes entry with raft.Apply. It blocks at most Config.ApplyTimeout, while Raft
// is too busy to take it.
func (n *Node) Propose(entry []byte) worldsvc.Proposal {
	return proposal{f: n.raft.Apply(entry, n.cfg.ApplyTimeout)}
}

// Close stops the replica: if it leads, it first hands the lead to the most up-to-date
// follower (a planned restart then costs about a round trip instead of an election); then
// Raft, its transport and its log stop. Proposals waiting fail. Stop the service using the
// node first, or just after: either way it stops consuming. It is safe to call more than once.
func (n *Node) Close() error { return n.shutdown(true) }

// shutdown stops the replica, handing the lead over first if handover and it leads. Without
// handover it stops as a crash would, as far as the others can tell.
func (n *Node) shutdown(handover bool) error {
	n.closeOnce.Do(func() {
		if handover && n.IsLeader() {
			// Raft bounds the transfer by the election timeout; failing, it stops anyway.
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.cfg.Logger.Warn("raftelect: lead not handed over before closing", "err", err)
			}
		}
		err := n.raft.Shutdown().Error()
		close(n.done)
		<-n.watchDone
		n.signal()
		n.closeErr = errors.Join(err, n.transport.Close(), n.wal.Close(), n.meta.Close())
		if n.closeErr != nil {
			n.closeErr = fmt.Errorf("raftelect: close: %w", n.closeErr)
		}
	})
	return n.closeErr
}

// proposal is a raft.ApplyFuture as a worldsvc.Proposal.
type proposal struct{ f raft.ApplyFuture }

// Wait waits for the future. Raft's futures have no channel, so it waits in a goroutine to
// honour ctx; Raft resolves every future, at the latest when it shuts down.
func (p proposal) Wait(ctx context.Context) (*worldsvc.Applied, error) {
	done := make(chan error, 1)
	go func() { done <- p.f.Error() }()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("raftelect: %w", err)
		}
	}
	switch r := p.f.Response().(type) {
	case *worldsvc.Applied:
		return r, nil
	case error:
		return nil, r
	default:
		return nil, fmt.Errorf("raftelect: unexpected FSM response %T", r)
	}
}

// fsm applies the log to a worldsvc.Machine. Raft calls Apply and Snapshot from one
// goroutine, and Restore when nothing else runs.
type fsm struct {
	m *worldsvc.Machine

	// For tests and stats: mu makes the index and the world read together consistent.
	mu       sync.Mutex
	index    uint64
	restores atomic.Int64
}

// Apply applies one committed command; its result (a *worldsvc.Applied or an error) is the
// proposer's Response.
func (f *fsm) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = l.Index
	if l.Type != raft.LogCommand {
		return nil
	}
	a, err := f.m.Apply(l.Data)
	if err != nil {
		return err
	}
	return a
}

// Snapshot captures the world now (Machine.Snapshot writes it out in full, so Apply may go on
// while Raft persists it).
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	data, err := f.m.Snapshot()
	if err != nil {
		return nil, err
	}
	return snapshot(data), nil
}

// Restore replaces the world with a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("raftelect: read snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.m.Restore(data); err != nil {
		return err
	}
	f.restores.Add(1)
	return nil
}

// state returns the index of the last entry applied and the world's snapshot, together.
func (f *fsm) state() (uint64, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := f.m.Snapshot()
	return f.index, data, err
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftelect: write snapshot: %w", err)
	}
	return sink.Close()
}

func (snapshot) Release() {}

// newHCLogger makes the hclog.Logger Raft wants write to l: hclog writes JSON lines, which
// hcWriter turns back into slog records.
func newHCLogger(l *slog.Logger) hclog.Logger {
	level := hclog.Info
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "raft",
		Level:      level,
		Output:     &hcWriter{l: l},
		JSONFormat: true,
	})
}

// hcWriter turns hclog's JSON lines into slog records.
type hcWriter struct{ l *slog.Logger }

func (w *hcWriter) Write(p []byte) (int, error) {
	for line := range bytes.SplitSeq(bytes.TrimSpace(p), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			w.l.Info(string(line))
			continue
		}
		level := slog.LevelInfo
		switch rec["@level"] {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		msg, _ := rec["@message"].(string)
		attrs := make([]slog.Attr, 0, len(rec))
		for k, v := range rec {
			if k == "@level" || k == "@message" || k == "@timestamp" {
				continue
			}
			attrs = append(attrs, slog.Any(strings.TrimPrefix(k, "@"), v))
		}
		w.l.LogAttrs(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}
