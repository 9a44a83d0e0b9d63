// Package store is The Mesh's source of truth. Its interfaces are small and grouped by
// aggregate; Store is all of them. Implementations: sqlite (single node) and, later, mongo
// (clustered). storetest is the conformance suite every implementation passes.
//
// Errors: a missing record is mesh.CodeNotFound; a uniqueness violation the caller can act on
// (a taken email) is mesh.CodeConflict; everything else is an internal error wrapped with
// context. Times are stored at millisecond precision.
package store

import (
	"context"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
)

// Account is a participant with what only the server sees.
type Account struct {
	mesh.Participant
	PasswordHash []byte
	Banned       bool
	Deactivated  bool
	// TokenGen is the generation of the participant's tokens: a token of an older generation
	// is refused (a password change or "log out everywhere" raises it). It starts at 0.
	TokenGen int
}

// FirstMode says how CreateParticipant treats the mesh's first participant.
type FirstMode int

const (
	// AnyOrder stores the participant whatever exists.
	AnyOrder FirstMode = iota
	// FirstBecomesOwner stores it; if it is the first participant ever, its role becomes
	// owner. Of concurrent first registrations exactly one becomes owner.
	FirstBecomesOwner
	// OnlyFirst stores it only if no participant exists yet (as owner); otherwise CodeConflict.
	OnlyFirst
)

// ParticipantUpdate changes the fields that are not nil.
type ParticipantUpdate struct {
	// Email, lower-cased by the caller, changes the email: "" removes it (a deleted account's
	// address may then be registered again); a taken one is CodeConflict.
	Email        *string
	DisplayName  *string
	Role         *string
	Banned       *bool
	Deactivated  *bool
	PasswordHash *[]byte
	TokenGen     *int
}

// Participants are the accounts of the mesh.
type Participants interface {
	// CreateParticipant stores a (ID, Email lower-cased by the caller, CreatedAt set). Emails
	// are compared case-insensitively (implementations lower-case them too); an empty email
	// is no email (bots) and never conflicts. A taken email is CodeConflict. a.TokenGen is
	// stored as given (0 for a new participant). It returns the account as stored (its role
	// may be owner, see mode).
	CreateParticipant(ctx context.Context, a Account, mode FirstMode) (Account, error)
	// ParticipantByID is CodeNotFound for an unknown id.
	ParticipantByID(ctx context.Context, id string) (Account, error)
	// ParticipantByEmail matches case-insensitively; CodeNotFound if none (or email is empty).
	ParticipantByEmail(ctx context.Context, email string) (Account, error)
	// ParticipantsByIDs returns the accounts that exist among ids, in no particular order.
	ParticipantsByIDs(ctx context.Context, ids []string) ([]Account, error)
	CountParticipants(ctx context.Context) (int, error)
	// ListParticipants lists accounts ordered by id, after the cursor after (an id; empty for
	// the start), at most limit (0 means mesh.DefaultListLimit).
	ListParticipants(ctx context.Context, after string, limit int) ([]Account, error)
	// FindParticipants lists the accounts whose display name contains text (compared
	// case-insensitively by simple Unicode case folding, literally: no pattern characters),
	// ordered by id, after the cursor after, at most limit (0 means mesh.DefaultListLimit; no
	// maximum is applied, so that a caller may ask for one more than a page). An empty text
	// finds none; no match is an empty list, never nil.
	FindParticipants(ctx context.Context, text, after string, limit int) ([]Account, error)
	// UpdateParticipant returns the account as stored; CodeNotFound for an unknown id.
	UpdateParticipant(ctx context.Context, id string, u ParticipantUpdate) (Account, error)
}

// RoomAccess is what deciding on an action in a room needs, read at once: the room (its
// MemberCount left zero: counting is not needed there), whether the participant is a member,
// and the end of its mute (zero if none or ended).
type RoomAccess struct {
	Room       mesh.Room
	Member     bool
	MutedUntil time.Time
}

// RoomQuery selects the rooms a viewer may see: every public room and the private rooms the
// viewer is a member of, ordered by ID, after the cursor After (an ID; empty for the start),
// at most Limit (0 means mesh.DefaultListLimit; no maximum is applied, so that a caller may
// ask for one more than a page to learn whether another page follows). Archived rooms are
// included. Each room comes with its MemberCount.
type RoomQuery struct {
	Viewer string
	After  string
	Limit  int
	// MemberOnly keeps only rooms the viewer is a member of.
	MemberOnly bool
	// Text, when set, keeps only rooms whose name or topic contains it (compared as
	// FindParticipants compares display names: simple case folding, literally).
	Text string
}

// RoomUpdate changes the fields that are not nil.
type RoomUpdate struct {
	Name     *string
	Topic    *string
	Archived *bool
}

// Rooms are rooms and their membership. For an unknown room, Room and the methods that change
// a room (UpdateRoom, DeleteRoom, AddMember, RemoveMember, SetMute) are CodeNotFound; the
// reads of what a room holds (IsMember, Members, MutedUntil) answer empty, without error.
// Membership is not checked against Participants.
type Rooms interface {
	// Access reads a room and one participant's standing in it, without counting members (the
	// send path's read). CodeNotFound for an unknown room.
	Access(ctx context.Context, roomID, participantID string) (RoomAccess, error)
	// CreateRoom stores r and makes r.CreatedBy its first member (none if it is empty),
	// atomically. It returns the room as stored, with its MemberCount.
	CreateRoom(ctx context.Context, r mesh.Room) (mesh.Room, error)
	// Room returns the room with its MemberCount.
	Room(ctx context.Context, id string) (mesh.Room, error)
	ListRooms(ctx context.Context, q RoomQuery) ([]mesh.Room, error)
	// UpdateRoom returns the room as stored, with its MemberCount.
	UpdateRoom(ctx context.Context, id string, u RoomUpdate) (mesh.Room, error)
	// DeleteRoom removes the room, its memberships, read marks, messages, reactions and file records
	// (not the files' bytes: the caller lists the room's files first and deletes those).
	DeleteRoom(ctx context.Context, id string) error
	// AddMember reports whether the participant was not a member before.
	AddMember(ctx context.Context, roomID, participantID string) (added bool, err error)
	// RemoveMember reports whether the participant was a member.
	RemoveMember(ctx context.Context, roomID, participantID string) (removed bool, err error)
	IsMember(ctx context.Context, roomID, participantID string) (bool, error)
	// Members lists the room's member ids in the order they joined.
	Members(ctx context.Context, roomID string) ([]string, error)
	// RoomsOf lists the ids of the rooms the participant is a member of, ordered by id.
	RoomsOf(ctx context.Context, participantID string) ([]string, error)
	// SetMute mutes the participant in the room until the given time, at millisecond
	// precision (a past or zero time unmutes). A mute outlives membership: leaving the room
	// and joining again does not end it.
	SetMute(ctx context.Context, roomID, participantID string, until time.Time) error
	// MutedUntil is the end of the participant's mute in the room (zero if none, or if it has
	// ended).
	MutedUntil(ctx context.Context, roomID, participantID string) (time.Time, error)
}

// MessageQuery selects a room's messages; results are always in ascending seq order. With
// After, the first Limit messages after that seq; with Before, the last Limit messages before
// it; with neither, the last Limit messages. Both may be set (a window): the first Limit
// messages after After and before Before. Zero After or Before is unset. Limit 0 means
// mesh.DefaultListLimit; it is capped at mesh.MaxListLimit. Whispers are returned only when
// Viewer is their author or addressee (an empty Viewer sees none), and Limit counts only what
// Viewer may see. ThreadID keeps the thread's root (the message whose ID is ThreadID) and its
// replies. Deleted messages are returned (deleted, empty), so seqs stay gap-free. An unknown
// room has no messages. Forward asks for the first Limit messages after After even when After
// is zero (a client that has seen nothing reads from the start).
type MessageQuery struct {
	RoomID   string
	Viewer   string
	Forward  bool
	After    int64
	Before   int64
	ThreadID string
	Limit    int
}

// ThreadQuery selects a room's threads for ListThreads: those with at least one reply Viewer
// may see that is not deleted, whose root Viewer may see (whispers as in ListMessages; a
// deleted root still heads its thread), most recently replied to first (by LastReplySeq),
// with LastReplySeq below Before when set (a cursor), at most Limit (0 means
// mesh.DefaultListLimit; capped at mesh.MaxListLimit+1, so that a caller may ask for one more
// than a page). An unknown room has none (an empty list, never nil). A reply whose threadId
// names no message of the room makes no thread.
type ThreadQuery struct {
	RoomID string
	Viewer string
	Before int64
	Limit  int
}

// ThreadSummary is a thread as ListThreads sees it, for its viewer.
type ThreadSummary struct {
	Root mesh.Message
	// Replies counts the replies the viewer may see, deleted ones not counted.
	Replies int
	// LastReplySeq and LastReplyAt are those of the latest of those replies.
	LastReplySeq int64
	LastReplyAt  time.Time
}

// SearchQuery selects messages for SearchMessages.
type SearchQuery struct {
	Text   string
	Rooms  []string
	Viewer string
	Before string
	Limit  int
}

// Messages are the rooms' messages and their reactions.
type Messages interface {
	// CreateMessage gives m (ID, RoomID, AuthorID, Content, ThreadID, To, ClientMsgID,
	// CreatedAt, Attachments and Event set; Event's Data is kept byte for byte) the room's next seq and stores it, atomically: seqs are 1, 2, 3, ...
	// with no gap and no repeat even under concurrent writers. If m.ClientMsgID is set and the
	// author already sent it in this room, nothing is stored and the first message is returned
	// with created false. Likewise for an m.ID already stored (a redelivered command that
	// derives the id from its own): the stored message, created false. An unknown room is
	// CodeNotFound.
	CreateMessage(ctx context.Context, m mesh.Message) (msg mesh.Message, created bool, err error)
	// Message returns the message with its reactions. Every method returning a message fills
	// Reactions (never nil): per emoji, the ids of who reacted in the order they reacted; an
	// emoji nobody holds any more is absent. An unknown message is CodeNotFound.
	Message(ctx context.Context, id string) (mesh.Message, error)
	ListMessages(ctx context.Context, q MessageQuery) ([]mesh.Message, error)
	// EditMessage replaces the content and sets EditedAt to at. A deleted message cannot be
	// edited (CodeNotFound).
	EditMessage(ctx context.Context, id, content string, at time.Time) (mesh.Message, error)
	// DeleteMessage keeps id and seq, sets deleted and empties the content, attachments and event
	// (not the file records: the caller deletes those); reactions go, and the message is
	// unpinned (a locked thread root stays locked). Deleting a deleted message
	// is not an error.
	DeleteMessage(ctx context.Context, id string) (mesh.Message, error)
	// AddReaction reports whether the reaction is new; the message comes back updated. A
	// deleted message takes no reactions (CodeNotFound).
	AddReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error)
	// RemoveReaction reports whether the reaction was there; the message comes back updated.
	RemoveReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error)
	// SetPinned pins or unpins a message and returns it; CodeNotFound for an unknown one. A
	// deleted message is never pinned, and cannot be pinned or unpinned: CodeNotFound.
	// Pinning a pinned message (or unpinning an unpinned one) is not an error.
	SetPinned(ctx context.Context, id string, pinned bool) (mesh.Message, error)
	// ListPinned lists a room's pinned messages that viewer may see (whispers as in
	// ListMessages), in ascending seq order, the first mesh.MaxListLimit of them. An unknown
	// room has none.
	ListPinned(ctx context.Context, roomID, viewer string) ([]mesh.Message, error)
	// SetLocked locks or unlocks a thread (its root message) and returns the root;
	// CodeNotFound for an unknown message. The store does not check that id is a root, and a
	// deleted root may be locked or unlocked (its thread lives on).
	SetLocked(ctx context.Context, id string, locked bool) (mesh.Message, error)
	// SearchMessages finds messages whose content contains text (case-insensitively), in
	// the given rooms only, that viewer may see (whispers as in ListMessages), newest first
	// (by creation time, then id), before the message id Before when set (a cursor), at most
	// Limit (0 means mesh.DefaultListLimit, capped at mesh.MaxListLimit). Deleted messages
	// are not found. A Before that names no message gives an empty result.
	SearchMessages(ctx context.Context, q SearchQuery) ([]mesh.Message, error)
	// ListThreads lists a room's threads; see ThreadQuery.
	ListThreads(ctx context.Context, q ThreadQuery) ([]ThreadSummary, error)
	// LastSeq is the room's highest seq (0 for none, or for an unknown room). Deleted
	// messages keep their seq, so it never goes down while the room exists.
	LastSeq(ctx context.Context, roomID string) (int64, error)
}

// Tokens records revoked tokens until they expire.
type Tokens interface {
	// RevokeToken records the token as revoked until expires (the token's own expiry). After
	// that the record may be purged, as the token is refused for its expiry anyway; a zero
	// expires keeps it for ever. Revoking again is not an error.
	RevokeToken(ctx context.Context, tokenID, participantID string, expires time.Time) error
	// IsRevoked reports whether the token is recorded as revoked.
	IsRevoked(ctx context.Context, tokenID string) (bool, error)
}

// Settings are the mesh's key-value settings (its name, its JWT secret, ...).
type Settings interface {
	// Setting reports the value and whether it is set.
	Setting(ctx context.Context, key string) (string, bool, error)
	SetSetting(ctx context.Context, key, value string) error
	// SetSettingIfAbsent stores value unless key is set, and returns what is stored: of
	// concurrent callers, all get the first one's value.
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)
}

// Idempotency remembers results so that retried requests change nothing.
type Idempotency interface {
	// SaveResult stores result under (scope, key) unless something is stored there already,
	// and returns what is stored (so concurrent savers agree on one result). A nil result is
	// stored as an empty one.
	SaveResult(ctx context.Context, scope, key string, result []byte) ([]byte, error)
	// Result returns the stored result, and whether there is one.
	Result(ctx context.Context, scope, key string) ([]byte, bool, error)
}

// Role is a custom role as stored (the built-in roles are pkg/rbac's, never stored).
// CreatedAt is stored at millisecond precision, and read back in UTC.
type Role struct {
	Name        string
	Priority    int
	Permissions []string // in the order given; read back never nil (none is an empty slice)
	CreatedBy   string
	CreatedAt   time.Time
}

// RoleUpdate changes the fields that are not nil.
type RoleUpdate struct {
	Priority    *int
	Permissions *[]string
}

// Roles are the mesh's custom roles.
type Roles interface {
	// CreateRole stores r. A taken name is CodeConflict.
	CreateRole(ctx context.Context, r Role) (Role, error)
	// RoleByName is CodeNotFound for an unknown name.
	RoleByName(ctx context.Context, name string) (Role, error)
	// ListRoles lists the custom roles by name.
	ListRoles(ctx context.Context) ([]Role, error)
	// UpdateRole returns the role as stored; CodeNotFound for an unknown name.
	UpdateRole(ctx context.Context, name string, u RoleUpdate) (Role, error)
	// DeleteRole removes the role; CodeNotFound for an unknown name. Participants holding it
	// keep the name (the caller decides what they become first).
	DeleteRole(ctx context.Context, name string) error
	// CountByRole counts the participants (deactivated and banned included) whose role is
	// role.
	CountByRole(ctx context.Context, role string) (int, error)
}

// AuditEntry is one action as recorded. Entries are appended and never edited.
type AuditEntry struct {
	ID         string    // a ULID: entries sort by it as by time
	At         time.Time // millisecond precision
	ActorID    string    // who acted ("" for anonymous actions: registration, login)
	OnBehalfOf string    // the human at the root of the actor's authority (the actor itself for humans)
	Action     string    // the operation, such as "messages.send"
	Target     string    // what it acted on: an id or a name ("" if nothing in particular)
	Result     string    // "ok" or the error code
	Addr       string    // the client's address
}

// AuditQuery selects entries, newest first: those matching every non-empty field, with ID
// below Before (a cursor: the last ID of the previous page), at most Limit (0 means
// mesh.DefaultListLimit; capped at mesh.MaxListLimit).
type AuditQuery struct {
	ActorID string
	Action  string
	Target  string
	Result  string
	Since   time.Time // At >= Since when set
	Until   time.Time // At < Until when set
	Before  string
	Limit   int
}

// Audit is the append-only log of who did what.
type Audit interface {
	// AppendAudit appends entries (IDs set by the caller, unique), in one write: all or
	// nothing on SQLite; on MongoDB (no transactions) a failure part-way keeps the entries
	// before it.
	AppendAudit(ctx context.Context, entries []AuditEntry) error
	// ListAudit lists entries newest first; see AuditQuery.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
}

// Invite is a code that lets someone register while registration is closed.
type Invite struct {
	Code      string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	MaxUses   int       // at least 1
	Uses      int       // as read
}

// Invites are the mesh's invite codes.
type Invites interface {
	// CreateInvite stores inv (Uses ignored: a new code is unused). A taken code is
	// CodeConflict.
	CreateInvite(ctx context.Context, inv Invite) (Invite, error)
	// ListInvites lists the codes, newest first, with their uses.
	ListInvites(ctx context.Context) ([]Invite, error)
	// DeleteInvite removes a code; CodeNotFound for an unknown one.
	DeleteInvite(ctx context.Context, code string) error
	// UseInvite records one use of a code at now and returns it with its uses counted. An
	// unknown, expired (now at or past ExpiresAt) or used-up code is CodeNotFound. Atomic: of concurrent uses of a code
	// with n uses left, exactly n succeed (build it on inserts under a unique index, not on
	// an increment: FerretDB loses concurrent updates of one document).
	UseInvite(ctx context.Context, code string, now time.Time) (Invite, error)
}

// FileQuery selects a room's files for ListFiles, newest first (by ID: IDs are ULIDs), with
// ID below Before when set (a cursor), at most Limit (0 means mesh.DefaultListLimit; capped at
// mesh.MaxListLimit, but a caller may ask for one more than a page). With a Viewer, only what
// the viewer may see: the files attached to messages it may see (a whisper's files only to
// the whisper's author and addressee) and its own unattached ones. With no Viewer, every file
// of the room (for clean-up).
type FileQuery struct {
	RoomID string
	Viewer string
	Before string
	Limit  int
}

// Files are the records of uploaded files (their bytes are in a blob.Store, under the same
// ID). A message's attachments are stored with the message itself (mesh.Message.Attachments,
// written by CreateMessage); the file records say which message each file went to.
type Files interface {
	// CreateFile stores f (every field set but MessageID, which starts unset). A known ID
	// (a redelivered command) returns the stored record with created false; the room is not
	// checked.
	CreateFile(ctx context.Context, f mesh.File) (file mesh.File, created bool, err error)
	// File returns a file's record; CodeNotFound for an unknown ID.
	File(ctx context.Context, id string) (mesh.File, error)
	// FilesByIDs returns the records that exist among ids, in no particular order.
	FilesByIDs(ctx context.Context, ids []string) ([]mesh.File, error)
	// AttachFiles records that the files went with message m (its ID; m.To, for a whisper,
	// decides who may see them in ListFiles). A file already attached to m stays so (a
	// redelivered command); if any file is unknown or attached to another message it is
	// CodeConflict, and the others are attached all the same.
	AttachFiles(ctx context.Context, m mesh.Message, ids []string) error
	// DeleteFiles removes the records; unknown IDs are skipped.
	DeleteFiles(ctx context.Context, ids []string) error
	// ListFiles lists a room's files; see FileQuery. An unknown room has none.
	ListFiles(ctx context.Context, q FileQuery) ([]mesh.File, error)
}

// ReadMarks are how far each participant has read each room, by seq (for unread counts, on
// every device of the participant).
type ReadMarks interface {
	// SetReadMark records that the participant has read the room up to seq, and returns the
	// mark as stored: it only moves forward (a lower or equal seq leaves it as it is, and is
	// not an error), also under concurrent calls. seq ≥ 1; membership is not checked. For
	// an unknown room nothing is stored (a room made later under that id has no mark) and
	// seq comes back.
	SetReadMark(ctx context.Context, roomID, participantID string, seq int64) (int64, error)
	// ReadMarks returns the participant's marks in the given rooms; a room with no mark is
	// absent from the map (never nil).
	ReadMarks(ctx context.Context, participantID string, roomIDs []string) (map[string]int64, error)
}

// Store is every aggregate, over one database.
type Store interface {
	ReadMarks
	Files
	Invites
	Audit
	Roles
	Participants
	Rooms
	Messages
	Tokens
	Settings
	Idempotency
	// Ping answers whether the database answers (for readiness).
	Ping(ctx context.Context) error
	Close() error
}
