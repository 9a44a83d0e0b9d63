package apisvc

import (
	"context"
	"strconv"

	"github.com/themesh/mesh/pkg/mesh"
)

// settings is the mesh's settings as clients see them.
type settings struct {
	MeshName         string `json:"meshName"`
	RegistrationOpen bool   `json:"registrationOpen"`
	DefaultRole      string `json:"defaultRole"`
}

func (s *Service) currentSettings(ctx context.Context) (settings, error) {
	out := settings{RegistrationOpen: true, DefaultRole: mesh.RoleMember}
	var err error
	if out.MeshName, err = s.meshName(ctx); err != nil {
		return settings{}, err
	}
	if v, ok, err := s.store.Setting(ctx, settingRegistrationOpen); err != nil {
		return settings{}, err
	} else if ok {
		out.RegistrationOpen = v != "false"
	}
	if v, ok, err := s.store.Setting(ctx, settingDefaultRole); err != nil {
		return settings{}, err
	} else if ok {
		out.DefaultRole = v
	}
	return out, nil
}

func (s *Service) settingsGet(ctx context.Context, c *call) (any, error) {
	return s.currentSettings(ctx)
}

// settingsUpdate changes the settings given. The default role must exist, and be below the
// actor's (no one makes newcomers more powerful than themselves) and below owner.
func (s *Service) settingsUpdate(ctx context.Context, c *call) (any, error) {
	var in struct {
		MeshName         *string `json:"meshName"`
		RegistrationOpen *bool   `json:"registrationOpen"`
		DefaultRole      *string `json:"defaultRole"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	writes := map[string]string{}
	if in.MeshName != nil {
		name, err := text("meshName", *in.MeshName, true, 80)
		if err != nil {
			return nil, err
		}
		writes[settingMeshName] = name
	}
	if in.RegistrationOpen != nil {
		writes[settingRegistrationOpen] = strconv.FormatBool(*in.RegistrationOpen)
	}
	if in.DefaultRole != nil {
		r, ok := s.resolver(ctx).Role(*in.DefaultRole)
		if !ok {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "no role named %q", *in.DefaultRole)
		}
		if r.Name == mesh.RoleOwner || r.Priority >= s.priorityOf(ctx, c.actor.Role) {
			return nil, mesh.Errorf(mesh.CodeForbidden, "the default role must be below yours")
		}
		writes[settingDefaultRole] = r.Name
	}
	for k, v := range writes {
		if err := s.store.SetSetting(ctx, k, v); err != nil {
			return nil, err
		}
	}
	return s.currentSettings(ctx)
}
