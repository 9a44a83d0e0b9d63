package apisvc

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
)

// Setting keys of the mesh's limits.
const (
	settingMaxFileBytes    = "max_file_bytes"
	settingMaxMessageBytes = "max_message_bytes"
)

// settings is the mesh's settings as clients see them.
type settings struct {
	MeshName         string `json:"meshName"`
	RegistrationOpen bool   `json:"registrationOpen"`
	DefaultRole      string `json:"defaultRole"`
	limitSettings
}

// limitSettings are the limits an owner may lower below the server's own (its configuration).
type limitSettings struct {
	// MaxFileBytes bounds an uploaded file.
	MaxFileBytes int64 `json:"maxFileBytes"`
	// MaxMessageBytes bounds a message's content.
	MaxMessageBytes int `json:"maxMessageBytes"`
}

// limitsTTL is how long a worker keeps the limits it read: a change made through another
// worker applies within it (through this one, at once).
const limitsTTL = 2 * time.Second

type limitsCache struct {
	mu sync.Mutex
	at time.Time
	v  limitSettings
}

// meshLimits returns the mesh's limits, from the store at most every limitsTTL.
func (s *Service) meshLimits(ctx context.Context) (limitSettings, error) {
	s.limitsCache.mu.Lock()
	defer s.limitsCache.mu.Unlock()
	if now := time.Now(); !s.limitsCache.at.IsZero() && now.Sub(s.limitsCache.at) < limitsTTL {
		return s.limitsCache.v, nil
	}
	v := limitSettings{MaxFileBytes: s.cfg.MaxFileBytes, MaxMessageBytes: s.cfg.MaxContentBytes}
	if raw, ok, err := s.store.Setting(ctx, settingMaxFileBytes); err != nil {
		return limitSettings{}, err
	} else if n, perr := strconv.ParseInt(raw, 10, 64); ok && perr == nil && n > 0 && n < v.MaxFileBytes {
		v.MaxFileBytes = n
	}
	if raw, ok, err := s.store.Setting(ctx, settingMaxMessageBytes); err != nil {
		return limitSettings{}, err
	} else if n, perr := strconv.Atoi(raw); ok && perr == nil && n > 0 && n < v.MaxMessageBytes {
		v.MaxMessageBytes = n
	}
	s.limitsCache.v, s.limitsCache.at = v, time.Now()
	return v, nil
}

func (s *Service) forgetLimits() {
	s.limitsCache.mu.Lock()
	s.limitsCache.at = time.Time{}
	s.limitsCache.mu.Unlock()
}

func (s *Service) currentSettings(ctx context.Context) (settings, error) {
	out := settings{RegistrationOpen: true, DefaultRole: mesh.RoleMember}
	var err error
	if out.MeshName, err = s.meshName(ctx); err != nil {
		return settings{}, err
	}
	if out.limitSettings, err = s.meshLimits(ctx); err != nil {
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
		MaxFileBytes     *int64  `json:"maxFileBytes"`
		MaxMessageBytes  *int64  `json:"maxMessageBytes"`
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
	limit := func(field, key string, v *int64, max int64) error {
		if v == nil {
			return nil
		}
		if *v < 1 || *v > max {
			return mesh.Errorf(mesh.CodeBadRequest, "%s must be 1 to %d (the server's own limit)", field, max).
				WithDetails(map[string]any{"max": max})
		}
		writes[key] = strconv.FormatInt(*v, 10)
		return nil
	}
	if err := limit("maxFileBytes", settingMaxFileBytes, in.MaxFileBytes, s.cfg.MaxFileBytes); err != nil {
		return nil, err
	}
	if err := limit("maxMessageBytes", settingMaxMessageBytes, in.MaxMessageBytes, int64(s.cfg.MaxContentBytes)); err != nil {
		return nil, err
	}
	for k, v := range writes {
		if err := s.store.SetSetting(ctx, k, v); err != nil {
			return nil, err
		}
	}
	s.forgetLimits()
	if err := s.bus.Publish(ctx, mesh.SubjectSettings, []byte("{}")); err != nil {
		s.log.Warn("settings change not announced; other workers see it within seconds", "err", err)
	}
	return s.currentSettings(ctx)
}
