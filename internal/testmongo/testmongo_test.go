package testmongo_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/internal/testmongo"
)

func TestMain(m *testing.M) { testmongo.Main(m) }

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// TestStopStart stops and starts a dedicated server: same port and URI, data kept, whether it
// was stopped cleanly or killed.
func TestStopStart(t *testing.T) {
	srv := testmongo.Start(t)
	uri := srv.URI()
	if want := "mongodb://" + srv.Addr() + "/"; uri != want || srv.Port() == 0 {
		t.Fatalf("URI = %q, port %d; want %q", uri, srv.Port(), want)
	}
	ctx := t.Context()
	c := connect(t, uri)
	coll := c.Database(srv.DB(t)).Collection("things")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	for _, kill := range []bool{false, true} {
		stop := srv.Stop
		if kill {
			stop = srv.Kill
		}
		if err := stop(); err != nil {
			t.Fatalf("stop (kill %v): %v", kill, err)
		}
		if err := stop(); err != nil {
			t.Errorf("stopping a stopped server: %v", err)
		}
		down, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		if err := c.Ping(down, nil); err == nil {
			t.Errorf("ping of a stopped server (kill %v) succeeded", kill)
		}
		cancel()
		if err := srv.Start(); err != nil {
			t.Fatalf("start again: %v", err)
		}
		if err := srv.Start(); err != nil {
			t.Errorf("starting a running server: %v", err)
		}
		if srv.URI() != uri {
			t.Errorf("URI after a restart = %q, want %q", srv.URI(), uri)
		}
		n, err := coll.CountDocuments(ctx, bson.D{})
		if err != nil || n != 1 {
			t.Errorf("after a restart (kill %v): %d documents, %v; want the one stored before", kill, n, err)
		}
	}
}

// TestSharedDB: the shared server is one per binary; each test gets a database of its own,
// named as FerretDB and MongoDB accept, and dropped when the test ends.
func TestSharedDB(t *testing.T) {
	srv := testmongo.Shared(t)
	if testmongo.Shared(t) != srv {
		t.Error("Shared returned two servers")
	}
	valid := regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)
	var names []string
	for _, name := range []string{"short", strings.Repeat("a very long name/with odd chars: é ", 5)} {
		t.Run(name, func(t *testing.T) {
			db := srv.DB(t)
			if !valid.MatchString(db) || slices.Contains(names, db) {
				t.Errorf("DB = %q: invalid, or given twice", db)
			}
			names = append(names, db)
			c := connect(t, srv.URI())
			if _, err := c.Database(db).Collection("x").InsertOne(t.Context(), bson.D{{Key: "v", Value: 1}}); err != nil {
				t.Fatal(err)
			}
		})
	}
	c := connect(t, srv.URI())
	dbs, err := c.ListDatabaseNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range names {
		if slices.Contains(dbs, db) {
			t.Errorf("database %s outlived its test", db)
		}
	}
}
