package storetest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var participantTests = []test{
	{name: "List", fn: participantList},
	{name: "CreateAndRead", fn: participantCreateAndRead},
	{name: "EmailCaseInsensitive", fn: participantEmailCaseInsensitive},
	{name: "EmailTaken", fn: participantEmailTaken},
	{name: "NoEmail", fn: participantNoEmail},
	{name: "NotFound", fn: participantNotFound},
	{name: "ByIDs", fn: participantsByIDs},
	{name: "Count", fn: participantCount},
	{name: "Update", fn: participantUpdate},
	{name: "UpdateOneField", fn: participantUpdateOneField},
	{name: "UpdatePasswordHash", fn: participantUpdatePasswordHash},
	{name: "UpdateTokenGen", fn: participantUpdateTokenGen},
	{name: "UpdateEmail", fn: participantUpdateEmail},
	{name: "UpdateEmailRemove", fn: participantUpdateEmailRemove},
	{name: "UpdateEmailTaken", fn: participantUpdateEmailTaken},
	{name: "ConcurrentUpdateSameEmail", fn: participantConcurrentUpdateSameEmail},
	{name: "TokenGenStartsAtZero", fn: participantTokenGenStartsAtZero},
	{name: "TokenGenAsGiven", fn: participantTokenGenAsGiven},
	{name: "AnyOrder", fn: participantAnyOrder},
	{name: "FirstBecomesOwner", fn: participantFirstBecomesOwner},
	{name: "OnlyFirst", fn: participantOnlyFirst},
	{name: "ConcurrentFirstBecomesOwner", fresh: onFreshStores(participantConcurrentFirstBecomesOwner)},
	{name: "ConcurrentOnlyFirst", fresh: onFreshStores(participantConcurrentOnlyFirst)},
	{name: "ConcurrentSameEmail", fn: participantConcurrentSameEmail},
	{name: "FindText", fn: participantFindText},
	{name: "FindEveryAccount", fn: participantFindEveryAccount},
	{name: "FindNothing", fn: participantFindNothing},
	{name: "FindPages", fn: participantFindPages},
	{name: "FindLimit", fn: participantFindLimit},
}

func participantCreateAndRead(t *testing.T, s store.Store) {
	ctx := t.Context()
	human := account("p1", "ada@example.com")
	checkAccount(t, "CreateParticipant(human)", createParticipant(t, s, human, store.AnyOrder), human)
	bot := account("p2", "bot@example.com")
	bot.IsAgent = true
	bot.Role = mesh.RoleAgent
	bot.OwnerID = ptr("p1")
	bot.DID = ptr("did:key:z6MkBot")
	bot.Status = mesh.StatusOnline
	bot.Banned = true
	bot.Deactivated = true
	gotBot := createParticipant(t, s, bot, store.AnyOrder)
	checkAccount(t, "CreateParticipant(bot)", gotBot, bot)

	for _, want := range []store.Account{human, bot} {
		got, err := s.ParticipantByID(ctx, want.ID)
		if err != nil {
			t.Fatalf("ParticipantByID(%s): %v", want.ID, err)
		}
		checkAccount(t, "ParticipantByID("+want.ID+")", got, want)
		got, err = s.ParticipantByEmail(ctx, want.Email)
		if err != nil {
			t.Fatalf("ParticipantByEmail(%s): %v", want.Email, err)
		}
		checkAccount(t, "ParticipantByEmail("+want.Email+")", got, want)
	}
}

func participantEmailCaseInsensitive(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	for _, email := range []string{"ADA@EXAMPLE.COM", "Ada@Example.com", "ada@EXAMPLE.com"} {
		got, err := s.ParticipantByEmail(ctx, email)
		if err != nil {
			t.Fatalf("ParticipantByEmail(%s): %v", email, err)
		}
		checkAccount(t, "ParticipantByEmail("+email+")", got, want)
	}
	// A caller that forgets to lower-case still gets a lower-cased, findable email.
	mixed := createParticipant(t, s, account("p2", "Bob@Example.COM"), store.AnyOrder)
	if mixed.Email != "bob@example.com" {
		t.Errorf("CreateParticipant(Bob@Example.COM).Email = %q, want bob@example.com", mixed.Email)
	}
	got, err := s.ParticipantByEmail(ctx, "bob@example.com")
	if err != nil || got.ID != "p2" {
		t.Errorf("ParticipantByEmail(bob@example.com) = %s, %v; want p2", got.ID, err)
	}
}

func participantEmailTaken(t *testing.T, s store.Store) {
	ctx := t.Context()
	createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	for i, email := range []string{"ada@example.com", "ADA@example.com"} {
		for _, mode := range []store.FirstMode{store.AnyOrder, store.FirstBecomesOwner} {
			_, err := s.CreateParticipant(ctx, account(fmt.Sprintf("p%d%d", i, mode), email), mode)
			wantCode(t, fmt.Sprintf("CreateParticipant(%s, mode %d)", email, mode), err, mesh.CodeConflict)
		}
	}
	if n, err := s.CountParticipants(ctx); err != nil || n != 1 {
		t.Errorf("CountParticipants = %d, %v; want 1 (nothing stored on conflict)", n, err)
	}
	got, err := s.ParticipantByEmail(ctx, "ada@example.com")
	if err != nil || got.ID != "p1" {
		t.Errorf("ParticipantByEmail = %s, %v; want the first account p1", got.ID, err)
	}
}

func participantNoEmail(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"bot1", "bot2", "bot3"} {
		a := account(id, "")
		a.IsAgent = true
		createParticipant(t, s, a, store.AnyOrder)
	}
	if n, err := s.CountParticipants(ctx); err != nil || n != 3 {
		t.Errorf("CountParticipants = %d, %v; want 3 (empty emails never conflict)", n, err)
	}
	got, err := s.ParticipantByID(ctx, "bot2")
	if err != nil || got.Email != "" {
		t.Errorf("ParticipantByID(bot2) = email %q, %v; want no email", got.Email, err)
	}
	_, err = s.ParticipantByEmail(ctx, "")
	wantCode(t, `ParticipantByEmail("")`, err, mesh.CodeNotFound)
}

// An unknown id is CodeNotFound, whatever the update sets (nothing included), and the update
// creates nobody.
func participantNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	updates := []struct {
		name string
		u    store.ParticipantUpdate
	}{
		{"display name", store.ParticipantUpdate{DisplayName: ptr("x")}},
		{"password hash", store.ParticipantUpdate{PasswordHash: ptr([]byte("x"))}},
		{"token gen", store.ParticipantUpdate{TokenGen: ptr(1)}},
		{"email", store.ParticipantUpdate{Email: ptr("nobody@example.com")}},
		{"an email someone holds", store.ParticipantUpdate{Email: ptr("ada@example.com")}},
		{"no email", store.ParticipantUpdate{Email: ptr("")}},
		{"everything", store.ParticipantUpdate{Email: ptr("nobody@example.com"), DisplayName: ptr("x"),
			Role: ptr(mesh.RoleAdmin), Banned: ptr(true), Deactivated: ptr(true), PasswordHash: ptr([]byte("x")),
			TokenGen: ptr(1)}},
		{"nothing", store.ParticipantUpdate{}},
	}
	for _, up := range updates {
		_, err := s.UpdateParticipant(ctx, "nobody", up.u)
		wantCode(t, "UpdateParticipant(nobody, "+up.name+")", err, mesh.CodeNotFound)
	}
	_, err := s.ParticipantByID(ctx, "nobody")
	wantCode(t, "ParticipantByID(nobody)", err, mesh.CodeNotFound)
	_, err = s.ParticipantByEmail(ctx, "nobody@example.com")
	wantCode(t, "ParticipantByEmail(nobody@example.com)", err, mesh.CodeNotFound)
	got, err := s.ParticipantByEmail(ctx, "ada@example.com")
	if err != nil || got.ID != "p1" {
		t.Errorf("ParticipantByEmail(ada@example.com) = %s, %v; want p1, still", got.ID, err)
	}
	if n, err := s.CountParticipants(ctx); err != nil || n != 1 {
		t.Errorf("CountParticipants = %d, %v; want 1 (updates of an unknown id store nothing)", n, err)
	}
}

func participantsByIDs(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"p1", "p2", "p3"} {
		createParticipant(t, s, account(id, id+"@example.com"), store.AnyOrder)
	}
	got, err := s.ParticipantsByIDs(ctx, []string{"p3", "missing", "p1"})
	if err != nil {
		t.Fatalf("ParticipantsByIDs: %v", err)
	}
	gotIDs := make([]string, len(got))
	for i, a := range got {
		gotIDs[i] = a.ID
		if a.Email != a.ID+"@example.com" || a.DisplayName != "Name of "+a.ID {
			t.Errorf("ParticipantsByIDs: account %s came back as %+v", a.ID, a)
		}
	}
	wantSet(t, "ParticipantsByIDs(p3, missing, p1)", gotIDs, []string{"p1", "p3"})

	for _, ids := range [][]string{nil, {}, {"missing"}} {
		got, err := s.ParticipantsByIDs(ctx, ids)
		if err != nil || len(got) != 0 {
			t.Errorf("ParticipantsByIDs(%v) = %v, %v; want none", ids, got, err)
		}
	}
}

func participantCount(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 5 {
		if n, err := s.CountParticipants(ctx); err != nil || n != i {
			t.Fatalf("CountParticipants = %d, %v; want %d", n, err, i)
		}
		a := account(fmt.Sprintf("p%d", i), fmt.Sprintf("p%d@example.com", i))
		a.Banned = i%2 == 0 // banned accounts count too
		createParticipant(t, s, a, store.AnyOrder)
	}
	if n, err := s.CountParticipants(ctx); err != nil || n != 5 {
		t.Errorf("CountParticipants = %d, %v; want 5", n, err)
	}
}

func participantUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	other := createParticipant(t, s, account("p2", "bob@example.com"), store.AnyOrder)

	steps := []struct {
		name   string
		u      store.ParticipantUpdate
		change func(a *store.Account)
	}{
		{"nothing", store.ParticipantUpdate{}, func(*store.Account) {}},
		{"display name", store.ParticipantUpdate{DisplayName: ptr("Ada L.")},
			func(a *store.Account) { a.DisplayName = "Ada L." }},
		{"role", store.ParticipantUpdate{Role: ptr(mesh.RoleModerator)},
			func(a *store.Account) { a.Role = mesh.RoleModerator }},
		{"banned", store.ParticipantUpdate{Banned: ptr(true)},
			func(a *store.Account) { a.Banned = true }},
		{"deactivated", store.ParticipantUpdate{Deactivated: ptr(true)},
			func(a *store.Account) { a.Deactivated = true }},
		{"password hash", store.ParticipantUpdate{PasswordHash: ptr([]byte("new hash"))},
			func(a *store.Account) { a.PasswordHash = []byte("new hash") }},
		{"token gen", store.ParticipantUpdate{TokenGen: ptr(2)},
			func(a *store.Account) { a.TokenGen = 2 }},
		{"all back", store.ParticipantUpdate{
			DisplayName: ptr("Ada"), Role: ptr(mesh.RoleAdmin), Banned: ptr(false), Deactivated: ptr(false),
			PasswordHash: ptr([]byte("hash-of-p1")), TokenGen: ptr(0)},
			func(a *store.Account) {
				a.DisplayName, a.Role, a.Banned, a.Deactivated = "Ada", mesh.RoleAdmin, false, false
				a.PasswordHash, a.TokenGen = []byte("hash-of-p1"), 0
			}},
	}
	for _, st := range steps {
		st.change(&want)
		got, err := s.UpdateParticipant(ctx, "p1", st.u)
		if err != nil {
			t.Fatalf("UpdateParticipant(%s): %v", st.name, err)
		}
		checkAccount(t, "UpdateParticipant("+st.name+")", got, want)
		got, err = s.ParticipantByID(ctx, "p1")
		if err != nil {
			t.Fatalf("ParticipantByID after %s: %v", st.name, err)
		}
		checkAccount(t, "ParticipantByID after "+st.name, got, want)
	}
	got, err := s.ParticipantByID(ctx, "p2")
	if err != nil {
		t.Fatal(err)
	}
	checkAccount(t, "the other participant", got, other)
}

// updateParticipant updates id and checks the account returned and the one read back by every
// read against want.
func updateParticipant(t *testing.T, s store.Store, what, id string, u store.ParticipantUpdate, want store.Account) {
	t.Helper()
	got, err := s.UpdateParticipant(t.Context(), id, u)
	if err != nil {
		t.Fatalf("UpdateParticipant(%s): %v", what, err)
	}
	checkAccount(t, "UpdateParticipant("+what+")", got, want)
	checkReads(t, s, "after "+what, want)
}

// checkReads reads want's account back by every read of accounts (by id, by email if it has
// one, among ids, in the list) and compares each with want.
func checkReads(t *testing.T, s store.Store, what string, want store.Account) {
	t.Helper()
	ctx := t.Context()
	got, err := s.ParticipantByID(ctx, want.ID)
	if err != nil {
		t.Fatalf("%s: ParticipantByID(%s): %v", what, want.ID, err)
	}
	checkAccount(t, what+": ParticipantByID("+want.ID+")", got, want)
	if want.Email != "" {
		got, err := s.ParticipantByEmail(ctx, want.Email)
		if err != nil {
			t.Fatalf("%s: ParticipantByEmail(%s): %v", what, want.Email, err)
		}
		checkAccount(t, what+": ParticipantByEmail("+want.Email+")", got, want)
	}
	some, err := s.ParticipantsByIDs(ctx, []string{want.ID, "missing"})
	if err != nil || len(some) != 1 {
		t.Fatalf("%s: ParticipantsByIDs(%s, missing) = %d accounts, %v; want 1", what, want.ID, len(some), err)
	}
	checkAccount(t, what+": ParticipantsByIDs("+want.ID+")", some[0], want)
	all, err := s.ListParticipants(ctx, "", 0)
	if err != nil {
		t.Fatalf("%s: ListParticipants: %v", what, err)
	}
	i := slices.IndexFunc(all, func(a store.Account) bool { return a.ID == want.ID })
	if i < 0 {
		t.Fatalf("%s: ListParticipants: %s is missing", what, want.ID)
	}
	checkAccount(t, what+": ListParticipants: "+want.ID, all[i], want)
}

// Setting one field leaves every other one as it was, the email, the password hash and the
// token generation included. Every field is first set away from its value at creation, so
// that a store that resets a field it was not asked to change is seen; the email is set to
// none on the way, so that a store that brings an old one back is seen too.
func participantUpdateOneField(t *testing.T, s store.Store) {
	want := createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	other := createParticipant(t, s, account("p2", "bob@example.com"), store.AnyOrder)
	want.Email, want.DisplayName, want.Role, want.Banned, want.Deactivated = "ada.l@example.com", "Ada L.",
		mesh.RoleModerator, true, true
	want.PasswordHash, want.TokenGen = []byte("hash 1"), 4
	updateParticipant(t, s, "everything", "p1", store.ParticipantUpdate{
		Email: ptr("ada.l@example.com"), DisplayName: ptr("Ada L."), Role: ptr(mesh.RoleModerator),
		Banned: ptr(true), Deactivated: ptr(true), PasswordHash: ptr([]byte("hash 1")), TokenGen: ptr(4),
	}, want)

	steps := []struct {
		name   string
		u      store.ParticipantUpdate
		change func(a *store.Account)
	}{
		{"only display name", store.ParticipantUpdate{DisplayName: ptr("Ada")},
			func(a *store.Account) { a.DisplayName = "Ada" }},
		{"only role", store.ParticipantUpdate{Role: ptr(mesh.RoleAdmin)},
			func(a *store.Account) { a.Role = mesh.RoleAdmin }},
		{"only banned", store.ParticipantUpdate{Banned: ptr(false)},
			func(a *store.Account) { a.Banned = false }},
		{"only deactivated", store.ParticipantUpdate{Deactivated: ptr(false)},
			func(a *store.Account) { a.Deactivated = false }},
		{"only password hash", store.ParticipantUpdate{PasswordHash: ptr([]byte("hash 2"))},
			func(a *store.Account) { a.PasswordHash = []byte("hash 2") }},
		{"only token gen", store.ParticipantUpdate{TokenGen: ptr(5)},
			func(a *store.Account) { a.TokenGen = 5 }},
		{"only email", store.ParticipantUpdate{Email: ptr("ada@example.com")},
			func(a *store.Account) { a.Email = "ada@example.com" }},
		{"only email, to none", store.ParticipantUpdate{Email: ptr("")},
			func(a *store.Account) { a.Email = "" }},
		{"only display name, with no email", store.ParticipantUpdate{DisplayName: ptr("Ada Lovelace")},
			func(a *store.Account) { a.DisplayName = "Ada Lovelace" }},
		{"only password hash, with no email", store.ParticipantUpdate{PasswordHash: ptr([]byte("hash 3"))},
			func(a *store.Account) { a.PasswordHash = []byte("hash 3") }},
		{"nothing", store.ParticipantUpdate{}, func(*store.Account) {}},
	}
	for _, st := range steps {
		st.change(&want)
		updateParticipant(t, s, st.name, "p1", st.u, want)
	}
	for _, email := range []string{"ada@example.com", "ada.l@example.com"} {
		_, err := s.ParticipantByEmail(t.Context(), email)
		wantCode(t, "ParticipantByEmail("+email+") once p1 has no email", err, mesh.CodeNotFound)
	}
	checkReads(t, s, "the other participant", other)
}

// Setting the password hash stores the new one, byte for byte; an empty hash clears it.
func participantUpdatePasswordHash(t *testing.T, s store.Store) {
	want := createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	other := createParticipant(t, s, account("p2", "bob@example.com"), store.AnyOrder)
	for _, st := range []struct {
		name string
		hash []byte
	}{
		{"a hash", []byte("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")},
		{"any bytes, zeros included", []byte{0, 1, 2, 0xff, 0xfe, 0}},
		{"nil, which clears it", nil},
		{"the first hash again", []byte("hash-of-p1")},
		{"empty, which clears it", []byte{}},
		{"a hash again", []byte("set again")},
	} {
		want.PasswordHash = st.hash
		updateParticipant(t, s, "password hash: "+st.name, "p1", store.ParticipantUpdate{PasswordHash: ptr(st.hash)}, want)
	}
	checkReads(t, s, "the other participant", other)
}

// Setting the token generation stores it, whatever it was (lowering it and 0 included).
func participantUpdateTokenGen(t *testing.T, s store.Store) {
	want := createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	other := createParticipant(t, s, account("p2", "bob@example.com"), store.AnyOrder)
	for _, gen := range []int{1, 2, 1000, 3, 0, math.MaxInt} {
		want.TokenGen = gen
		updateParticipant(t, s, fmt.Sprint("token gen ", gen), "p1", store.ParticipantUpdate{TokenGen: ptr(gen)}, want)
	}
	checkReads(t, s, "the other participant", other)
}

// A participant's token generation starts at 0, whichever way it was created, and every read
// returns it; once set, every read returns the new one, and other participants keep theirs.
func participantTokenGenStartsAtZero(t *testing.T, s store.Store) {
	bot := account("p3", "")
	bot.IsAgent, bot.Role, bot.PasswordHash = true, mesh.RoleAgent, nil
	created := []store.Account{
		createParticipant(t, s, account("p1", "ada@example.com"), store.FirstBecomesOwner),
		createParticipant(t, s, account("p2", "bob@example.com"), store.FirstBecomesOwner),
		createParticipant(t, s, bot, store.AnyOrder),
	}
	for _, a := range created {
		if a.TokenGen != 0 {
			t.Errorf("CreateParticipant(%s).TokenGen = %d, want 0", a.ID, a.TokenGen)
		}
		checkReads(t, s, "created", a)
	}
	created[0].TokenGen = 3
	updateParticipant(t, s, "token gen of p1", "p1", store.ParticipantUpdate{TokenGen: ptr(3)}, created[0])
	created[2].TokenGen = 4
	updateParticipant(t, s, "token gen of p3", "p3", store.ParticipantUpdate{TokenGen: ptr(4)}, created[2])
	for _, a := range created {
		checkReads(t, s, "after the updates", a)
	}
}

// CreateParticipant stores the token generation it is given (normally 0), as the first
// participant too.
func participantTokenGenAsGiven(t *testing.T, s store.Store) {
	first := account("p1", "ada@example.com")
	first.TokenGen = 2
	second := account("p2", "bob@example.com")
	second.TokenGen = 7
	for _, a := range []store.Account{first, second} {
		got := createParticipant(t, s, a, store.FirstBecomesOwner)
		a.Role = got.Role // the first becomes owner: not what this rule is about
		checkAccount(t, "CreateParticipant("+a.ID+")", got, a)
		checkReads(t, s, "created", a)
	}
}

// Setting the email moves the account to the new address: every read finds it there, by
// email in any case, and the old address finds nobody (and may be registered again). The
// store lower-cases what it is given, and an account may be given the email it holds, in any
// case, without conflicting with itself.
func participantUpdateEmail(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	other := createParticipant(t, s, account("p2", "bob@example.com"), store.AnyOrder)

	for _, st := range []struct{ given, stored string }{
		{"ada.lovelace@example.com", "ada.lovelace@example.com"},
		{"Countess@Example.COM", "countess@example.com"}, // a caller that forgets to lower-case
		{"countess@example.com", "countess@example.com"}, // the email it holds
		{"COUNTESS@example.com", "countess@example.com"}, // the email it holds, in another case
		{"ada@example.com", "ada@example.com"},           // the first one, given up before
	} {
		old := want.Email
		want.Email = st.stored
		what := "email " + st.given
		updateParticipant(t, s, what, "p1", store.ParticipantUpdate{Email: ptr(st.given)}, want)
		for _, email := range []string{st.stored, strings.ToUpper(st.stored), st.given} {
			got, err := s.ParticipantByEmail(ctx, email)
			if err != nil {
				t.Fatalf("after %s: ParticipantByEmail(%s): %v", what, email, err)
			}
			checkAccount(t, "after "+what+": ParticipantByEmail("+email+")", got, want)
		}
		if old != st.stored {
			for _, email := range []string{old, strings.ToUpper(old)} {
				_, err := s.ParticipantByEmail(ctx, email)
				wantCode(t, "after "+what+": ParticipantByEmail of the old "+email, err, mesh.CodeNotFound)
			}
		}
	}
	// An address given up may be registered by someone else.
	createParticipant(t, s, account("p3", "ada.lovelace@example.com"), store.AnyOrder)
	got, err := s.ParticipantByEmail(ctx, "ada.lovelace@example.com")
	if err != nil || got.ID != "p3" {
		t.Errorf("ParticipantByEmail(ada.lovelace@example.com) = %s, %v; want p3, who registered it", got.ID, err)
	}
	checkReads(t, s, "the end", want)
	checkReads(t, s, "the other participant", other)
}

// Setting the email to "" removes it: the account reads no email, its old address finds
// nobody and may be registered again, and any number of accounts have no email, however they
// came to have none.
func participantUpdateEmailRemove(t *testing.T, s store.Store) {
	ctx := t.Context()
	ada := createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	bob := createParticipant(t, s, account("p2", "bob@example.com"), store.AnyOrder)
	bot := account("bot1", "")
	bot.IsAgent, bot.Role = true, mesh.RoleAgent
	bot = createParticipant(t, s, bot, store.AnyOrder)

	ada.Email = ""
	updateParticipant(t, s, "no email for p1", "p1", store.ParticipantUpdate{Email: ptr("")}, ada)
	for _, email := range []string{"ada@example.com", "ADA@example.com", ""} {
		_, err := s.ParticipantByEmail(ctx, email)
		wantCode(t, "ParticipantByEmail("+email+") once removed", err, mesh.CodeNotFound)
	}
	// A second account with no email, and the same removal again: no conflict.
	bob.Email = ""
	updateParticipant(t, s, "no email for p2", "p2", store.ParticipantUpdate{Email: ptr("")}, bob)
	updateParticipant(t, s, "no email for p1 again", "p1", store.ParticipantUpdate{Email: ptr("")}, ada)
	bot.DisplayName = "Bot"
	updateParticipant(t, s, "no email for the bot", "bot1",
		store.ParticipantUpdate{Email: ptr(""), DisplayName: ptr("Bot")}, bot)
	_, err := s.ParticipantByEmail(ctx, "bob@example.com")
	wantCode(t, "ParticipantByEmail(bob@example.com) once removed", err, mesh.CodeNotFound)

	// The old addresses are free: new accounts register them (in another case too), and a
	// bot without email is created beside the accounts that lost theirs.
	newAda := createParticipant(t, s, account("p3", "ada@example.com"), store.AnyOrder)
	newBob := createParticipant(t, s, account("p4", "BOB@example.com"), store.AnyOrder)
	bot2 := account("bot2", "")
	bot2.IsAgent, bot2.Role = true, mesh.RoleAgent
	bot2 = createParticipant(t, s, bot2, store.AnyOrder)
	for _, a := range []store.Account{ada, bob, bot, newAda, newBob, bot2} {
		checkReads(t, s, "the end", a)
	}
	if n, err := s.CountParticipants(ctx); err != nil || n != 6 {
		t.Errorf("CountParticipants = %d, %v; want 6", n, err)
	}
	// The account that lost its email may take a new one, but not its old one, now taken.
	_, err = s.UpdateParticipant(ctx, "p1", store.ParticipantUpdate{Email: ptr("ada@example.com")})
	wantCode(t, "UpdateParticipant(p1, its old email, now p3's)", err, mesh.CodeConflict)
	ada.Email = "ada2@example.com"
	updateParticipant(t, s, "a new email for p1", "p1", store.ParticipantUpdate{Email: ptr("ada2@example.com")}, ada)
	checkReads(t, s, "the end", newAda)
}

// Setting an email another account holds, in any case, is CodeConflict, and nothing of the
// update is applied: the fields set beside the email stay as they were, and both accounts
// keep their emails. An email taken by an update conflicts like one taken at creation.
func participantUpdateEmailTaken(t *testing.T, s store.Store) {
	ctx := t.Context()
	ada := createParticipant(t, s, account("p1", "ada@example.com"), store.AnyOrder)
	bob := createParticipant(t, s, account("p2", "bob@example.com"), store.AnyOrder)

	attempt := func(email string) {
		t.Helper()
		for _, up := range []struct {
			name string
			u    store.ParticipantUpdate
		}{
			{"only the email", store.ParticipantUpdate{Email: ptr(email)}},
			{"everything", store.ParticipantUpdate{Email: ptr(email), DisplayName: ptr("x"),
				Role: ptr(mesh.RoleAdmin), Banned: ptr(true), Deactivated: ptr(true),
				PasswordHash: ptr([]byte("x")), TokenGen: ptr(9)}},
		} {
			what := fmt.Sprintf("UpdateParticipant(p2, %s: %s)", up.name, email)
			_, err := s.UpdateParticipant(ctx, "p2", up.u)
			wantCode(t, what, err, mesh.CodeConflict)
			checkReads(t, s, "after "+what, bob)
			checkReads(t, s, "after "+what+": the holder", ada)
		}
	}
	for _, email := range []string{"ada@example.com", "ADA@example.com", "Ada@Example.Com"} {
		attempt(email)
	}

	// p1 moves to a new address: that one is now taken, and the old one is free.
	ada.Email = "ada.l@example.com"
	updateParticipant(t, s, "a new email for p1", "p1", store.ParticipantUpdate{Email: ptr("ada.l@example.com")}, ada)
	for _, email := range []string{"ada.l@example.com", "ADA.L@EXAMPLE.COM"} {
		attempt(email)
	}
	_, err := s.CreateParticipant(ctx, account("p3", "Ada.L@example.com"), store.AnyOrder)
	wantCode(t, "CreateParticipant(p3, an email taken by an update)", err, mesh.CodeConflict)
	bob.Email, bob.DisplayName = "ada@example.com", "Bob, now Ada"
	updateParticipant(t, s, "p1's old email for p2", "p2",
		store.ParticipantUpdate{Email: ptr("ada@example.com"), DisplayName: ptr("Bob, now Ada")}, bob)
	checkReads(t, s, "the end", ada)
	if n, err := s.CountParticipants(ctx); err != nil || n != 2 {
		t.Errorf("CountParticipants = %d, %v; want 2", n, err)
	}
}

// Of accounts setting one email at the same moment, exactly one gets it; the others are
// CodeConflict and keep theirs.
func participantConcurrentUpdateSameEmail(t *testing.T, s store.Store) {
	ctx := t.Context()
	warmUp(t, s)
	for round := range Rounds {
		accounts := make([]store.Account, Workers)
		for i := range accounts {
			id := fmt.Sprintf("p%d-%d", round, i)
			accounts[i] = createParticipant(t, s, account(id, id+"@example.com"), store.AnyOrder)
		}
		email := fmt.Sprintf("same%d@example.com", round)
		var winner, ok, conflicts atomic.Int32
		concurrently(Workers, func(i int) {
			_, err := s.UpdateParticipant(ctx, accounts[i].ID, store.ParticipantUpdate{Email: ptr(email)})
			switch {
			case err == nil:
				ok.Add(1)
				winner.Store(int32(i))
			case mesh.IsCode(err, mesh.CodeConflict):
				conflicts.Add(1)
			default:
				t.Errorf("UpdateParticipant(%s): %v", accounts[i].ID, err)
			}
		})
		if ok.Load() != 1 || conflicts.Load() != Workers-1 {
			t.Fatalf("round %d: %d updated, %d conflicts; want 1 and %d", round, ok.Load(), conflicts.Load(), Workers-1)
		}
		w := accounts[winner.Load()]
		w.Email = email
		accounts[winner.Load()] = w
		got, err := s.ParticipantByEmail(ctx, email)
		if err != nil {
			t.Fatalf("round %d: ParticipantByEmail(%s): %v", round, email, err)
		}
		checkAccount(t, fmt.Sprintf("round %d: ParticipantByEmail(%s)", round, email), got, w)
		ids := make([]string, len(accounts))
		for i, a := range accounts {
			ids[i] = a.ID
		}
		stored, err := s.ParticipantsByIDs(ctx, ids)
		if err != nil || len(stored) != len(accounts) {
			t.Fatalf("round %d: ParticipantsByIDs = %d accounts, %v; want %d", round, len(stored), err, len(accounts))
		}
		for _, a := range stored {
			i := slices.IndexFunc(accounts, func(b store.Account) bool { return b.ID == a.ID })
			checkAccount(t, fmt.Sprintf("round %d: ParticipantsByIDs: %s", round, a.ID), a, accounts[i])
		}
	}
}

func participantAnyOrder(t *testing.T, s store.Store) {
	first := createParticipant(t, s, account("p1", "p1@example.com"), store.AnyOrder)
	if first.Role != mesh.RoleMember {
		t.Errorf("AnyOrder: the first participant's role = %q, want it unchanged (member)", first.Role)
	}
	// Someone exists now: FirstBecomesOwner does not make an owner.
	second := createParticipant(t, s, account("p2", "p2@example.com"), store.FirstBecomesOwner)
	if second.Role != mesh.RoleMember {
		t.Errorf("FirstBecomesOwner after AnyOrder: role = %q, want member", second.Role)
	}
}

func participantFirstBecomesOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := createParticipant(t, s, account("p1", "p1@example.com"), store.FirstBecomesOwner)
	if first.Role != mesh.RoleOwner {
		t.Errorf("first participant: role = %q, want owner", first.Role)
	}
	stored, err := s.ParticipantByID(ctx, "p1")
	if err != nil || stored.Role != mesh.RoleOwner {
		t.Errorf("stored first participant: role = %q, %v; want owner", stored.Role, err)
	}
	second := createParticipant(t, s, account("p2", "p2@example.com"), store.FirstBecomesOwner)
	if second.Role != mesh.RoleMember {
		t.Errorf("second participant: role = %q, want member", second.Role)
	}
}

func participantOnlyFirst(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := createParticipant(t, s, account("p1", "p1@example.com"), store.OnlyFirst)
	if first.Role != mesh.RoleOwner {
		t.Errorf("OnlyFirst on an empty mesh: role = %q, want owner", first.Role)
	}
	_, err := s.CreateParticipant(ctx, account("p2", "p2@example.com"), store.OnlyFirst)
	wantCode(t, "OnlyFirst once someone exists", err, mesh.CodeConflict)
	_, err = s.ParticipantByID(ctx, "p2")
	wantCode(t, "ParticipantByID of the refused participant", err, mesh.CodeNotFound)
	if n, err := s.CountParticipants(ctx); err != nil || n != 1 {
		t.Errorf("CountParticipants = %d, %v; want 1", n, err)
	}
}

func participantConcurrentFirstBecomesOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	warmUp(t, s)
	var owners atomic.Int32
	concurrently(Workers, func(i int) {
		id := fmt.Sprintf("p%d", i)
		a, err := s.CreateParticipant(ctx, account(id, id+"@example.com"), store.FirstBecomesOwner)
		if err != nil {
			t.Errorf("CreateParticipant(%s): %v", id, err)
			return
		}
		if a.Role == mesh.RoleOwner {
			owners.Add(1)
		}
	})
	if n := owners.Load(); n != 1 {
		t.Errorf("%d registrations returned owner, want exactly 1", n)
	}
	ids := make([]string, Workers)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%d", i)
	}
	all, err := s.ParticipantsByIDs(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, a := range all {
		if a.Role == mesh.RoleOwner {
			stored++
		}
	}
	if len(all) != Workers || stored != 1 {
		t.Errorf("stored: %d participants, %d owners; want %d and 1", len(all), stored, Workers)
	}
}

func participantConcurrentOnlyFirst(t *testing.T, s store.Store) {
	ctx := t.Context()
	warmUp(t, s)
	var ok, conflicts atomic.Int32
	concurrently(Workers, func(i int) {
		id := fmt.Sprintf("p%d", i)
		a, err := s.CreateParticipant(ctx, account(id, id+"@example.com"), store.OnlyFirst)
		switch {
		case err == nil && a.Role == mesh.RoleOwner:
			ok.Add(1)
		case mesh.IsCode(err, mesh.CodeConflict):
			conflicts.Add(1)
		default:
			t.Errorf("CreateParticipant(%s, OnlyFirst) = role %q, %v", id, a.Role, err)
		}
	})
	if ok.Load() != 1 || conflicts.Load() != Workers-1 {
		t.Errorf("OnlyFirst: %d owners, %d conflicts; want 1 and %d", ok.Load(), conflicts.Load(), Workers-1)
	}
	if n, err := s.CountParticipants(ctx); err != nil || n != 1 {
		t.Errorf("CountParticipants = %d, %v; want 1", n, err)
	}
}

func participantConcurrentSameEmail(t *testing.T, s store.Store) {
	ctx := t.Context()
	warmUp(t, s)
	for round := range Rounds {
		var ok, conflicts atomic.Int32
		email := fmt.Sprintf("same%d@example.com", round)
		concurrently(Workers, func(i int) {
			id := fmt.Sprintf("p%d-%d", round, i)
			_, err := s.CreateParticipant(ctx, account(id, email), store.AnyOrder)
			switch {
			case err == nil:
				ok.Add(1)
			case mesh.IsCode(err, mesh.CodeConflict):
				conflicts.Add(1)
			default:
				t.Errorf("CreateParticipant(%s): %v", id, err)
			}
		})
		if ok.Load() != 1 || conflicts.Load() != Workers-1 {
			t.Errorf("round %d: %d created, %d conflicts; want 1 and %d", round, ok.Load(), conflicts.Load(), Workers-1)
		}
	}
	if n, err := s.CountParticipants(ctx); err != nil || n != Rounds {
		t.Errorf("CountParticipants = %d, %v; want %d", n, err, Rounds)
	}
}

// ListParticipants pages through every account in id order.
func participantList(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := []string{"p1", "p2", "p3", "p4", "p5"}
	for _, id := range []string{"p3", "p1", "p5", "p2", "p4"} {
		createParticipant(t, s, account(id, id+"@example.com"), store.AnyOrder)
	}
	var got []string
	after := ""
	for range 10 {
		page, err := s.ListParticipants(ctx, after, 2)
		if err != nil {
			t.Fatalf("ListParticipants: %v", err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, limit 2", len(page))
		}
		for _, a := range page {
			got = append(got, a.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if all, err := s.ListParticipants(ctx, "", 0); err != nil || len(all) != 5 || all[0].Email != "p1@example.com" {
		t.Fatalf("ListParticipants with the default limit = %d, %v", len(all), err)
	}
}

// findParticipants calls FindParticipants, and checks what every answer must be: a slice
// (never nil, as ListParticipants answers), in id order, after the cursor, within the limit.
func findParticipants(t *testing.T, s store.Store, text, after string, limit int) []store.Account {
	t.Helper()
	accs, err := s.FindParticipants(t.Context(), text, after, limit)
	if err != nil {
		t.Fatalf("FindParticipants(%q, %q, %d): %v", text, after, limit, err)
	}
	if accs == nil {
		t.Errorf("FindParticipants(%q, %q, %d) = nil, want a slice", text, after, limit)
	}
	most := limit
	if most <= 0 {
		most = mesh.DefaultListLimit
	}
	if len(accs) > most {
		t.Errorf("FindParticipants(%q, %q, %d) = %d accounts, want at most %d", text, after, limit, len(accs), most)
	}
	prev := after
	for _, a := range accs {
		if a.ID <= prev {
			t.Errorf("FindParticipants(%q, %q, %d) = %v, want ids in order after %q",
				text, after, limit, accountIDs(accs), after)
			break
		}
		prev = a.ID
	}
	return accs
}

func accountIDs(accs []store.Account) []string {
	out := make([]string, len(accs))
	for i, a := range accs {
		out[i] = a.ID
	}
	return out
}

// FindParticipants matches display names as SearchMessages matches contents: literally, and
// case-insensitively beyond ASCII (searchTextCases). The accounts are created out of id order,
// and are found in id order.
func participantFindText(t *testing.T, s store.Store) {
	names := map[string]string{} // id to display name
	for i, name := range searchTexts {
		names[fmt.Sprintf("f%02d", i)] = name
	}
	for i := range searchTexts {
		id := fmt.Sprintf("f%02d", len(searchTexts)-1-i)
		a := account(id, id+"@example.com")
		a.DisplayName = names[id]
		createParticipant(t, s, a, store.AnyOrder)
	}
	for _, tc := range searchTextCases {
		want := []string{}
		for i, name := range searchTexts {
			if slices.Contains(tc.want, name) {
				want = append(want, fmt.Sprintf("f%02d", i))
			}
		}
		got := findParticipants(t, s, tc.text, "", 0)
		wantEqual(t, fmt.Sprintf("FindParticipants(%q)", tc.text), accountIDs(got), want)
	}
	// The text is found anywhere in the name: at its start, inside it, at its end, or whole.
	for text, want := range map[string][]string{
		"50": {"f00", "f01"}, "0 O": {"f01"}, "OFF": {"f00", "f01"}, "50% off": {"f00"},
		"SLASH": {"f06"}, "1]": {"f09"}, "ß": {"f13", "f14"},
	} {
		wantEqual(t, fmt.Sprintf("FindParticipants(%q)", text), accountIDs(findParticipants(t, s, text, "", 0)), want)
	}
}

// FindParticipants finds every kind of account, whole: banned and deactivated ones (the caller
// filters), and bots without an email. It looks at display names only (not at emails), and at
// the names as they are now.
func participantFindEveryAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	human := account("p1", "ada@example.com")
	human.DisplayName = "Ada Lovelace"
	banned := account("p2", "lady@example.com")
	banned.DisplayName, banned.Banned = "lady ADA", true
	bot := account("p3", "")
	bot.DisplayName, bot.IsAgent, bot.Role = "ADAbot", true, mesh.RoleAgent
	bot.OwnerID, bot.DID, bot.Status = ptr("p1"), ptr("did:key:z6MkBot"), mesh.StatusOnline
	gone := account("p4", "gone@example.com")
	gone.DisplayName, gone.Deactivated, gone.TokenGen = "Nada", true, 3
	other := account("p5", "ada.fan@example.com")
	other.DisplayName = "Grace Hopper"
	for _, a := range []store.Account{gone, other, bot, human, banned} {
		createParticipant(t, s, a, store.AnyOrder)
	}
	got := findParticipants(t, s, "ada", "", 0)
	want := []store.Account{human, banned, bot, gone}
	if len(got) != len(want) {
		t.Fatalf("FindParticipants(ada) = %v, want %v", accountIDs(got), accountIDs(want))
	}
	for i := range want {
		checkAccount(t, "FindParticipants(ada): "+want[i].ID, got[i], want[i])
	}
	wantEqual(t, "FindParticipants(example) (emails are not searched)",
		accountIDs(findParticipants(t, s, "example", "", 0)), []string{})

	if _, err := s.UpdateParticipant(ctx, "p5", store.ParticipantUpdate{DisplayName: ptr("Grace Adams")}); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "FindParticipants(ada) after a rename",
		accountIDs(findParticipants(t, s, "ada", "", 0)), []string{"p1", "p2", "p3", "p4", "p5"})
	wantEqual(t, "FindParticipants(hopper) after a rename",
		accountIDs(findParticipants(t, s, "hopper", "", 0)), []string{})
}

// An empty text finds none (though every name contains it), and so does a text no name
// contains: an empty slice.
func participantFindNothing(t *testing.T, s store.Store) {
	wantEqual(t, "FindParticipants on no accounts", accountIDs(findParticipants(t, s, "ada", "", 0)), []string{})
	for _, id := range []string{"p1", "p2", "p3"} {
		createParticipant(t, s, account(id, id+"@example.com"), store.AnyOrder) // "Name of p1", ...
	}
	for _, tc := range []struct{ text, after string }{
		{"", ""}, {"", "p1"}, {"nobody", ""}, {"name of p4", ""}, {"of p", "p3"}, {"of p", "q"},
	} {
		wantEqual(t, fmt.Sprintf("FindParticipants(%q, after %q)", tc.text, tc.after),
			accountIDs(findParticipants(t, s, tc.text, tc.after, 0)), []string{})
	}
	wantEqual(t, "FindParticipants(of p)", accountIDs(findParticipants(t, s, "of p", "", 0)),
		[]string{"p1", "p2", "p3"})
}

// Paging with after (the last id of the previous page) covers every match once, in id order;
// the cursor is a position, which need not be a match, nor an account.
func participantFindPages(t *testing.T, s store.Store) {
	others := []string{"p0", "p4", "p6", "p7"}
	for _, id := range []string{"p7", "p2", "p9", "p4", "p1", "p8", "p5", "p3", "p6", "p0"} {
		a := account(id, id+"@example.com")
		if !slices.Contains(others, id) {
			a.DisplayName = "Match " + id
		}
		createParticipant(t, s, a, store.AnyOrder)
	}
	want := []string{"p1", "p2", "p3", "p5", "p8", "p9"}
	for _, limit := range []int{1, 2, 3, 6, 7} {
		var got []string
		after := ""
		for range 10 {
			page := findParticipants(t, s, "MATCH", after, limit)
			got = append(got, accountIDs(page)...)
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].ID
		}
		wantEqual(t, fmt.Sprintf("pages of %d", limit), got, want)
	}
	for after, want := range map[string][]string{
		"p5":  {"p8", "p9"}, // p6 and p7 do not match
		"p6":  {"p8", "p9"}, // a cursor that is no match
		"p":   {"p1", "p2", "p3", "p5", "p8", "p9"},
		"p4x": {"p5", "p8", "p9"}, // a cursor that is no account
		"p9":  {},
	} {
		wantEqual(t, fmt.Sprintf("FindParticipants(match, after %q)", after),
			accountIDs(findParticipants(t, s, "match", after, 0)), want)
	}
}

// Limit 0 is mesh.DefaultListLimit. Like ListParticipants, FindParticipants applies no
// maximum: a caller may ask for one more than its largest page, to learn whether another page
// follows.
func participantFindLimit(t *testing.T, s store.Store) {
	const n = mesh.MaxListLimit + 2
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("p%04d", i)
		a := account(want[i], "")
		a.DisplayName = "Bot " + want[i]
		createParticipant(t, s, a, store.AnyOrder)
		if i%50 == 0 {
			a := account(fmt.Sprintf("p%04dx", i), "")
			a.DisplayName = "someone else"
			createParticipant(t, s, a, store.AnyOrder)
		}
	}
	for _, tc := range []struct{ limit, want int }{
		{0, mesh.DefaultListLimit}, {1, 1}, {mesh.DefaultListLimit + 1, mesh.DefaultListLimit + 1},
		{mesh.MaxListLimit + 1, mesh.MaxListLimit + 1}, {n + 10, n},
	} {
		got := findParticipants(t, s, "bot", "", tc.limit)
		wantEqual(t, fmt.Sprintf("FindParticipants(bot, limit %d)", tc.limit), accountIDs(got), want[:tc.want])
	}
}
