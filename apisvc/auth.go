package apisvc

import (
	"context"
	"strings"
	"time"

	"github.com/themesh/mesh/pkg/auth"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/rbac"
	"github.com/themesh/mesh/pkg/store"
)

// Settings keys.
const (
	settingMeshName         = "mesh_name"
	settingRegistrationOpen = "registration_open"
	settingDefaultRole      = "default_role"
)

type credentials struct {
	InviteCode  string `json:"inviteCode"`
	MeshName    string `json:"meshName"`
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName"`
}

type session struct {
	Token       string           `json:"token"`
	Participant mesh.Participant `json:"participant"`
}

func (s *Service) setupGet(ctx context.Context, c *call) (any, error) {
	n, err := s.store.CountParticipants(ctx)
	if err != nil {
		return nil, err
	}
	name, err := s.meshName(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{"needsSetup": n == 0, "meshName": name}, nil
}

func (s *Service) meshName(ctx context.Context) (string, error) {
	name, ok, err := s.store.Setting(ctx, settingMeshName)
	if err != nil || !ok {
		return s.cfg.DefaultMeshName, err
	}
	return name, nil
}

func (s *Service) setupCreate(ctx context.Context, c *call) (any, error) {
	var in credentials
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	meshName, err := text("meshName", in.MeshName, true, 80)
	if err != nil {
		return nil, err
	}
	acc, err := s.newAccount(in)
	if err != nil {
		return nil, err
	}
	if n, err := s.store.CountParticipants(ctx); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, mesh.Errorf(mesh.CodeConflict, "this mesh is already set up")
	}
	acc.Role = mesh.RoleOwner
	acc, err = s.store.CreateParticipant(ctx, acc, store.OnlyFirst)
	if err != nil {
		if mesh.IsCode(err, mesh.CodeConflict) {
			return nil, mesh.Errorf(mesh.CodeConflict, "this mesh is already set up")
		}
		return nil, err
	}
	if err := s.store.SetSetting(ctx, settingMeshName, meshName); err != nil {
		return nil, err
	}
	return s.issue(acc, c.now)
}

// newAccount validates registration fields and hashes the password.
func (s *Service) newAccount(in credentials) (store.Account, error) {
	email, err := validEmail(in.Email)
	if err != nil {
		return store.Account{}, err
	}
	if err := validPassword("password", in.Password); err != nil {
		return store.Account{}, err
	}
	name, err := text("displayName", in.DisplayName, true, mesh.MaxDisplayNameRunes)
	if err != nil {
		return store.Account{}, err
	}
	hash, err := auth.HashPassword(in.Password, s.cfg.BcryptCost)
	if err != nil {
		return store.Account{}, err
	}
	return store.Account{
		Participant: mesh.Participant{
			ID:          newID(),
			DisplayName: name,
			Email:       email,
			Status:      mesh.StatusOffline,
			CreatedAt:   mesh.Now(),
		},
		PasswordHash: hash,
	}, nil
}

// validPassword checks a new password's length: bcrypt reads at most mesh.MaxPasswordBytes.
func validPassword(field, p string) error {
	if len([]rune(p)) < mesh.MinPasswordLength {
		return mesh.Errorf(mesh.CodeBadRequest, "%s must be at least %d characters", field, mesh.MinPasswordLength)
	}
	if len(p) > mesh.MaxPasswordBytes {
		return mesh.Errorf(mesh.CodeBadRequest, "%s must be at most %d bytes", field, mesh.MaxPasswordBytes)
	}
	return nil
}

// validEmail lower-cases and checks an email address (a local part, an @, a domain with a dot).
func validEmail(e string) (string, error) {
	e = strings.ToLower(strings.TrimSpace(e))
	at := strings.LastIndexByte(e, '@')
	if len(e) > 254 || at < 1 || at == len(e)-1 || !strings.Contains(e[at:], ".") ||
		strings.ContainsAny(e, " \t\r\n<>,;\"") || strings.HasSuffix(e, ".") {
		return "", mesh.Errorf(mesh.CodeBadRequest, "email is not a valid address")
	}
	return e, nil
}

func (s *Service) register(ctx context.Context, c *call) (any, error) {
	if ok, retry := s.take(ctx, limitRegistrations, c.req.Addr, s.cfg.RegistrationsPerMinute, c.now); !ok {
		return nil, rateLimited(retry, "registrations from your address")
	}
	var in credentials
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	acc, err := s.newAccount(in)
	if err != nil {
		return nil, err
	}
	if open, ok, err := s.store.Setting(ctx, settingRegistrationOpen); err != nil {
		return nil, err
	} else if ok && open == "false" {
		// The first participant can always register: a mesh must be able to get an owner.
		if n, err := s.store.CountParticipants(ctx); err != nil {
			return nil, err
		} else if n > 0 {
			if in.InviteCode == "" {
				return nil, mesh.Errorf(mesh.CodeRegistrationClosed, "registration is closed on this mesh: an invite code is needed")
			}
			if _, err := s.store.UseInvite(ctx, in.InviteCode, c.now); err != nil {
				if mesh.IsCode(err, mesh.CodeNotFound) {
					return nil, mesh.Errorf(mesh.CodeRegistrationClosed, "that invite code is not valid (unknown, expired or used up)")
				}
				return nil, err
			}
		}
	}
	acc.ID = c.entityID()
	if c.redelivered {
		// The first run may have registered it before its worker died: answer as it would have.
		if prev, err := s.store.ParticipantByID(ctx, acc.ID); err == nil && prev.Email == acc.Email {
			return s.issue(prev, c.now)
		}
	}
	acc.Role = mesh.RoleMember
	if r, ok, err := s.store.Setting(ctx, settingDefaultRole); err != nil {
		return nil, err
	} else if ok && r != mesh.RoleOwner {
		if _, known := s.resolver(ctx).Role(r); known {
			acc.Role = r
		}
	}
	acc, err = s.store.CreateParticipant(ctx, acc, store.FirstBecomesOwner)
	if err != nil {
		if mesh.IsCode(err, mesh.CodeConflict) {
			return nil, mesh.Errorf(mesh.CodeConflict, "that email is already registered")
		}
		return nil, err
	}
	return s.issue(acc, c.now)
}

func (s *Service) issue(acc store.Account, now time.Time) (session, error) {
	tok, _, err := s.tokens.Issue(acc.ID, acc.TokenGen, now)
	if err != nil {
		return session{}, err
	}
	return session{Token: tok, Participant: s.view(acc, true)}, nil
}

// view is how acc appears to a caller: its email only if self (or, later, manage_members),
// its status from the world's presence.
func (s *Service) view(acc store.Account, withEmail bool) mesh.Participant {
	p := acc.Participant
	p.Status = s.online.status(p.ID)
	if !withEmail {
		p.Email = ""
	}
	return p
}

func (s *Service) login(ctx context.Context, c *call) (any, error) {
	var in credentials
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if email == "" || in.Password == "" {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "email and password are required")
	}
	if over, retry := s.over(ctx, limitFailedLogins, email, s.cfg.FailedLoginsPerMinute, c.now); over {
		return nil, rateLimited(retry, "failed logins for this account")
	}
	acc, err := s.store.ParticipantByEmail(ctx, email)
	if err != nil && !mesh.IsCode(err, mesh.CodeNotFound) {
		return nil, err
	}
	ok := false
	if err == nil && len(acc.PasswordHash) > 0 {
		ok = auth.CheckPassword(acc.PasswordHash, in.Password)
	} else {
		auth.CheckNoAccount(in.Password, s.cfg.BcryptCost)
	}
	if !ok {
		s.take(ctx, limitFailedLogins, email, s.cfg.FailedLoginsPerMinute, c.now)
		return nil, mesh.Errorf(mesh.CodeInvalidCredentials, "wrong email or password")
	}
	if acc.Banned {
		return nil, mesh.Errorf(mesh.CodeBanned, "you are banned from this mesh")
	}
	if acc.Deactivated {
		return nil, mesh.Errorf(mesh.CodeInvalidCredentials, "wrong email or password")
	}
	return s.issue(acc, c.now)
}

func (s *Service) me(ctx context.Context, c *call) (any, error) {
	return s.view(*c.actor, true), nil
}

func (s *Service) logout(ctx context.Context, c *call) (any, error) {
	a := c.cmd.Actor
	exp := time.Unix(a.TokenExp, 0)
	if a.TokenExp == 0 {
		exp = c.now.Add(s.cfg.TokenTTL)
	}
	if err := s.store.RevokeToken(ctx, a.TokenID, a.ID, exp); err != nil {
		return nil, err
	}
	s.publish(ctx, mesh.ParticipantSubject(a.ID), mesh.Event{
		Type:  "logout",
		Close: &mesh.CloseSpec{TokenID: a.TokenID, Code: CloseTokenRevoked, Reason: "logged out"},
	}, map[string]string{"type": "logout"})
	return nil, nil
}

// CloseTokenRevoked is the WebSocket close code for a socket whose token was revoked.
const CloseTokenRevoked = 4001

func (s *Service) participantGet(ctx context.Context, c *call) (any, error) {
	id, err := param(c, "participantId")
	if err != nil {
		return nil, err
	}
	acc, err := s.store.ParticipantByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.view(acc, acc.ID == c.actor.ID || s.allowed(ctx, c.actor, rbac.ManageMembers)), nil
}

// sessionOpen authenticates a WebSocket and gathers what its snapshot needs from the store.
func (s *Service) sessionOpen(ctx context.Context, c *call) (any, error) {
	ids, err := s.store.RoomsOf(ctx, c.actor.ID)
	if err != nil {
		return nil, err
	}
	res := mesh.SessionOpenResult{Participant: s.view(*c.actor, true), Rooms: []mesh.SnapshotRoom{}}
	seen := map[string]bool{c.actor.ID: true}
	var others, readIDs []string
	for _, id := range ids {
		room, err := s.store.Room(ctx, id)
		if err != nil {
			if mesh.IsCode(err, mesh.CodeNotFound) {
				continue
			}
			return nil, err
		}
		members, err := s.store.Members(ctx, id)
		if err != nil {
			return nil, err
		}
		last, err := s.store.LastSeq(ctx, id)
		if err != nil {
			return nil, err
		}
		res.Rooms = append(res.Rooms, mesh.SnapshotRoom{Room: room, Members: members, LastSeq: last})
		readIDs = append(readIDs, id)
		for _, m := range members {
			if !seen[m] {
				seen[m] = true
				others = append(others, m)
			}
		}
	}
	marks, err := s.store.ReadMarks(ctx, c.actor.ID, readIDs)
	if err != nil {
		return nil, err
	}
	for i := range res.Rooms {
		res.Rooms[i].LastRead = marks[res.Rooms[i].ID]
	}
	accs, err := s.store.ParticipantsByIDs(ctx, others)
	if err != nil {
		return nil, err
	}
	res.Participants = append(res.Participants, res.Participant)
	for _, a := range accs {
		res.Participants = append(res.Participants, s.view(a, false))
	}
	return res, nil
}

// meUpdate changes the caller's own profile: its display name.
func (s *Service) meUpdate(ctx context.Context, c *call) (any, error) {
	var in struct {
		DisplayName *string `json:"displayName"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.DisplayName == nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "displayName is required")
	}
	name, err := text("displayName", *in.DisplayName, true, mesh.MaxDisplayNameRunes)
	if err != nil {
		return nil, err
	}
	acc, err := s.store.UpdateParticipant(ctx, c.actor.ID, store.ParticipantUpdate{DisplayName: &name})
	if err != nil {
		return nil, err
	}
	s.participantUpdated(ctx, acc)
	return s.view(acc, true), nil
}

// participantUpdated tells whoever shares a room with acc (once per socket, through the
// presence subject every gateway follows), and acc's own sockets, how it now appears.
func (s *Service) participantUpdated(ctx context.Context, acc store.Account) {
	rooms, err := s.store.RoomsOf(ctx, acc.ID)
	if err != nil {
		s.log.Warn("participant update not announced", "participant", acc.ID, "err", err)
		return
	}
	s.participantUpdatedIn(ctx, acc, rooms)
}

// participantUpdatedIn is participantUpdated for the sockets of the given rooms.
func (s *Service) participantUpdatedIn(ctx context.Context, acc store.Account, rooms []string) {
	frame := map[string]any{"type": "participant_updated", "participant": s.view(acc, false)}
	s.publish(ctx, mesh.SubjectPresence, mesh.Event{Type: "participant_updated", Rooms: rooms}, frame)
	if len(rooms) == 0 {
		s.publish(ctx, mesh.ParticipantSubject(acc.ID), mesh.Event{Type: "participant_updated"}, frame)
	}
}

// passwordChange replaces the caller's password, given its current one, and signs it out
// everywhere else: every token issued before is refused from now on, and its open sockets
// close (4001). It answers with a new session.
func (s *Service) passwordChange(ctx context.Context, c *call) (any, error) {
	var in struct {
		CurrentPassword string `json:"currentPassword"`
		NewPassword     string `json:"newPassword"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if err := validPassword("newPassword", in.NewPassword); err != nil {
		return nil, err
	}
	if err := s.checkOwnPassword(ctx, c, in.CurrentPassword); err != nil {
		return nil, err
	}
	hash, err := auth.HashPassword(in.NewPassword, s.cfg.BcryptCost)
	if err != nil {
		return nil, err
	}
	gen := c.actor.TokenGen + 1
	acc, err := s.store.UpdateParticipant(ctx, c.actor.ID, store.ParticipantUpdate{PasswordHash: &hash, TokenGen: &gen})
	if err != nil {
		return nil, err
	}
	s.closeSessions(ctx, acc.ID, "password changed")
	return s.issue(acc, c.now)
}

// logoutEverywhere refuses every token the caller holds (this one included) and closes its
// sockets.
func (s *Service) logoutEverywhere(ctx context.Context, c *call) (any, error) {
	gen := c.actor.TokenGen + 1
	if _, err := s.store.UpdateParticipant(ctx, c.actor.ID, store.ParticipantUpdate{TokenGen: &gen}); err != nil {
		return nil, err
	}
	s.closeSessions(ctx, c.actor.ID, "signed out everywhere")
	return nil, nil
}

// closeSessions closes every open socket of a participant, on every gateway.
func (s *Service) closeSessions(ctx context.Context, id, reason string) {
	s.publish(ctx, mesh.ParticipantSubject(id), mesh.Event{
		Type:  "logout",
		Close: &mesh.CloseSpec{Code: CloseTokenRevoked, Reason: reason},
	}, map[string]string{"type": "logout"})
}

// DeletedName is what a deleted account is called from then on.
const DeletedName = "Deleted participant"

// meDelete deletes the caller's own account, given its password: the account keeps its id
// (its messages stay in the history, under DeletedName) but loses its email (which may then
// register again), its password and its rooms; it is deactivated, and every session ends.
// The last owner cannot go: another owner comes first.
func (s *Service) meDelete(ctx context.Context, c *call) (any, error) {
	var in struct {
		Password string `json:"password"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if err := s.checkOwnPassword(ctx, c, in.Password); err != nil {
		return nil, err
	}
	if c.actor.Role == mesh.RoleOwner {
		n, err := s.store.CountByRole(ctx, mesh.RoleOwner)
		if err != nil {
			return nil, err
		}
		if n <= 1 {
			return nil, mesh.Errorf(mesh.CodeConflict, "a mesh always keeps at least one owner: make another owner first")
		}
	}
	rooms, err := s.store.RoomsOf(ctx, c.actor.ID)
	if err != nil {
		return nil, err
	}
	for _, r := range rooms {
		removed, err := s.store.RemoveMember(ctx, r, c.actor.ID)
		if err != nil {
			return nil, err
		}
		if removed {
			s.left(ctx, r, c.actor.ID, false)
		}
	}
	none, name, noHash, yes, gen := "", DeletedName, []byte{}, true, c.actor.TokenGen+1
	acc, err := s.store.UpdateParticipant(ctx, c.actor.ID, store.ParticipantUpdate{
		Email: &none, DisplayName: &name, PasswordHash: &noHash, Deactivated: &yes, TokenGen: &gen,
	})
	if err != nil {
		return nil, err
	}
	s.participantUpdatedIn(ctx, acc, rooms)
	s.closeSessions(ctx, acc.ID, "account deleted")
	return nil, nil
}

// refresh gives the caller a new token of full lifetime (and the current generation). The
// token it came with stays valid until it expires: its sockets go on.
func (s *Service) refresh(ctx context.Context, c *call) (any, error) {
	return s.issue(*c.actor, c.now)
}

// checkOwnPassword checks the actor's password before a change to its own account. Wrong
// guesses count as failed logins of the account, and are refused past their limit.
func (s *Service) checkOwnPassword(ctx context.Context, c *call, password string) error {
	if over, retry := s.over(ctx, limitFailedLogins, c.actor.Email, s.cfg.FailedLoginsPerMinute, c.now); over {
		return rateLimited(retry, "failed password checks for this account")
	}
	if len(c.actor.PasswordHash) == 0 || !auth.CheckPassword(c.actor.PasswordHash, password) {
		s.take(ctx, limitFailedLogins, c.actor.Email, s.cfg.FailedLoginsPerMinute, c.now)
		return mesh.Errorf(mesh.CodeInvalidCredentials, "the password is wrong")
	}
	return nil
}
