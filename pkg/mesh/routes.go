package mesh

// Route is one REST route: the gateway serves it by sending Op to the service's stream; the
// service checks Permission (beyond what the op itself checks, like membership or authorship).
// This table is the single place where each route names its permission.
type Route struct {
	Method string
	// Path in OpenAPI form: /api/rooms/{roomId}.
	Path string
	Op   string
	// Auth: the route needs a bearer token.
	Auth bool
	// Permission the actor's role must hold ("" for none).
	Permission string
	// Mutating routes honour Idempotency-Key.
	Mutating bool
	Summary  string
}

// Operation names on the API stream.
const (
	OpSetupGet       = "setup.get"
	OpSetupCreate    = "setup.create"
	OpAuthRegister   = "auth.register"
	OpAuthLogin      = "auth.login"
	OpAuthMe         = "auth.me"
	OpAuthLogout     = "auth.logout"
	OpAuthUpdate     = "auth.update"
	OpAuthPassword   = "auth.password"
	OpAuthSessions   = "auth.sessions.revoke"
	OpAuthDelete     = "auth.delete"
	OpAuthRefresh    = "auth.refresh"
	OpRoomsList      = "rooms.list"
	OpRoomsCreate    = "rooms.create"
	OpRoomsGet       = "rooms.get"
	OpRoomsUpdate    = "rooms.update"
	OpRoomsDelete    = "rooms.delete"
	OpRoomsJoin      = "rooms.join"
	OpRoomsLeave     = "rooms.leave"
	OpRoomsMembers   = "rooms.members"
	OpRoomsKick      = "rooms.kick"
	OpRoomsMute      = "rooms.mute"
	OpMessagesList   = "messages.list"
	OpMessagesSend   = "messages.send"
	OpMessagesEdit   = "messages.edit"
	OpMessagesDelete = "messages.delete"
	OpReactionsAdd   = "reactions.add"
	OpReactionsDel   = "reactions.remove"
	OpParticipantGet = "participants.get"
	OpPermissionsGet = "permissions.list"
	OpRolesList      = "roles.list"
	OpRolesCreate    = "roles.create"
	OpRolesUpdate    = "roles.update"
	OpRolesDelete    = "roles.delete"
	OpRoleAssign     = "participants.role"
	OpParticipants   = "participants.list"
	OpBan            = "participants.ban"
	OpUnban          = "participants.unban"
	OpDeactivate     = "participants.deactivate"
	OpReactivate     = "participants.reactivate"
	OpSettingsGet    = "settings.get"
	OpSettingsUpdate = "settings.update"
	OpAuditList      = "audit.list"
	OpPin            = "messages.pin"
	OpUnpin          = "messages.unpin"
	OpPinsList       = "rooms.pins"
	OpLock           = "threads.lock"
	OpUnlock         = "threads.unlock"
	OpRoomInvite     = "rooms.invite"
	OpInvitesCreate  = "invites.create"
	OpInvitesList    = "invites.list"
	OpInvitesDelete  = "invites.delete"
	OpSearch         = "messages.search"
	OpFilesUpload    = "files.upload"
	OpFilesGet       = "files.get"
	OpFilesDelete    = "files.delete"
	OpFilesList      = "rooms.files"
	OpFeedPost       = "feed.post"
	OpReadMark       = "rooms.read"
	OpThreadsList    = "threads.list"
	// OpFilesAuthorize asks, before an upload's bytes are read, whether the actor may upload
	// to a room and how large a file may be: the result is a FileGrant.
	OpFilesAuthorize = "files.authorize"
	// OpSessionOpen authenticates a WebSocket: the result is a SessionOpenResult.
	OpSessionOpen = "session.open"
)

// Routes is every REST route of the API service.
var Routes = []Route{
	{"GET", "/api/setup", OpSetupGet, false, "", false, "Whether the mesh needs setting up, and its name"},
	{"POST", "/api/setup", OpSetupCreate, false, "", true, "Set the mesh up and create its first owner"},
	{"POST", "/api/auth/register", OpAuthRegister, false, "", true, "Register a participant"},
	{"POST", "/api/auth/login", OpAuthLogin, false, "", true, "Log in"},
	{"GET", "/api/auth/me", OpAuthMe, true, "", false, "The caller"},
	{"POST", "/api/auth/logout", OpAuthLogout, true, "", true, "Revoke the caller's token everywhere"},
	{"POST", "/api/auth/refresh", OpAuthRefresh, true, "", true, "A new token for the caller, of full lifetime (the current one stays valid until it expires)"},
	{"PATCH", "/api/auth/me", OpAuthUpdate, true, "", true, "Change one's own display name"},
	{"POST", "/api/auth/password", OpAuthPassword, true, "", true, "Change one's password (the current one is needed): every other session ends, and a new token comes back"},
	{"DELETE", "/api/auth/me", OpAuthDelete, true, "", true, "Delete one's own account (its password needed): the email and password go, the rooms are left, every session ends; messages stay, under a neutral name"},
	{"DELETE", "/api/auth/sessions", OpAuthSessions, true, "", true, "Sign out everywhere: every token of the caller is refused from now on, its sockets close (4001)"},
	{"GET", "/api/participants/{participantId}", OpParticipantGet, true, "", false, "A participant"},
	{"GET", "/api/permissions", OpPermissionsGet, true, "", false, "The 34 permissions, by category"},
	{"GET", "/api/roles", OpRolesList, true, "", false, "The roles, highest priority first"},
	{"POST", "/api/roles", OpRolesCreate, true, "manage_roles", true, "Create a custom role (its priority below yours, only permissions you hold)"},
	{"PATCH", "/api/roles/{name}", OpRolesUpdate, true, "manage_roles", true, "Change a custom role's priority or permissions"},
	{"DELETE", "/api/roles/{name}", OpRolesDelete, true, "manage_roles", true, "Delete a custom role nobody holds (built-in roles cannot be deleted)"},
	{"PUT", "/api/participants/{participantId}/role", OpRoleAssign, true, "assign_roles", true, "Give a participant a role (the owner role needs manage_mesh)"},
	{"GET", "/api/participants", OpParticipants, true, "view_members", false, "The mesh's participants, or those whose display name contains q (emails to manage_members holders)"},
	{"POST", "/api/participants/{participantId}/ban", OpBan, true, "ban_members", true, "Ban a participant: no login, no connection, its sockets close"},
	{"DELETE", "/api/participants/{participantId}/ban", OpUnban, true, "ban_members", true, "Lift a ban"},
	{"POST", "/api/participants/{participantId}/deactivate", OpDeactivate, true, "manage_members", true, "Deactivate a participant's account"},
	{"POST", "/api/participants/{participantId}/reactivate", OpReactivate, true, "manage_members", true, "Reactivate a participant's account"},
	{"GET", "/api/settings", OpSettingsGet, true, "manage_settings", false, "The mesh's settings"},
	{"POST", "/api/invites", OpInvitesCreate, true, "invite_members", true, "Make an invite code: it lets someone register while registration is closed"},
	{"GET", "/api/invites", OpInvitesList, true, "invite_members", false, "The invite codes and their uses"},
	{"DELETE", "/api/invites/{code}", OpInvitesDelete, true, "invite_members", true, "Withdraw an invite code"},
	{"GET", "/api/search", OpSearch, true, "view_rooms", false, "Find messages (q) in the rooms one may see, newest first"},
	{"GET", "/api/audit", OpAuditList, true, "view_audit_log", false, "The audit log, newest first: who did what, for whom, with what result"},
	{"PATCH", "/api/settings", OpSettingsUpdate, true, "manage_settings", true, "Change the mesh's name, whether registration is open, the default role"},
	{"GET", "/api/rooms", OpRoomsList, true, "view_rooms", false, "Rooms the caller may see (q: whose name or topic contains it; member=true: only those it is in)"},
	{"POST", "/api/rooms", OpRoomsCreate, true, "create_rooms", true, "Create a room (private rooms need create_private_rooms)"},
	{"GET", "/api/rooms/{roomId}", OpRoomsGet, true, "view_rooms", false, "A room"},
	{"PATCH", "/api/rooms/{roomId}", OpRoomsUpdate, true, "edit_rooms", true, "Rename a room or change its topic (archiving needs archive_rooms)"},
	{"DELETE", "/api/rooms/{roomId}", OpRoomsDelete, true, "delete_rooms", true, "Delete a room"},
	{"POST", "/api/rooms/{roomId}/join", OpRoomsJoin, true, "join_rooms", true, "Join a room"},
	{"POST", "/api/rooms/{roomId}/leave", OpRoomsLeave, true, "", true, "Leave a room"},
	{"GET", "/api/rooms/{roomId}/members", OpRoomsMembers, true, "view_rooms", false, "A room's members"},
	{"GET", "/api/rooms/{roomId}/messages", OpMessagesList, true, "view_rooms", false, "A room's messages in seq order"},
	{"POST", "/api/rooms/{roomId}/messages", OpMessagesSend, true, "send_messages", true, "Send a message"},
	{"PATCH", "/api/messages/{messageId}", OpMessagesEdit, true, "", true, "Edit a message (others' need manage_messages)"},
	{"DELETE", "/api/messages/{messageId}", OpMessagesDelete, true, "", true, "Delete a message (others' need manage_messages)"},
	{"POST", "/api/messages/{messageId}/pin", OpPin, true, "pin_messages", true, "Pin a message in its room"},
	{"DELETE", "/api/messages/{messageId}/pin", OpUnpin, true, "pin_messages", true, "Unpin a message"},
	{"GET", "/api/rooms/{roomId}/pins", OpPinsList, true, "view_rooms", false, "A room's pinned messages"},
	{"GET", "/api/rooms/{roomId}/threads", OpThreadsList, true, "view_rooms", false, "A room's threads one may see, most recently replied to first, with reply counts"},
	{"POST", "/api/messages/{messageId}/lock", OpLock, true, "lock_threads", true, "Lock a thread (its root message): only lock_threads holders reply"},
	{"DELETE", "/api/messages/{messageId}/lock", OpUnlock, true, "lock_threads", true, "Unlock a thread"},
	{"POST", "/api/messages/{messageId}/reactions", OpReactionsAdd, true, "add_reactions", true, "React to a message"},
	{"DELETE", "/api/messages/{messageId}/reactions/{emoji}", OpReactionsDel, true, "add_reactions", true, "Remove one's reaction"},
	{"POST", "/api/rooms/{roomId}/invites", OpRoomInvite, true, "invite_members", true, "Bring a participant into a room (the way into a private one)"},
	{"POST", "/api/files", OpFilesUpload, true, "upload_files", true, "Upload a file for a room (multipart/form-data: the field roomId, then the part file); attach it to a message by its id"},
	{"GET", "/api/files/{fileId}", OpFilesGet, true, "view_rooms", false, "A file's bytes, to those who may see the message it is attached to (its uploader until then)"},
	{"DELETE", "/api/files/{fileId}", OpFilesDelete, true, "", true, "Delete one's own file not yet attached; an attached file goes with its message"},
	{"GET", "/api/rooms/{roomId}/files", OpFilesList, true, "view_rooms", false, "A room's files one may see, newest first"},
	{"PUT", "/api/rooms/{roomId}/read", OpReadMark, true, "view_rooms", false, "Mark a room read up to a seq (marks only move forward); the caller's other sockets hear it"},
	{"POST", "/api/rooms/{roomId}/events", OpFeedPost, true, "post_feed_events", true, "Post a feed event (kind, title, body, url, data) into a room's timeline, as a message"},
	{"POST", "/api/rooms/{roomId}/kick", OpRoomsKick, true, "kick_members", true, "Remove a participant from a room"},
	{"POST", "/api/rooms/{roomId}/mute", OpRoomsMute, true, "mute_members", true, "Mute a participant in a room"},
}

// InternalOps are operations the gateway sends on its own, with no route of their own: they
// name their permission here all the same.
var InternalOps = []Route{
	{Op: OpSessionOpen, Auth: true, Summary: "Authenticate a WebSocket"},
	{Op: OpFilesAuthorize, Auth: true, Permission: "upload_files", Summary: "May the actor upload to this room, and how much"},
}

// ReadMark is how far a participant has read a room.
type ReadMark struct {
	RoomID string `json:"roomId"`
	Seq    int64  `json:"seq"`
}

// FileGrant answers OpFilesAuthorize: the upload's file ID and its largest size.
type FileGrant struct {
	FileID   string `json:"fileId"`
	MaxBytes int64  `json:"maxBytes"`
}

// FileUpload is the body of OpFilesUpload, which the gateway sends once a file's bytes are
// stored: what it measured of them, and what the client said.
type FileUpload struct {
	FileID      string `json:"fileId"`
	RoomID      string `json:"roomId"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// Services a WebSocket event is sent to.
const (
	ServiceAPI   = "api"
	ServiceWorld = "world"
)

// WSEvent is one client-to-server WebSocket event: the gateway validates Required fields,
// copies Params from the frame, and sends Op to Service.
type WSEvent struct {
	Type       string
	Service    string
	Op         string
	Params     []string
	Required   []string
	Permission string
}

// WSEvents are the twelve client events ("authenticate" is handled by the gateway itself,
// through OpSessionOpen).
var WSEvents = []WSEvent{
	{"authenticate", ServiceAPI, OpSessionOpen, nil, []string{"token"}, ""},
	{"join_room", ServiceAPI, OpRoomsJoin, []string{"roomId"}, []string{"roomId"}, "join_rooms"},
	{"leave_room", ServiceAPI, OpRoomsLeave, []string{"roomId"}, []string{"roomId"}, ""},
	{"send_message", ServiceAPI, OpMessagesSend, []string{"roomId"}, []string{"roomId"}, "send_messages"},
	{"edit_message", ServiceAPI, OpMessagesEdit, []string{"messageId"}, []string{"messageId", "content"}, ""},
	{"delete_message", ServiceAPI, OpMessagesDelete, []string{"messageId"}, []string{"messageId"}, ""},
	{"add_reaction", ServiceAPI, OpReactionsAdd, []string{"messageId"}, []string{"messageId", "emoji"}, "add_reactions"},
	{"remove_reaction", ServiceAPI, OpReactionsDel, []string{"messageId", "emoji"}, []string{"messageId", "emoji"}, "add_reactions"},
	{"typing", ServiceWorld, WorldTyping, []string{"roomId"}, []string{"roomId", "isTyping"}, ""},
	{"move", ServiceWorld, WorldMove, []string{"roomId"}, []string{"roomId", "x", "y"}, ""},
	{"kick", ServiceAPI, OpRoomsKick, []string{"roomId"}, []string{"roomId", "participantId"}, "kick_members"},
	{"mute", ServiceAPI, OpRoomsMute, []string{"roomId"}, []string{"roomId", "participantId", "durationSeconds"}, "mute_members"},
	// mark_read is an addition to the twelve: the same as PUT /api/rooms/{roomId}/read.
	{"mark_read", ServiceAPI, OpReadMark, []string{"roomId"}, []string{"roomId", "seq"}, "view_rooms"},
}

// SessionOpenResult answers OpSessionOpen: the participant and what its snapshot needs from
// the store (presence and positions come from the world).
type SessionOpenResult struct {
	Participant  Participant    `json:"participant"`
	Rooms        []SnapshotRoom `json:"rooms"`
	Participants []Participant  `json:"participants"`
}

// SnapshotRoom is a room with its member ids and the highest seq of its messages, as the
// snapshot frame carries it (a client that has seen up to LastSeq has seen everything), and
// how far the participant has read it (LastRead: 0 for nothing; LastSeq − LastRead is an
// upper bound of its unread messages).
type SnapshotRoom struct {
	Room
	Members  []string `json:"members"`
	LastSeq  int64    `json:"lastSeq"`
	LastRead int64    `json:"lastRead"`
}
