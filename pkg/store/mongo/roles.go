package mongo

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodb "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// roleDoc is a custom role in roles; its _id is the name, so names are unique by construction.
type roleDoc struct {
	Name        string        `bson:"_id"`
	Priority    int           `bson:"priority"`
	Permissions []string      `bson:"permissions"`
	CreatedBy   string        `bson:"createdBy"`
	CreatedAt   bson.DateTime `bson:"createdAt"`
}

func (d *roleDoc) role() store.Role {
	perms := d.Permissions
	if perms == nil {
		perms = []string{}
	}
	return store.Role{
		Name: d.Name, Priority: d.Priority, Permissions: perms, CreatedBy: d.CreatedBy,
		CreatedAt: meshTime(d.CreatedAt).Time,
	}
}

// nonNilPerms stores nil permissions as an empty array (never BSON null).
func nonNilPerms(p []string) []string {
	if p == nil {
		return []string{}
	}
	return p
}

// CreateRole stores r: an insert under the unique _id; a duplicate is CodeConflict.
func (s *Store) CreateRole(ctx context.Context, r store.Role) (store.Role, error) {
	d := roleDoc{
		Name: r.Name, Priority: r.Priority, Permissions: nonNilPerms(r.Permissions),
		CreatedBy: r.CreatedBy, CreatedAt: date(r.CreatedAt),
	}
	if _, err := s.roles.InsertOne(ctx, d); err != nil {
		if isDup(err) {
			return store.Role{}, mesh.Errorf(mesh.CodeConflict, "role %q already exists", r.Name)
		}
		return store.Role{}, wrap("create role", err)
	}
	return d.role(), nil
}

// RoleByName returns the role, or CodeNotFound.
func (s *Store) RoleByName(ctx context.Context, name string) (store.Role, error) {
	var d roleDoc
	found, err := findOne(ctx, s.roles, bson.D{{Key: "_id", Value: name}}, &d)
	if err != nil {
		return store.Role{}, wrap("role by name", err)
	}
	if !found {
		return store.Role{}, notFound("role", name)
	}
	return d.role(), nil
}

// ListRoles lists the custom roles ordered by name.
func (s *Store) ListRoles(ctx context.Context) ([]store.Role, error) {
	docs, err := findAll[roleDoc](ctx, s.roles, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, wrap("list roles", err)
	}
	out := make([]store.Role, len(docs))
	for i := range docs {
		out[i] = docs[i].role()
	}
	return out, nil
}

// UpdateRole changes the fields of u that are set, and returns the role as stored. On
// FerretDB v1, two updates of one role at the same moment may lose one of them (see the
// package documentation); MongoDB applies both.
func (s *Store) UpdateRole(ctx context.Context, name string, u store.RoleUpdate) (store.Role, error) {
	set := bson.D{}
	if u.Priority != nil {
		set = append(set, bson.E{Key: "priority", Value: *u.Priority})
	}
	if u.Permissions != nil {
		set = append(set, bson.E{Key: "permissions", Value: nonNilPerms(*u.Permissions)})
	}
	if len(set) == 0 {
		return s.RoleByName(ctx, name)
	}
	var d roleDoc
	err := s.roles.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: name}}, bson.D{{Key: "$set", Value: set}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if errors.Is(err, mongodb.ErrNoDocuments) {
		return store.Role{}, notFound("role", name)
	}
	if err != nil {
		return store.Role{}, wrap("update role", err)
	}
	return d.role(), nil
}

// DeleteRole removes the role, or answers CodeNotFound. Participants holding it keep it.
func (s *Store) DeleteRole(ctx context.Context, name string) error {
	res, err := s.roles.DeleteOne(ctx, bson.D{{Key: "_id", Value: name}})
	if err != nil {
		return wrap("delete role", err)
	}
	if res.DeletedCount == 0 {
		return notFound("role", name)
	}
	return nil
}

// CountByRole counts the participants whose role is role, banned and deactivated ones
// included.
func (s *Store) CountByRole(ctx context.Context, role string) (int, error) {
	n, err := s.participants.CountDocuments(ctx, bson.D{{Key: "role", Value: role}})
	return int(n), wrap("count by role", err)
}
