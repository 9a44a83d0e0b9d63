package mesh

// World operations: commands on StreamWorld, consumed by the world leader. Their Args.Body
// is the matching payload below. Only WorldConnect is answered (with a WorldConnectResult);
// the others are fire-and-forget unless the command has a ReplyTo, which then gets an empty
// Result once the input is accepted.
const (
	// WorldConnect: a socket of a participant opened. The participant's first socket makes
	// it online: a presence event goes to SubjectPresence with Rooms = its rooms.
	WorldConnect = "world.connect"
	// WorldDisconnect: a socket closed. The last one makes the participant offline (presence
	// event) and removes its positions.
	WorldDisconnect = "world.disconnect"
	// WorldTyping: relayed at once as a typing event to the room's other members.
	WorldTyping = "world.typing"
	// WorldMove: folded into the next tick; each room with movers gets one positions event.
	WorldMove = "world.move"
	// WorldMembership: a participant joined or left a room (sent by the API service).
	WorldMembership = "world.membership"
	// WorldGateway: a gateway's heartbeat with the sockets it holds. A gateway not heard from
	// within the world's gateway timeout is taken as dead and its sockets as closed.
	WorldGateway = "world.gateway"
)

// WorldConnectArgs is the body of WorldConnect.
type WorldConnectArgs struct {
	ParticipantID string   `json:"participantId"`
	SocketID      string   `json:"socketId"`
	GatewayID     string   `json:"gatewayId"`
	Rooms         []string `json:"rooms"`
}

// WorldConnectResult answers WorldConnect: who is online among the members of the rooms
// (the connecting participant included) and the positions in those rooms.
type WorldConnectResult struct {
	Online    []string              `json:"online"`
	Positions map[string][]Position `json:"positions"`
}

// WorldDisconnectArgs is the body of WorldDisconnect.
type WorldDisconnectArgs struct {
	ParticipantID string `json:"participantId"`
	SocketID      string `json:"socketId"`
	GatewayID     string `json:"gatewayId"`
}

// WorldTypingArgs is the body of WorldTyping.
type WorldTypingArgs struct {
	RoomID        string `json:"roomId"`
	ParticipantID string `json:"participantId"`
	IsTyping      bool   `json:"isTyping"`
}

// WorldMoveArgs is the body of WorldMove.
type WorldMoveArgs struct {
	RoomID        string  `json:"roomId"`
	ParticipantID string  `json:"participantId"`
	X             float64 `json:"x"`
	Y             float64 `json:"y"`
}

// WorldMembershipArgs is the body of WorldMembership.
type WorldMembershipArgs struct {
	RoomID        string `json:"roomId"`
	ParticipantID string `json:"participantId"`
	Joined        bool   `json:"joined"`
}

// WorldGatewayArgs is the body of WorldGateway.
type WorldGatewayArgs struct {
	GatewayID string             `json:"gatewayId"`
	Sockets   []WorldConnectArgs `json:"sockets"`
}

// TickRate is the world's tick frequency (Hz).
const TickRate = 20

// MaxCoordinate bounds positions: |x| and |y| above it are bad_request.
const MaxCoordinate = 1e6
