// Package rbac is The Mesh's roles and permissions (DESIGN.md, "Roles and permissions"): the
// 34 permissions in 5 categories, the 7 built-in roles, and the rules for acting on others.
// It is pure logic: roles are values; where custom roles live is the store's business.
package rbac

import "sort"

// Permission is one thing a role may allow.
type Permission string

// Category groups permissions.
type Category string

const (
	General        Category = "general"
	Channels       Category = "channels"
	Members        Category = "members"
	Bots           Category = "bots"
	Administration Category = "administration"
)

// The 34 permissions.
const (
	ViewRooms        Permission = "view_rooms"
	JoinRooms        Permission = "join_rooms"
	SendMessages     Permission = "send_messages"
	SendWhispers     Permission = "send_whispers"
	AddReactions     Permission = "add_reactions"
	UploadFiles      Permission = "upload_files"
	UseModelProxy    Permission = "use_model_proxy"
	PostFeedEvents   Permission = "post_feed_events"
	CreateRooms      Permission = "create_rooms"
	CreatePrivate    Permission = "create_private_rooms"
	EditRooms        Permission = "edit_rooms"
	ArchiveRooms     Permission = "archive_rooms"
	DeleteRooms      Permission = "delete_rooms"
	PinMessages      Permission = "pin_messages"
	LockThreads      Permission = "lock_threads"
	ManageMessages   Permission = "manage_messages"
	ViewMembers      Permission = "view_members"
	InviteMembers    Permission = "invite_members"
	KickMembers      Permission = "kick_members"
	MuteMembers      Permission = "mute_members"
	BanMembers       Permission = "ban_members"
	AssignRoles      Permission = "assign_roles"
	ManageMembers    Permission = "manage_members"
	SpawnBots        Permission = "spawn_bots"
	RegisterBots     Permission = "register_bots"
	ManageBots       Permission = "manage_bots"
	DelegateCaps     Permission = "delegate_capabilities"
	A2ATasks         Permission = "a2a_tasks"
	PromoteSubAgents Permission = "promote_sub_agents"
	ManageRoles      Permission = "manage_roles"
	ManageSettings   Permission = "manage_settings"
	ManageProviders  Permission = "manage_model_providers"
	ViewAuditLog     Permission = "view_audit_log"
	ManageMesh       Permission = "manage_mesh"
)

// Info describes a permission.
type Info struct {
	Key         Permission `json:"key"`
	Category    Category   `json:"category"`
	Description string     `json:"description"`
}

// All lists the 34 permissions in their categories' order.
var All = []Info{
	{ViewRooms, General, "See public rooms and their messages"},
	{JoinRooms, General, "Join rooms"},
	{SendMessages, General, "Send messages in rooms one is a member of"},
	{SendWhispers, General, "Send whispers seen only by one other participant"},
	{AddReactions, General, "React to messages"},
	{UploadFiles, General, "Upload files and attach them to messages"},
	{UseModelProxy, General, "Use the mesh's model proxy"},
	{PostFeedEvents, General, "Post feed events"},
	{CreateRooms, Channels, "Create public rooms"},
	{CreatePrivate, Channels, "Create private rooms"},
	{EditRooms, Channels, "Rename rooms and change their topic"},
	{ArchiveRooms, Channels, "Archive and unarchive rooms"},
	{DeleteRooms, Channels, "Delete rooms"},
	{PinMessages, Channels, "Pin and unpin messages"},
	{LockThreads, Channels, "Lock and unlock threads"},
	{ManageMessages, Channels, "Edit and delete others' messages"},
	{ViewMembers, Members, "See the mesh's members"},
	{InviteMembers, Members, "Invite members to the mesh and to private rooms"},
	{KickMembers, Members, "Remove participants from rooms"},
	{MuteMembers, Members, "Mute participants in rooms"},
	{BanMembers, Members, "Ban participants from the mesh"},
	{AssignRoles, Members, "Change participants' roles"},
	{ManageMembers, Members, "Deactivate members and see their emails"},
	{SpawnBots, Bots, "Start bots"},
	{RegisterBots, Bots, "Register external bots"},
	{ManageBots, Bots, "Manage any bot"},
	{DelegateCaps, Bots, "Delegate capabilities to one's bots"},
	{A2ATasks, Bots, "Send agent-to-agent tasks"},
	{PromoteSubAgents, Bots, "Delegate onward to sub-agents"},
	{ManageRoles, Administration, "Create, edit and delete roles"},
	{ManageSettings, Administration, "Change the mesh's settings"},
	{ManageProviders, Administration, "Configure model providers"},
	{ViewAuditLog, Administration, "Read the audit log"},
	{ManageMesh, Administration, "The mesh itself: make owners"},
}

// Known reports whether p is one of the 34 permissions.
func Known(p Permission) bool {
	for _, i := range All {
		if i.Key == p {
			return true
		}
	}
	return false
}

// Set is a set of permissions.
type Set map[Permission]struct{}

// NewSet makes a set of ps.
func NewSet(ps ...Permission) Set {
	s := make(Set, len(ps))
	for _, p := range ps {
		s[p] = struct{}{}
	}
	return s
}

// Has reports whether p is in s.
func (s Set) Has(p Permission) bool { _, ok := s[p]; return ok }

// Sorted lists s in the order of All.
func (s Set) Sorted() []Permission {
	out := make([]Permission, 0, len(s))
	for _, i := range All {
		if s.Has(i.Key) {
			out = append(out, i.Key)
		}
	}
	return out
}

// Role is a named set of permissions with a priority: acting on another participant needs a
// strictly higher priority than theirs.
type Role struct {
	Name        string       `json:"name"`
	Priority    int          `json:"priority"`
	Permissions []Permission `json:"permissions"`
	BuiltIn     bool         `json:"builtIn"`
}

// Set is the role's permissions as a set.
func (r Role) Set() Set { return NewSet(r.Permissions...) }

func category(c Category, except ...Permission) []Permission {
	ex := NewSet(except...)
	var out []Permission
	for _, i := range All {
		if i.Category == c && !ex.Has(i.Key) {
			out = append(out, i.Key)
		}
	}
	return out
}

func join(lists ...[]Permission) []Permission {
	var out []Permission
	for _, l := range lists {
		out = append(out, l...)
	}
	return NewSet(out...).Sorted()
}

// Builtins are the seven built-in roles, highest priority first.
func Builtins() []Role {
	all := make([]Permission, 0, len(All))
	for _, i := range All {
		all = append(all, i.Key)
	}
	roles := []Role{
		{Name: "owner", Priority: 999, Permissions: all},
		{Name: "admin", Priority: 900, Permissions: join(all[:len(all)-1])},
		{Name: "moderator", Priority: 700, Permissions: join(
			category(General), category(Channels, DeleteRooms),
			[]Permission{ViewMembers, InviteMembers, KickMembers, MuteMembers, BanMembers},
			[]Permission{SpawnBots, RegisterBots, DelegateCaps}, []Permission{ViewAuditLog})},
		{Name: "super_agent", Priority: 600, Permissions: join(
			category(General), []Permission{LockThreads, ViewMembers},
			[]Permission{SpawnBots, DelegateCaps, A2ATasks, PromoteSubAgents})},
		{Name: "member", Priority: 400, Permissions: join(
			category(General, PostFeedEvents), []Permission{CreateRooms, CreatePrivate},
			[]Permission{ViewMembers, InviteMembers}, []Permission{SpawnBots, RegisterBots, DelegateCaps})},
		{Name: "agent", Priority: 300, Permissions: join(category(General), []Permission{LockThreads, ViewMembers})},
		{Name: "spectator", Priority: 50, Permissions: join([]Permission{ViewRooms, JoinRooms})},
	}
	for i := range roles {
		roles[i].BuiltIn = true
	}
	return roles
}

var builtinByName = func() map[string]Role {
	m := map[string]Role{}
	for _, r := range Builtins() {
		m[r.Name] = r
	}
	return m
}()

// Builtin returns the built-in role of that name.
func Builtin(name string) (Role, bool) {
	r, ok := builtinByName[name]
	return r, ok
}

// Resolver finds a role by name (built-in or custom).
type Resolver interface {
	Role(name string) (Role, bool)
}

// BuiltinResolver resolves built-in roles only.
type BuiltinResolver struct{}

func (BuiltinResolver) Role(name string) (Role, bool) { return Builtin(name) }

// Allowed reports whether the role named role holds p (an unknown role holds nothing).
func Allowed(res Resolver, role string, p Permission) bool {
	r, ok := res.Role(role)
	if !ok {
		return false
	}
	for _, q := range r.Permissions {
		if q == p {
			return true
		}
	}
	return false
}

// Outranks reports whether a participant of role actor may act on one of role target: its
// priority must be strictly higher.
func Outranks(res Resolver, actor, target string) bool {
	a, ok := res.Role(actor)
	if !ok {
		return false
	}
	t, ok := res.Role(target)
	if !ok {
		return true // a role that no longer exists ranks lowest
	}
	return a.Priority > t.Priority
}

// SortByPriority sorts roles highest priority first, then by name.
func SortByPriority(rs []Role) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Priority != rs[j].Priority {
			return rs[i].Priority > rs[j].Priority
		}
		return rs[i].Name < rs[j].Name
	})
}
