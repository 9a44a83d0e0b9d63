// Package apisvc is the mesh's domain service: setup, auth, participants, rooms and
// messages (seq assignment, threads, whispers, edits, reactions), kick and mute. It is a
// stateless worker of the mesh:cmd:api consumer group: run as many as needed. It meets other
// services only through the bus: commands in, replies and events out.
package apisvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/themesh/mesh/pkg/auth"
	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/limit"
	"github.com/themesh/mesh/pkg/limit/memlimit"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/rbac"
	"github.com/themesh/mesh/pkg/store"
)

// Config tunes the service. Zero values take the defaults named.
type Config struct {
	// JWTSecret signs tokens (required, at least 32 bytes).
	JWTSecret []byte
	// TokenTTL is how long a token lives (30 days).
	TokenTTL time.Duration
	// BcryptCost hashes passwords (bcrypt.DefaultCost; tests use bcrypt.MinCost).
	BcryptCost int
	// MaxContentBytes bounds a message's content (16 KiB).
	MaxContentBytes int
	// RegistrationsPerMinute per client address (120).
	RegistrationsPerMinute int
	// FailedLoginsPerMinute per account (20).
	FailedLoginsPerMinute int
	// UploadsPerMinute per participant (60).
	UploadsPerMinute int
	// OrphanGrace is how old bytes no file record points to must be before they are deleted
	// (1 h: far longer than an upload's two steps); OrphanSweepInterval is how often one
	// worker of the mesh looks for them (1 h).
	OrphanGrace         time.Duration
	OrphanSweepInterval time.Duration
	// MaxFileBytes bounds an uploaded file (mesh.DefaultMaxFileBytes); the mesh's settings may
	// lower it.
	MaxFileBytes int64
	// Concurrency is how many commands one worker handles at once (16).
	Concurrency int
	// ConsumerName names this worker in the consumer group (host name and pid).
	ConsumerName string
	// DefaultMeshName is the name of a mesh that was never set up ("The Mesh").
	DefaultMeshName string
	// ReclaimIdle is how long the commands of a worker that died stay pending before another
	// worker takes them over (2 s: well inside the gateways' request deadline, so the client
	// still gets its answer).
	ReclaimIdle time.Duration
}

func (c *Config) setDefaults() {
	if c.TokenTTL == 0 {
		c.TokenTTL = 30 * 24 * time.Hour
	}
	if c.MaxContentBytes == 0 {
		c.MaxContentBytes = mesh.DefaultMaxContentBytes
	}
	if c.RegistrationsPerMinute == 0 {
		c.RegistrationsPerMinute = 120
	}
	if c.FailedLoginsPerMinute == 0 {
		c.FailedLoginsPerMinute = 20
	}
	if c.UploadsPerMinute == 0 {
		c.UploadsPerMinute = 60
	}
	if c.OrphanGrace == 0 {
		c.OrphanGrace = time.Hour
	}
	if c.OrphanSweepInterval == 0 {
		c.OrphanSweepInterval = time.Hour
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = mesh.DefaultMaxFileBytes
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.ConsumerName == "" {
		h, _ := os.Hostname()
		c.ConsumerName = h + "-" + strconv.Itoa(os.Getpid()) + "-" + ulid.Make().String()[20:]
	}
	if c.DefaultMeshName == "" {
		c.DefaultMeshName = "The Mesh"
	}
	if c.ReclaimIdle == 0 {
		c.ReclaimIdle = 2 * time.Second
	}
}

// Deps are what the service runs on.
type Deps struct {
	Bus   bus.Bus
	Store store.Store
	// Blobs hold files' bytes: the service deletes them with their files (the gateway writes
	// and reads them). Without it, deleted files' bytes stay where they are.
	Blobs blob.Store
	// Limits counts rate-limited events: Redis's counts in a cluster, so that the limits hold
	// for the mesh and not per worker (an in-process Counter when nil).
	Limits  limit.Counter
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

// Service handles the API stream.
type Service struct {
	cfg    Config
	bus    bus.Bus
	store  store.Store
	log    *slog.Logger
	tokens *auth.Tokens
	ops    map[string]op
	// counter holds the rate limits' counts.
	counter limit.Counter
	blobs   blob.Store
	// limitsCache keeps the mesh's limits (settings) for a moment: the send path reads them.
	limitsCache limitsCache
	online      *presence
	// auditLog records every mutating action.
	auditLog *auditLog
	metrics  *metrics
	now      func() time.Time
}

// handler runs one operation. It returns the result to encode (nil for none) or an error.
type handler func(ctx context.Context, c *call) (any, error)

type op struct {
	route   mesh.Route
	handler handler
	// status is the HTTP status of a success (200 when zero).
	status int
}

// call is one command being handled.
type call struct {
	cmd   *mesh.Command
	req   *mesh.Request
	actor *store.Account // nil for routes without auth
	now   time.Time
	// redelivered: this command was delivered before, to a worker that may have died after
	// its effect and before its events; events are then published again (clients dedupe by
	// seq and id).
	redelivered bool
	// target names what the command acted on in the audit log, when its path does not.
	target string
}

// New makes the service.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.setDefaults()
	if deps.Bus == nil || deps.Store == nil {
		return nil, errors.New("apisvc: bus and store are required")
	}
	tokens, err := auth.NewTokens(cfg.JWTSecret, cfg.TokenTTL)
	if err != nil {
		return nil, fmt.Errorf("apisvc: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Service{
		cfg:      cfg,
		bus:      deps.Bus,
		store:    deps.Store,
		log:      log.With("service", "api"),
		tokens:   tokens,
		counter:  deps.Limits,
		blobs:    deps.Blobs,
		online:   newPresence(),
		auditLog: newAuditLog(deps.Store, log.With("service", "api")),
		metrics:  newMetrics(deps.Metrics),
		now:      time.Now,
	}
	if s.counter == nil {
		s.counter = memlimit.New()
	}
	if s.ops, err = s.operations(); err != nil {
		return nil, err
	}
	return s, nil
}

// Run consumes the API stream until ctx is done. Commands in flight finish first.
func (s *Service) Run(ctx context.Context) error {
	sub, err := s.bus.Subscribe(ctx, mesh.SubjectPresence)
	if err != nil {
		return fmt.Errorf("apisvc: subscribe presence: %w", err)
	}
	settingsSub, err := s.bus.Subscribe(ctx, mesh.SubjectSettings)
	if err != nil {
		_ = sub.Close()
		return fmt.Errorf("apisvc: subscribe settings: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	sweepCtx, stopSweep := context.WithCancel(ctx)
	go func() {
		defer wg.Done()
		s.sweepOrphansEvery(sweepCtx, s.cfg.OrphanSweepInterval)
	}()
	go func() {
		defer wg.Done()
		s.online.follow(ctx, sub)
	}()
	go func() {
		defer wg.Done()
		for range settingsSub.Messages() {
			s.forgetLimits()
		}
	}()
	defer func() {
		stopSweep()
		_ = sub.Close()
		_ = settingsSub.Close()
		wg.Wait()
	}()
	s.auditLog.start()
	defer s.auditLog.stop() // after the consumer: commands in flight are recorded too
	s.log.Info("api service consuming", "consumer", s.cfg.ConsumerName)
	err = s.bus.Consume(ctx, mesh.StreamAPI, mesh.GroupAPI, s.cfg.ConsumerName, bus.ConsumeOptions{
		Concurrency: s.cfg.Concurrency,
		ReclaimIdle: s.cfg.ReclaimIdle,
	}, s.handleEntry)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// handleEntry decodes a command, runs it and replies. It acks everything but failures to
// reply: an answer that could not be sent is retried by redelivery.
func (s *Service) handleEntry(ctx context.Context, e bus.Entry) error {
	var cmd mesh.Command
	if err := json.Unmarshal(e.Data, &cmd); err != nil {
		s.log.Warn("dropping undecodable command", "entry", e.ID, "err", err)
		return nil
	}
	if cmd.Deadline > 0 && s.now().UnixMilli() > cmd.Deadline {
		s.metrics.expired.Inc()
		return nil // the caller has given up and told its client: doing it now would surprise
	}
	start := time.Now()
	if e.Deliveries > 1 {
		ctx = context.WithValue(ctx, redeliveryKey{}, true)
	}
	reply := s.Handle(ctx, &cmd)
	s.metrics.observe(cmd.Op, reply, time.Since(start))
	if cmd.ReplyTo == "" {
		return nil
	}
	b, err := json.Marshal(reply)
	if err != nil {
		return fmt.Errorf("apisvc: encode reply: %w", err)
	}
	if err := s.bus.Publish(ctx, cmd.ReplyTo, b); err != nil {
		return fmt.Errorf("apisvc: reply to %s: %w", cmd.ReplyTo, err)
	}
	return nil
}

// Handle runs one command and returns its reply. Mutating commands are written to the audit
// log, refused ones included (a replay of an Idempotency-Key changes nothing and is not).
func (s *Service) Handle(ctx context.Context, cmd *mesh.Command) mesh.Reply {
	c, reply, replayed := s.handle(ctx, cmd)
	if o, ok := s.ops[cmd.Op]; ok && !replayed && c != nil {
		switch {
		case o.route.Mutating:
			s.audit(c, reply)
		case cmd.Op == mesh.OpFilesAuthorize && reply.Error != nil:
			// An upload refused before its bytes were read: recorded as the upload it was.
			s.auditAs(c, mesh.OpFilesUpload, reply)
		}
	}
	return reply
}

func (s *Service) handle(ctx context.Context, cmd *mesh.Command) (*call, mesh.Reply, bool) {
	reply := mesh.Reply{ID: cmd.ID}
	o, ok := s.ops[cmd.Op]
	if !ok {
		reply.Error = mesh.Errorf(mesh.CodeBadRequest, "unknown operation %q", cmd.Op)
		return nil, reply, false
	}
	redelivered, _ := ctx.Value(redeliveryKey{}).(bool)
	c := &call{cmd: cmd, req: &cmd.Args, now: s.now().UTC(), redelivered: redelivered}
	if o.route.Auth {
		a, err := s.authenticate(ctx, cmd.Actor)
		if err != nil {
			reply.Error = mesh.AsError(err)
			return c, reply, false
		}
		c.actor = &a
		if p := o.route.Permission; p != "" && !s.allowed(ctx, c.actor, rbac.Permission(p)) {
			reply.Error = mesh.Errorf(mesh.CodeForbidden, "your role may not %s", p)
			return c, reply, false
		}
	}
	// Idempotency-Key: a repeat from the same participant gets the first result.
	var idemScope, idemKey string
	if o.route.Mutating && cmd.IdempotencyKey != "" {
		idemScope, idemKey = idempotencyScope(c), cmd.Op+" "+cmd.IdempotencyKey
		if b, found, err := s.store.Result(ctx, idemScope, idemKey); err != nil {
			reply.Error = s.internal(ctx, cmd.Op, err)
			return c, reply, false
		} else if found {
			if err := json.Unmarshal(b, &reply); err == nil {
				reply.ID = cmd.ID
				return c, reply, true
			}
		}
	}
	res, err := o.handler(ctx, c)
	if err != nil {
		var me *mesh.Error
		if errors.As(err, &me) {
			reply.Error = me
		} else {
			reply.Error = s.internal(ctx, cmd.Op, err)
		}
		return c, reply, false
	}
	reply.Status = o.status
	if res != nil {
		b, err := json.Marshal(res)
		if err != nil {
			reply.Error = s.internal(ctx, cmd.Op, err)
			return c, reply, false
		}
		reply.Result = b
	}
	if idemKey != "" {
		b, _ := json.Marshal(mesh.Reply{Status: reply.Status, Result: reply.Result})
		if stored, err := s.store.SaveResult(ctx, idemScope, idemKey, b); err == nil {
			_ = json.Unmarshal(stored, &reply)
			reply.ID = cmd.ID
		}
	}
	return c, reply, false
}

func idempotencyScope(c *call) string {
	if c.actor != nil {
		return "idem:" + c.actor.ID
	}
	return "idem-addr:" + c.req.Addr
}

// internal logs an unexpected error and returns what the client sees: unavailable when the
// store cannot be reached right now, internal otherwise.
func (s *Service) internal(ctx context.Context, op string, err error) *mesh.Error {
	if ctx.Err() != nil || s.store.Ping(ctx) != nil {
		s.log.Warn("store unavailable", "op", op, "err", err)
		return mesh.Errorf(mesh.CodeUnavailable, "the mesh's database is unavailable; try again")
	}
	s.log.Error("operation failed", "op", op, "err", err)
	return mesh.Errorf(mesh.CodeInternal, "internal error")
}

// authenticate turns a gateway-verified actor into the current account: the token must not
// be revoked, the account must exist, be active and not banned.
func (s *Service) authenticate(ctx context.Context, a *mesh.Actor) (store.Account, error) {
	if a == nil || a.ID == "" || a.TokenID == "" {
		return store.Account{}, mesh.Errorf(mesh.CodeUnauthorized, "authentication required")
	}
	if a.TokenExp > 0 && s.now().Unix() > a.TokenExp {
		return store.Account{}, mesh.Errorf(mesh.CodeUnauthorized, "token expired")
	}
	revoked, err := s.store.IsRevoked(ctx, a.TokenID)
	if err != nil {
		return store.Account{}, err
	}
	if revoked {
		return store.Account{}, mesh.Errorf(mesh.CodeUnauthorized, "token revoked")
	}
	acc, err := s.store.ParticipantByID(ctx, a.ID)
	if err != nil {
		if mesh.IsCode(err, mesh.CodeNotFound) {
			return store.Account{}, mesh.Errorf(mesh.CodeUnauthorized, "no such participant")
		}
		return store.Account{}, err
	}
	if a.TokenGen < acc.TokenGen {
		return store.Account{}, mesh.Errorf(mesh.CodeUnauthorized, "token revoked: the password changed, or the participant signed out everywhere")
	}
	if acc.Banned {
		return store.Account{}, mesh.Errorf(mesh.CodeBanned, "you are banned from this mesh")
	}
	if acc.Deactivated {
		return store.Account{}, mesh.Errorf(mesh.CodeUnauthorized, "account deactivated")
	}
	return acc, nil
}

func (s *Service) allowed(ctx context.Context, a *store.Account, p rbac.Permission) bool {
	return rbac.Allowed(s.resolver(ctx), a.Role, p)
}

// resolver finds roles: the built-in ones, then the mesh's custom roles in the store (read
// each time: a change of role takes effect at once).
func (s *Service) resolver(ctx context.Context) rbac.Resolver {
	return storeRoles{ctx: ctx, st: s.store}
}

type storeRoles struct {
	ctx context.Context
	st  store.Store
}

func (r storeRoles) Role(name string) (rbac.Role, bool) {
	if b, ok := rbac.Builtin(name); ok {
		return b, true
	}
	c, err := r.st.RoleByName(r.ctx, name)
	if err != nil {
		return rbac.Role{}, false
	}
	return customRole(c), true
}

// customRole is a stored role as rbac sees it.
func customRole(c store.Role) rbac.Role {
	ps := make([]rbac.Permission, len(c.Permissions))
	for i, p := range c.Permissions {
		ps[i] = rbac.Permission(p)
	}
	return rbac.Role{Name: c.Name, Priority: c.Priority, Permissions: ps}
}

func (s *Service) operations() (map[string]op, error) {
	handlers := map[string]struct {
		h      handler
		status int
	}{
		mesh.OpSetupGet:       {s.setupGet, 0},
		mesh.OpSetupCreate:    {s.setupCreate, 201},
		mesh.OpAuthRegister:   {s.register, 201},
		mesh.OpAuthLogin:      {s.login, 0},
		mesh.OpAuthMe:         {s.me, 0},
		mesh.OpAuthLogout:     {s.logout, 204},
		mesh.OpParticipantGet: {s.participantGet, 0},
		mesh.OpPermissionsGet: {s.permissionsList, 0},
		mesh.OpRolesList:      {s.rolesList, 0},
		mesh.OpRolesCreate:    {s.rolesCreate, 201},
		mesh.OpRolesUpdate:    {s.rolesUpdate, 0},
		mesh.OpRolesDelete:    {s.rolesDelete, 204},
		mesh.OpRoleAssign:     {s.assignRole, 0},
		mesh.OpParticipants:   {s.participantsList, 0},
		mesh.OpBan:            {s.banning(true), 0},
		mesh.OpUnban:          {s.banning(false), 0},
		mesh.OpDeactivate:     {s.activation(false), 0},
		mesh.OpReactivate:     {s.activation(true), 0},
		mesh.OpSettingsGet:    {s.settingsGet, 0},
		mesh.OpSettingsUpdate: {s.settingsUpdate, 0},
		mesh.OpAuditList:      {s.auditList, 0},
		mesh.OpPin:            {s.pinning(true), 0},
		mesh.OpUnpin:          {s.pinning(false), 0},
		mesh.OpPinsList:       {s.pinsList, 0},
		mesh.OpLock:           {s.locking(true), 0},
		mesh.OpUnlock:         {s.locking(false), 0},
		mesh.OpRoomInvite:     {s.invite, 0},
		mesh.OpInvitesCreate:  {s.invitesCreate, 201},
		mesh.OpInvitesList:    {s.invitesList, 0},
		mesh.OpInvitesDelete:  {s.invitesDelete, 204},
		mesh.OpSearch:         {s.search, 0},
		mesh.OpRoomsList:      {s.roomsList, 0},
		mesh.OpRoomsCreate:    {s.roomsCreate, 201},
		mesh.OpRoomsGet:       {s.roomsGet, 0},
		mesh.OpRoomsUpdate:    {s.roomsUpdate, 0},
		mesh.OpRoomsDelete:    {s.roomsDelete, 204},
		mesh.OpRoomsJoin:      {s.roomsJoin, 0},
		mesh.OpRoomsLeave:     {s.roomsLeave, 204},
		mesh.OpRoomsMembers:   {s.roomsMembers, 0},
		mesh.OpRoomsKick:      {s.kick, 204},
		mesh.OpRoomsMute:      {s.mute, 204},
		mesh.OpMessagesList:   {s.messagesList, 0},
		mesh.OpMessagesSend:   {s.messagesSend, 201},
		mesh.OpMessagesEdit:   {s.messagesEdit, 0},
		mesh.OpMessagesDelete: {s.messagesDelete, 204},
		mesh.OpReactionsAdd:   {s.reactionAdd, 0},
		mesh.OpReactionsDel:   {s.reactionRemove, 0},
		mesh.OpFilesUpload:    {s.filesUpload, 201},
		mesh.OpFilesGet:       {s.filesGet, 0},
		mesh.OpFilesDelete:    {s.filesDelete, 204},
		mesh.OpFilesList:      {s.filesList, 0},
		mesh.OpFeedPost:       {s.feedPost, 201},
		mesh.OpAuthUpdate:     {s.meUpdate, 0},
		mesh.OpReadMark:       {s.readMark, 0},
		mesh.OpThreadsList:    {s.threadsList, 0},
		mesh.OpAuthPassword:   {s.passwordChange, 0},
		mesh.OpAuthSessions:   {s.logoutEverywhere, 204},
		mesh.OpAuthDelete:     {s.meDelete, 204},
		mesh.OpAuthRefresh:    {s.refresh, 0},
	}
	ops := map[string]op{}
	for _, r := range mesh.Routes {
		h, ok := handlers[r.Op]
		if !ok {
			return nil, fmt.Errorf("apisvc: no handler for route %s %s (%s)", r.Method, r.Path, r.Op)
		}
		ops[r.Op] = op{route: r, handler: h.h, status: h.status}
	}
	internal := map[string]handler{mesh.OpSessionOpen: s.sessionOpen, mesh.OpFilesAuthorize: s.filesAuthorize}
	for _, r := range mesh.InternalOps {
		h, ok := internal[r.Op]
		if !ok {
			return nil, fmt.Errorf("apisvc: no handler for internal operation %s", r.Op)
		}
		ops[r.Op] = op{route: r, handler: h}
	}
	return ops, nil
}

type redeliveryKey struct{}

// entityID is the id of what this command creates: the command's own id (a ULID the gateway
// made), so that a command redelivered after its first run stored it finds it stored and has
// no second effect; a fresh id for commands without one.
func (c *call) entityID() string {
	if id := c.cmd.ID; len(id) == 26 {
		if _, err := ulid.ParseStrict(id); err == nil {
			return id
		}
	}
	return newID()
}

// newID makes a sortable unique id.
func newID() string { return ulid.Make().String() }
