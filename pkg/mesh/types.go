package mesh

import "encoding/json"

// Participant statuses.
const (
	StatusOnline  = "online"
	StatusAway    = "away"
	StatusOffline = "offline"
)

// Participant is every entity of a mesh, human or bot (bots have IsAgent).
type Participant struct {
	ID          string  `json:"id"`
	DisplayName string  `json:"displayName"`
	Role        string  `json:"role"`
	IsAgent     bool    `json:"isAgent"`
	OwnerID     *string `json:"ownerId"`
	DID         *string `json:"did"`
	Status      string  `json:"status"`
	CreatedAt   Time    `json:"createdAt"`
	// Email is shown only to the participant itself and to holders of manage_members;
	// Public clears it.
	Email string `json:"email,omitempty"`
}

// Public is p as others see it: without its email.
func (p Participant) Public() Participant {
	p.Email = ""
	return p
}

// Room is a place where participants talk. MemberCount is computed when read.
type Room struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Topic       string `json:"topic"`
	Private     bool   `json:"private"`
	Archived    bool   `json:"archived"`
	CreatedBy   string `json:"createdBy"`
	CreatedAt   Time   `json:"createdAt"`
	MemberCount int    `json:"memberCount"`
}

// Message is one message of a room. Seq is its gap-free position in the room.
type Message struct {
	ID          string              `json:"id"`
	RoomID      string              `json:"roomId"`
	Seq         int64               `json:"seq"`
	AuthorID    string              `json:"authorId"`
	Content     string              `json:"content"`
	ThreadID    *string             `json:"threadId"`
	To          *string             `json:"to"`
	ClientMsgID *string             `json:"clientMsgId"`
	CreatedAt   Time                `json:"createdAt"`
	EditedAt    *Time               `json:"editedAt"`
	Deleted     bool                `json:"deleted"`
	Reactions   map[string][]string `json:"reactions"`
	// Pinned: the message is pinned in its room (an addition to the contract).
	Pinned bool `json:"pinned"`
	// Locked, on a thread's root: no one but holders of lock_threads may reply (an addition).
	Locked bool `json:"locked"`
	// Attachments are the files sent with the message (an addition; absent when none, and
	// emptied when the message is deleted).
	Attachments []File `json:"attachments,omitempty"`
	// Event, on a feed event (POST /api/rooms/{id}/events), is what an agent reported (an
	// addition; absent on other messages, and emptied when the message is deleted).
	Event *FeedEvent `json:"event,omitempty"`
}

// FeedEvent is what an agent reports into a room's timeline: a build that finished, a task
// that changed state, an alert. It travels as a message (so it has a seq, is in the history,
// is searched and can be threaded); the message's Content is Title, then Body after a blank
// line, for clients that do not render events.
type FeedEvent struct {
	// Kind is a short machine name, such as "ci.build" (lower-case letters, digits, ".", "_"
	// and "-").
	Kind  string `json:"kind"`
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
	// URL links to the event's source (http or https).
	URL string `json:"url,omitempty"`
	// Data is the event's own JSON object, kept as it was sent.
	Data json.RawMessage `json:"data,omitempty"`
}

// File is an uploaded file's record; its bytes live in a blob store under ID. A file belongs
// to the room it was uploaded for. Until it is attached to a message only its uploader sees
// it; then whoever may see that message (a whisper's files stay with the whisper's two
// parties). Name is what the uploader called it, cleaned of any path: it is shown, never
// used as a path. ContentType is sniffed from the bytes, never taken from the client.
type File struct {
	ID          string  `json:"id"`
	RoomID      string  `json:"roomId"`
	UploaderID  string  `json:"uploaderId"`
	Name        string  `json:"name"`
	ContentType string  `json:"contentType"`
	Size        int64   `json:"size"`
	SHA256      string  `json:"sha256"`
	CreatedAt   Time    `json:"createdAt"`
	MessageID   *string `json:"messageId"`
}

// VisibleTo reports whether participant id may see m (whispers are seen by their author
// and their addressee only; room membership is checked elsewhere).
func (m *Message) VisibleTo(id string) bool {
	return m.To == nil || *m.To == id || m.AuthorID == id
}

// Position is a participant's place in a room's 2-D world.
type Position struct {
	ParticipantID string  `json:"participantId"`
	X             float64 `json:"x"`
	Y             float64 `json:"y"`
}

// Limits of the contract (PROTOCOL.md, "Limits"); each is configurable where it is used.
const (
	DefaultMaxContentBytes = 16 << 10
	DefaultMaxFrameBytes   = 64 << 10
	DefaultMaxBodyBytes    = 1 << 20
	DefaultListLimit       = 50
	MaxListLimit           = 200
	MinPasswordLength      = 8
	MaxPasswordBytes       = 72 // bcrypt's limit
	MaxDisplayNameRunes    = 64
	MaxRoomNameRunes       = 80
	MaxTopicRunes          = 500
	MaxEmojiBytes          = 64
	MaxClientMsgIDBytes    = 128
	// DefaultMaxFileBytes bounds an uploaded file (25 MiB); the mesh's settings may lower it.
	DefaultMaxFileBytes = 25 << 20
	// MaxAttachments bounds the files of one message.
	MaxAttachments = 10
	// MaxFileNameBytes bounds a file's name (longer names are cut, at a rune boundary).
	MaxFileNameBytes = 255
	// Limits of a feed event.
	MaxFeedTitleRunes = 200
	MaxFeedDataBytes  = 8 << 10
	MaxFeedURLBytes   = 2048
)

// Built-in role names (their permissions live in pkg/rbac).
const (
	RoleOwner      = "owner"
	RoleAdmin      = "admin"
	RoleModerator  = "moderator"
	RoleSuperAgent = "super_agent"
	RoleMember     = "member"
	RoleAgent      = "agent"
	RoleSpectator  = "spectator"
)
