package apisvc

import (
	"context"
	"regexp"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/rbac"
	"github.com/themesh/mesh/pkg/store"
)

var roleName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,39}$`)

type roleInput struct {
	Name        *string   `json:"name"`
	Priority    *int      `json:"priority"`
	Permissions *[]string `json:"permissions"`
}

// rolesList answers every role, highest priority first: the built-in ones and the mesh's own.
func (s *Service) rolesList(ctx context.Context, c *call) (any, error) {
	roles := rbac.Builtins()
	custom, err := s.store.ListRoles(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range custom {
		roles = append(roles, customRole(r))
	}
	rbac.SortByPriority(roles)
	for i := range roles {
		if roles[i].Permissions == nil {
			roles[i].Permissions = []rbac.Permission{}
		}
	}
	return map[string]any{"items": roles}, nil
}

func (s *Service) permissionsList(ctx context.Context, c *call) (any, error) {
	return map[string]any{"items": rbac.All}, nil
}

// priorityOf is the actor's role's priority (0 for an unknown role).
func (s *Service) priorityOf(ctx context.Context, role string) int {
	r, ok := s.resolver(ctx).Role(role)
	if !ok {
		return 0
	}
	return r.Priority
}

// checkPermissions validates a role's permissions: known ones, each held by the actor (no one
// hands out what they do not have).
func (s *Service) checkPermissions(ctx context.Context, c *call, ps []string) ([]string, error) {
	seen := map[string]bool{}
	out := []string{}
	for _, p := range ps {
		if !rbac.Known(rbac.Permission(p)) {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "unknown permission %q", p)
		}
		if !s.allowed(ctx, c.actor, rbac.Permission(p)) {
			return nil, mesh.Errorf(mesh.CodeForbidden, "you cannot grant %s: your role does not hold it", p)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// checkPriority: a role's priority is at least 1 and below the actor's.
func (s *Service) checkPriority(ctx context.Context, c *call, p int) error {
	mine := s.priorityOf(ctx, c.actor.Role)
	if p < 1 || p >= mine {
		return mesh.Errorf(mesh.CodeForbidden, "a role's priority must be between 1 and %d (below yours)", mine-1).
			WithDetails(map[string]any{"max": mine - 1})
	}
	return nil
}

func (s *Service) rolesCreate(ctx context.Context, c *call) (any, error) {
	var in roleInput
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.Name == nil || !roleName.MatchString(*in.Name) {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "name must be 1 to 40 lower-case letters, digits, - or _, starting with a letter")
	}
	if _, builtin := rbac.Builtin(*in.Name); builtin {
		return nil, mesh.Errorf(mesh.CodeConflict, "%s is a built-in role", *in.Name)
	}
	if in.Priority == nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "priority is required")
	}
	if err := s.checkPriority(ctx, c, *in.Priority); err != nil {
		return nil, err
	}
	var ps []string
	if in.Permissions != nil {
		var err error
		if ps, err = s.checkPermissions(ctx, c, *in.Permissions); err != nil {
			return nil, err
		}
	}
	r, err := s.store.CreateRole(ctx, store.Role{Name: *in.Name, Priority: *in.Priority, Permissions: ps, CreatedBy: c.actor.ID, CreatedAt: c.now})
	if err != nil {
		if mesh.IsCode(err, mesh.CodeConflict) {
			return nil, mesh.Errorf(mesh.CodeConflict, "a role named %s exists", *in.Name)
		}
		return nil, err
	}
	return customRole(r), nil
}

// editableRole loads a custom role the actor may change: not built-in, below the actor.
func (s *Service) editableRole(ctx context.Context, c *call) (store.Role, error) {
	name, err := param(c, "name")
	if err != nil {
		return store.Role{}, err
	}
	if _, builtin := rbac.Builtin(name); builtin {
		return store.Role{}, mesh.Errorf(mesh.CodeForbidden, "built-in roles cannot be changed or deleted")
	}
	r, err := s.store.RoleByName(ctx, name)
	if err != nil {
		return store.Role{}, err
	}
	if r.Priority >= s.priorityOf(ctx, c.actor.Role) {
		return store.Role{}, mesh.Errorf(mesh.CodeForbidden, "you need a higher role than %s", name)
	}
	return r, nil
}

func (s *Service) rolesUpdate(ctx context.Context, c *call) (any, error) {
	var in roleInput
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	r, err := s.editableRole(ctx, c)
	if err != nil {
		return nil, err
	}
	if in.Name != nil && *in.Name != r.Name {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "a role cannot be renamed")
	}
	var u store.RoleUpdate
	if in.Priority != nil {
		if err := s.checkPriority(ctx, c, *in.Priority); err != nil {
			return nil, err
		}
		u.Priority = in.Priority
	}
	if in.Permissions != nil {
		ps, err := s.checkPermissions(ctx, c, *in.Permissions)
		if err != nil {
			return nil, err
		}
		u.Permissions = &ps
	}
	r, err = s.store.UpdateRole(ctx, r.Name, u)
	if err != nil {
		return nil, err
	}
	return customRole(r), nil
}

func (s *Service) rolesDelete(ctx context.Context, c *call) (any, error) {
	r, err := s.editableRole(ctx, c)
	if err != nil {
		return nil, err
	}
	n, err := s.store.CountByRole(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, mesh.Errorf(mesh.CodeConflict, "%d participants hold %s: give them another role first", n, r.Name).
			WithDetails(map[string]any{"participants": n})
	}
	return nil, s.store.DeleteRole(ctx, r.Name)
}

// assignRole changes a participant's role. The actor must outrank the participant (or be the
// participant, stepping down), and may give only roles below its own (owners may make other
// owners). There is always at least one owner. The change takes effect at once: every command
// reads the role from the store, and the participant's sockets are told.
func (s *Service) assignRole(ctx context.Context, c *call) (any, error) {
	id, err := param(c, "participantId")
	if err != nil {
		return nil, err
	}
	var in struct {
		Role string `json:"role"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	newRole, ok := s.resolver(ctx).Role(in.Role)
	if !ok {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "no role named %q", in.Role)
	}
	t, err := s.store.ParticipantByID(ctx, id)
	if err != nil {
		return nil, err
	}
	mine := s.priorityOf(ctx, c.actor.Role)
	self := t.ID == c.actor.ID
	switch {
	case self && newRole.Priority > mine:
		return nil, mesh.Errorf(mesh.CodeForbidden, "you cannot raise your own role")
	case !self && !rbac.Outranks(s.resolver(ctx), c.actor.Role, t.Role):
		return nil, mesh.Errorf(mesh.CodeForbidden, "you need a higher role than %s's", t.DisplayName)
	case newRole.Name == mesh.RoleOwner && !s.allowed(ctx, c.actor, rbac.ManageMesh):
		return nil, mesh.Errorf(mesh.CodeForbidden, "making an owner needs manage_mesh")
	case newRole.Priority >= mine && newRole.Name != mesh.RoleOwner:
		return nil, mesh.Errorf(mesh.CodeForbidden, "you can give only roles below your own")
	}
	if t.Role == mesh.RoleOwner && newRole.Name != mesh.RoleOwner {
		n, err := s.store.CountByRole(ctx, mesh.RoleOwner)
		if err != nil {
			return nil, err
		}
		if n <= 1 {
			return nil, mesh.Errorf(mesh.CodeConflict, "a mesh always keeps at least one owner")
		}
	}
	name := newRole.Name
	acc, err := s.store.UpdateParticipant(ctx, t.ID, store.ParticipantUpdate{Role: &name})
	if err != nil {
		return nil, err
	}
	p := s.view(acc, self || s.allowed(ctx, c.actor, rbac.ManageMembers))
	s.participantUpdated(ctx, acc)
	s.publish(ctx, mesh.ParticipantSubject(t.ID), mesh.Event{Type: "role_changed", Role: name},
		map[string]any{"type": "role_changed", "participantId": t.ID, "role": name})
	return p, nil
}
