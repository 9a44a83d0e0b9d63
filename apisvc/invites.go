package apisvc

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// Limits of invite codes.
const (
	maxInviteUses   = 1000
	defaultInviteTT = 7 * 24 * time.Hour
	maxInviteTTL    = 90 * 24 * time.Hour
)

type inviteView struct {
	Code      string     `json:"code"`
	CreatedBy string     `json:"createdBy"`
	CreatedAt mesh.Time  `json:"createdAt"`
	ExpiresAt *mesh.Time `json:"expiresAt"`
	MaxUses   int        `json:"maxUses"`
	Uses      int        `json:"uses"`
}

func viewInvite(i store.Invite) inviteView {
	v := inviteView{Code: i.Code, CreatedBy: i.CreatedBy, CreatedAt: mesh.TimeOf(i.CreatedAt), MaxUses: i.MaxUses, Uses: i.Uses}
	if !i.ExpiresAt.IsZero() {
		t := mesh.TimeOf(i.ExpiresAt)
		v.ExpiresAt = &t
	}
	return v
}

// newInviteCode is 20 random characters (100 bits).
func newInviteCode() (string, error) {
	b := make([]byte, 13)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:20], nil
}

func (s *Service) invitesCreate(ctx context.Context, c *call) (any, error) {
	var in struct {
		MaxUses          *int   `json:"maxUses"`
		ExpiresInSeconds *int64 `json:"expiresInSeconds"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	uses := 1
	if in.MaxUses != nil {
		if *in.MaxUses < 1 || *in.MaxUses > maxInviteUses {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "maxUses must be between 1 and %d", maxInviteUses)
		}
		uses = *in.MaxUses
	}
	ttl := defaultInviteTT
	if in.ExpiresInSeconds != nil {
		ttl = time.Duration(*in.ExpiresInSeconds) * time.Second
		if ttl < time.Minute || ttl > maxInviteTTL {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "expiresInSeconds must be between 60 and %d", int64(maxInviteTTL.Seconds()))
		}
	}
	code, err := newInviteCode()
	if err != nil {
		return nil, err
	}
	inv, err := s.store.CreateInvite(ctx, store.Invite{
		Code: code, CreatedBy: c.actor.ID, CreatedAt: c.now.Truncate(time.Millisecond),
		ExpiresAt: c.now.Add(ttl).Truncate(time.Millisecond), MaxUses: uses,
	})
	if err != nil {
		return nil, err
	}
	return viewInvite(inv), nil
}

func (s *Service) invitesList(ctx context.Context, c *call) (any, error) {
	invs, err := s.store.ListInvites(ctx)
	if err != nil {
		return nil, err
	}
	out := list[inviteView]{Items: []inviteView{}}
	for _, i := range invs {
		out.Items = append(out.Items, viewInvite(i))
	}
	return out, nil
}

func (s *Service) invitesDelete(ctx context.Context, c *call) (any, error) {
	code, err := param(c, "code")
	if err != nil {
		return nil, err
	}
	return nil, s.store.DeleteInvite(ctx, code)
}
