package worldsvc

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/themesh/mesh/pkg/mesh"
)

// snapshotVersion is the version of the snapshot format written by Snapshot.
const snapshotVersion = 1

// snapshot is the JSON form of a World. Every list is sorted (tombstones are in closing
// order), so equal worlds give equal bytes. Times are unix nanoseconds.
type snapshot struct {
	Version      int                `json:"version"`
	Tick         uint64             `json:"tick"`
	Ignored      uint64             `json:"ignored"`
	Gateways     []snapGateway      `json:"gateways"`
	Sockets      []snapSocket       `json:"sockets"`
	Participants []snapParticipant  `json:"participants"`
	Positions    []snapRoomPosition `json:"positions"`
	Pending      []snapRoomPosition `json:"pending"`
	Tombstones   []snapTombstone    `json:"tombstones"`
}

type snapGateway struct {
	ID       string `json:"id"`
	LastSeen int64  `json:"lastSeen"`
}

type snapSocket struct {
	GatewayID     string `json:"gatewayId"`
	SocketID      string `json:"socketId"`
	ParticipantID string `json:"participantId"`
	Opened        int64  `json:"opened"`
}

type snapParticipant struct {
	ID    string   `json:"id"`
	Rooms []string `json:"rooms"`
}

type snapRoomPosition struct {
	RoomID    string          `json:"roomId"`
	Positions []mesh.Position `json:"positions"`
}

type snapTombstone struct {
	GatewayID string `json:"gatewayId"`
	SocketID  string `json:"socketId"`
	At        int64  `json:"at"`
}

// Snapshot is the world's whole state as JSON (for a Raft FSM snapshot, or a restart). Equal
// worlds give equal bytes. The configuration (WorldConfig) is not part of it.
func (w *World) Snapshot() ([]byte, error) {
	s := snapshot{
		Version:      snapshotVersion,
		Tick:         w.tick,
		Ignored:      w.ignored,
		Gateways:     make([]snapGateway, 0, len(w.gateways)),
		Sockets:      make([]snapSocket, 0, len(w.sockets)),
		Participants: make([]snapParticipant, 0, len(w.participants)),
		Positions:    []snapRoomPosition{},
		Pending:      []snapRoomPosition{},
		Tombstones:   []snapTombstone{},
	}
	for id, gw := range w.gateways {
		s.Gateways = append(s.Gateways, snapGateway{ID: id, LastSeen: gw.lastSeen})
	}
	slices.SortFunc(s.Gateways, func(a, b snapGateway) int { return strings.Compare(a.ID, b.ID) })
	for k, sock := range w.sockets {
		s.Sockets = append(s.Sockets, snapSocket{
			GatewayID: k.gateway, SocketID: k.socket, ParticipantID: sock.participant, Opened: sock.opened,
		})
	}
	slices.SortFunc(s.Sockets, func(a, b snapSocket) int {
		if c := strings.Compare(a.GatewayID, b.GatewayID); c != 0 {
			return c
		}
		return strings.Compare(a.SocketID, b.SocketID)
	})
	for id, p := range w.participants {
		s.Participants = append(s.Participants, snapParticipant{ID: id, Rooms: sortedKeys(p.rooms)})
	}
	slices.SortFunc(s.Participants, func(a, b snapParticipant) int { return strings.Compare(a.ID, b.ID) })
	for _, roomID := range sortedRoomIDs(w.rooms) {
		r := w.rooms[roomID]
		if len(r.positions) > 0 {
			s.Positions = append(s.Positions, snapRoomPosition{RoomID: roomID, Positions: sortedPositions(r.positions)})
		}
		if len(r.pending) > 0 {
			s.Pending = append(s.Pending, snapRoomPosition{RoomID: roomID, Positions: sortedPositions(r.pending)})
		}
	}
	seen := make(map[tomb]struct{}, len(w.tombQ))
	for _, t := range w.tombQ {
		if at, ok := w.tombs[t.key]; !ok || at != t.at {
			continue // superseded by a later close of the same socket
		}
		if _, dup := seen[t]; dup {
			continue
		}
		seen[t] = struct{}{}
		s.Tombstones = append(s.Tombstones, snapTombstone{GatewayID: t.key.gateway, SocketID: t.key.socket, At: t.at})
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("worldsvc: snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces the world's state with a snapshot made by Snapshot. On error the world is
// unchanged.
func (w *World) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("worldsvc: restore: %w", err)
	}
	if s.Version != snapshotVersion {
		return fmt.Errorf("worldsvc: restore: snapshot version %d, want %d", s.Version, snapshotVersion)
	}
	n := &World{timeout: w.timeout, grace: w.grace}
	n.reset()
	n.tick, n.ignored = s.Tick, s.Ignored
	for _, g := range s.Gateways {
		if _, dup := n.gateways[g.ID]; dup || g.ID == "" {
			return fmt.Errorf("worldsvc: restore: bad or repeated gateway %q", g.ID)
		}
		n.gateways[g.ID] = &gatewayState{lastSeen: g.LastSeen, sockets: make(map[string]struct{})}
	}
	for _, p := range s.Participants {
		if _, dup := n.participants[p.ID]; dup || p.ID == "" {
			return fmt.Errorf("worldsvc: restore: bad or repeated participant %q", p.ID)
		}
		ps := &participantState{rooms: make(map[string]struct{}, len(p.Rooms))}
		n.participants[p.ID] = ps
		for _, r := range p.Rooms {
			n.joinRoom(p.ID, ps, r)
		}
	}
	for _, sk := range s.Sockets {
		key := sockKey{sk.GatewayID, sk.SocketID}
		gw, p := n.gateways[sk.GatewayID], n.participants[sk.ParticipantID]
		if gw == nil || p == nil || n.sockets[key] != nil {
			return fmt.Errorf("worldsvc: restore: socket %s/%s: unknown gateway or participant, or repeated",
				sk.GatewayID, sk.SocketID)
		}
		n.sockets[key] = &socketState{participant: sk.ParticipantID, opened: sk.Opened}
		gw.sockets[sk.SocketID] = struct{}{}
		p.sockets++
	}
	for id, p := range n.participants {
		if p.sockets == 0 {
			return fmt.Errorf("worldsvc: restore: participant %q online without a socket", id)
		}
	}
	for _, rp := range s.Positions {
		r := n.rooms[rp.RoomID]
		for _, p := range rp.Positions {
			if r == nil || !n.inRoom(p.ParticipantID, rp.RoomID) || !ValidCoordinate(p.X) || !ValidCoordinate(p.Y) {
				return fmt.Errorf("worldsvc: restore: position of %q in %q: not an online member, or out of bounds",
					p.ParticipantID, rp.RoomID)
			}
			r.positions[p.ParticipantID] = point{p.X, p.Y}
		}
	}
	for _, rp := range s.Pending {
		r := n.rooms[rp.RoomID]
		for _, p := range rp.Positions {
			if r == nil || !n.inRoom(p.ParticipantID, rp.RoomID) || !ValidCoordinate(p.X) || !ValidCoordinate(p.Y) {
				return fmt.Errorf("worldsvc: restore: move of %q in %q: not an online member, or out of bounds",
					p.ParticipantID, rp.RoomID)
			}
			if len(r.pending) == 0 {
				n.dirty = append(n.dirty, rp.RoomID)
			}
			r.pending[p.ParticipantID] = point{p.X, p.Y}
		}
	}
	for _, t := range s.Tombstones {
		n.tombstone(sockKey{t.GatewayID, t.SocketID}, t.At)
	}
	*w = *n
	return nil
}

func sortedRoomIDs(m map[string]*roomState) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func sortedPositions(m map[string]point) []mesh.Position {
	ps := make([]mesh.Position, 0, len(m))
	for id, p := range m {
		ps = append(ps, mesh.Position{ParticipantID: id, X: p.x, Y: p.y})
	}
	slices.SortFunc(ps, func(a, b mesh.Position) int { return strings.Compare(a.ParticipantID, b.ParticipantID) })
	return ps
}
