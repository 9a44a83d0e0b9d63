package mesh

import "encoding/json"

// Streams carry commands that must not be lost (at least once, consumer groups, acks).
const (
	StreamAPI   = "mesh:cmd:api"
	StreamWorld = "mesh:cmd:world"
	StreamBots  = "mesh:cmd:bots"
	StreamProxy = "mesh:cmd:proxy"
)

// Consumer groups of the streams.
const (
	GroupAPI   = "api"
	GroupWorld = "world"
	GroupBots  = "bots"
	GroupProxy = "proxy"
)

// SubjectPresence carries presence changes to every gateway (each delivers to the sockets
// that share a room with the participant).
const SubjectPresence = "mesh:presence"

// SubjectSettings tells every API worker that the mesh's settings changed, so that they drop
// what they keep of them (pub/sub: a worker that misses it reads them again within seconds).
const SubjectSettings = "mesh:settings"

// RoomSubject carries a room's events (pub/sub, at most once).
func RoomSubject(roomID string) string { return "mesh:room:" + roomID }

// ParticipantSubject carries events for one participant's sockets, wherever they are.
func ParticipantSubject(participantID string) string { return "mesh:participant:" + participantID }

// GatewaySubject carries replies to one gateway's requests.
func GatewaySubject(gatewayID string) string { return "mesh:gateway:" + gatewayID }

// Command is a request carried on a stream. ID is unique per request: handlers are idempotent
// on it (a redelivered command has no second effect). The reply, if ReplyTo is set, is
// published there as a Reply with the same ID.
type Command struct {
	ID       string `json:"id"`
	Op       string `json:"op"`
	Actor    *Actor `json:"actor,omitempty"`
	ReplyTo  string `json:"replyTo,omitempty"`
	Deadline int64  `json:"deadline,omitempty"` // unix ms; past it the caller has given up
	// IdempotencyKey is the client's Idempotency-Key: a repeat from the same actor gets the
	// first result and changes nothing.
	IdempotencyKey string  `json:"idempotencyKey,omitempty"`
	Args           Request `json:"args"`
}

// Actor is who a command acts for, as verified by the gateway from the bearer token.
type Actor struct {
	ID       string `json:"id"`
	TokenID  string `json:"tokenId"`
	TokenExp int64  `json:"tokenExp"` // unix seconds
	// TokenGen is the token's generation (see the participant's): older ones are refused.
	TokenGen int    `json:"tokenGen,omitempty"`
	Addr     string `json:"addr,omitempty"`
}

// Request is an operation's input: path parameters, query parameters and a JSON body. A
// WebSocket frame becomes a Request whose Body is the frame itself.
type Request struct {
	Params map[string]string `json:"params,omitempty"`
	Query  map[string]string `json:"query,omitempty"`
	Body   json.RawMessage   `json:"body,omitempty"`
	// Addr is the client's network address (for per-address limits).
	Addr string `json:"addr,omitempty"`
}

// Reply answers a Command. Exactly one of Result and Error is set; Status is the HTTP status
// of a success (200 when zero).
type Reply struct {
	ID     string          `json:"id"`
	Status int             `json:"status,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Event is what services publish for gateways to turn into frames. Frame is the exact JSON
// object sent to each socket that may receive it.
type Event struct {
	Type   string `json:"type"`
	RoomID string `json:"roomId,omitempty"`
	// Seq orders a room's message events: gateways deliver them in seq order.
	Seq int64 `json:"seq,omitempty"`
	// Only, if set, limits delivery to these participants (whispers, mute notices).
	Only []string `json:"only,omitempty"`
	// Except, if set, is a participant who does not receive the event (typing).
	Except string `json:"except,omitempty"`
	// Rooms, on presence events: deliver once to every socket in any of these rooms.
	Rooms []string `json:"rooms,omitempty"`
	// Joined, on a participant subject: the participant's sockets enter RoomID (after the
	// frame is delivered to them).
	Joined bool `json:"joined,omitempty"`
	// Left names a participant whose sockets leave RoomID after the frame is delivered.
	Left string `json:"left,omitempty"`
	// Close, on a participant subject, closes that participant's sockets (those holding
	// TokenID if it is set) with the WebSocket close Code and Reason.
	Close *CloseSpec `json:"close,omitempty"`
	// Role, on a participant subject, is the participant's new role.
	Role  string          `json:"role,omitempty"`
	Frame json.RawMessage `json:"frame,omitempty"`
}

// CloseSpec says which sockets of a participant to close, and how.
type CloseSpec struct {
	TokenID string `json:"tokenId,omitempty"`
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
}
