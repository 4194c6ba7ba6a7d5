package importer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llmgw/token-service/internal/token"
	"github.com/llmgw/token-service/internal/token/dynamo"
)

// Writer writes one user (dynamo.Importer).
type Writer interface {
	ImportUser(ctx context.Context, u dynamo.ImportUser, dryRun bool) (dynamo.ImportResult, error)
}

var _ Writer = (*dynamo.Importer)(nil)

// Options are an import's flags.
type Options struct {
	// SourceName is recorded on each imported user (Source.Name).
	SourceName string
	Dialect    Dialect
	// UserPrefix, AllowedGroups and AccessTokens: -user-prefix,
	// -allowed-groups, -access-tokens.
	UserPrefix    string
	AllowedGroups []string
	AccessTokens  bool
	DryRun        bool
	// MaxTokensPerUser is the deployment's limit, which the import does not
	// enforce but reports (0: token.DefaultMaxTokensPerUser).
	MaxTokensPerUser int
	// Parallel is how many users are written at once (default 8).
	Parallel int
	Now      func() time.Time
}

// Run imports the source behind db into w and reports what it did. Rows
// that are refused, skipped or collide are reported and never stop the
// others; a user whose write fails is reported too, and Run's error then
// says how many failed (run it again: it is idempotent). Only a failure to
// read the source stops it.
func Run(ctx context.Context, db *sql.DB, w Writer, o Options) (*Report, error) {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxTokensPerUser <= 0 {
		o.MaxTokensPerUser = token.DefaultMaxTokensPerUser
	}
	if o.SourceName == "" {
		return nil, errors.New("import: no source name")
	}
	if o.UserPrefix != "" {
		// The prefix must leave room for a source id in a valid user id.
		if err := CheckUserPrefix(o.UserPrefix); err != nil {
			return nil, err
		}
	}
	r, err := NewReader(ctx, db, o.Dialect)
	if err != nil {
		return nil, err
	}
	rules := Rules{Schema: r.Schema(), UserPrefix: o.UserPrefix, Groups: token.Rules{AllowedGroups: o.AllowedGroups},
		AccessTokens: o.AccessTokens, Now: o.Now()}
	rep := &Report{Source: o.SourceName, Schema: r.Schema(), DryRun: o.DryRun, maxTokens: o.MaxTokensPerUser}

	users, ids, err := r.Users(ctx)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan userJob)
	var wg sync.WaitGroup
	for range o.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				res, err := w.ImportUser(ctx, j.user, o.DryRun)
				rep.addUser(j, res, err)
			}
		}()
	}

	// Users and their tokens are joined in user id order: every user
	// becomes one job, with or without tokens.
	next := 0 // index into ids of the next user to hand out
	var cur *userJob
	flush := func() {
		if cur != nil {
			jobs <- *cur
			cur = nil
		}
	}
	startUser := func(id int64) {
		flush()
		src := users[id]
		plan := rules.User(src)
		if plan.Skip != "" {
			rep.skipUser(id, plan.Skip)
			cur = nil
			return
		}
		cur = &userJob{sourceID: id, plan: plan, user: dynamo.ImportUser{
			UserID: plan.UserID, Source: o.SourceName, Disabled: plan.Disabled, AccessTokenHash: plan.AccessTokenHash,
		}}
	}
	// upTo hands out the users before id, and starts id's when it is one.
	var last int64 = -1 << 63
	upTo := func(id int64) {
		for next < len(ids) && ids[next] <= id {
			startUser(ids[next])
			last = ids[next]
			next++
		}
	}
	readErr := r.Tokens(ctx, func(t SourceToken) error {
		if t.UserID != last || cur == nil {
			upTo(t.UserID)
		}
		rep.read()
		switch {
		case t.Deleted:
			rep.skipToken(t, "token deleted in the source (deleted_at set)")
			return nil
		case t.UserID != last:
			rep.skipToken(t, "its user is missing from users")
			return nil
		case cur == nil || cur.sourceID != t.UserID:
			rep.skipToken(t, "its user is deleted in the source")
			return nil
		}
		p := rules.Token(t)
		if p.Refused != "" {
			rep.refuseToken(t, p.Refused)
			return nil
		}
		if n := len(cur.user.Tokens); n > 0 && cur.user.Tokens[n-1].SourceID == p.Token.SourceID {
			rep.refuseToken(t, "duplicate token id in the source")
			return nil
		}
		cur.user.Tokens = append(cur.user.Tokens, p.Token)
		cur.notes = append(cur.notes, p.Notes)
		return ctx.Err()
	})
	if readErr == nil {
		upTo(1<<63 - 1)
		flush()
	}
	close(jobs)
	wg.Wait()
	if readErr != nil {
		return rep, readErr
	}
	rep.finish()
	if rep.Failed > 0 {
		return rep, fmt.Errorf("import: %d users failed to write (see the report); running the import again retries them", rep.Failed)
	}
	return rep, nil
}

// CheckUserPrefix accepts a -user-prefix that can start a user id.
func CheckUserPrefix(prefix string) error {
	for _, c := range prefix {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '@' || c == '-'
		if !ok {
			return fmt.Errorf("import: -user-prefix may hold only letters, digits, _ . @ -")
		}
	}
	if len(prefix) > 40 {
		return fmt.Errorf("import: -user-prefix is longer than 40 characters")
	}
	return nil
}

// userJob is one user handed to a writer.
type userJob struct {
	sourceID int64
	plan     UserPlan
	user     dynamo.ImportUser
	// notes are the rules' notes of each token of user.Tokens.
	notes [][]Note
}

// Report is what an import did (or, dry, would do).
type Report struct {
	Source string
	Schema Schema
	DryRun bool

	// Users: imported (new or rerun), of which disabled; refused (an id
	// that exists here from elsewhere); skipped (deleted in the source);
	// above the per-user token limit after the import; failed to write.
	UsersImported, UsersDisabled, UsersRefused, UsersSkipped, UsersAboveLimit, Failed int
	// Tokens: rows read; imported (renumbered among them); already imported
	// by an earlier run; skipped; refused.
	Read, Imported, Renumbered, Already, Skipped, Refused int
	// Notes counts the imported rows changed by a rule, by kind.
	Notes map[NoteKind]int
	// Access tokens imported, imported earlier, refused.
	AccessImported, AccessAlready, AccessRefused int
	// Entries are the rows and users worth a line: every refusal, skip,
	// renumbering and change, with why. Never a key or an access token.
	Entries []Entry

	mu        sync.Mutex
	maxTokens int
}

// Entry is one line of the report.
type Entry struct {
	Kind string
	// SourceUser and SourceToken are the source's ids (SourceToken 0 for a
	// user's line); ID is the token's id here, when it has one.
	SourceUser, SourceToken, ID int64
	Why                         string
}

func (r *Report) read() {
	r.mu.Lock()
	r.Read++
	r.mu.Unlock()
}

func (r *Report) add(e Entry) { r.Entries = append(r.Entries, e) }

func (r *Report) skipUser(id int64, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.UsersSkipped++
	r.add(Entry{Kind: "user skipped", SourceUser: id, Why: why})
}

func (r *Report) skipToken(t SourceToken, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Skipped++
	r.add(Entry{Kind: "skipped", SourceUser: t.UserID, SourceToken: t.ID, Why: why})
}

func (r *Report) refuseToken(t SourceToken, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Refused++
	r.add(Entry{Kind: "refused", SourceUser: t.UserID, SourceToken: t.ID, Why: why})
}

// addUser records what the writer did with job.
func (r *Report) addUser(j userJob, res dynamo.ImportResult, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Notes == nil {
		r.Notes = map[NoteKind]int{}
	}
	for _, n := range j.plan.Notes {
		r.add(Entry{Kind: "user", SourceUser: j.sourceID, Why: n})
		if strings.HasPrefix(n, "access token refused") {
			r.AccessRefused++
		}
	}
	if err != nil {
		r.Failed++
		r.add(Entry{Kind: "failed", SourceUser: j.sourceID, Why: err.Error()})
		return
	}
	if res.Refused != "" {
		r.UsersRefused++
		r.Refused += len(j.user.Tokens)
		r.add(Entry{Kind: "user refused", SourceUser: j.sourceID, Why: fmt.Sprintf("%s: %d tokens not imported; -user-prefix makes the ids distinct", res.Refused, len(j.user.Tokens))})
		return
	}
	r.UsersImported++
	if j.user.Disabled {
		r.UsersDisabled++
	}
	if res.TokenCount > r.maxTokens {
		r.UsersAboveLimit++
		r.add(Entry{Kind: "above limit", SourceUser: j.sourceID,
			Why: fmt.Sprintf("%d tokens, above the per-user limit of %d: the user can create none until under it", res.TokenCount, r.maxTokens)})
	}
	switch res.Access {
	case dynamo.AccessWritten:
		r.AccessImported++
	case dynamo.AccessAlready:
		r.AccessAlready++
	case dynamo.AccessTaken:
		r.AccessRefused++
		r.add(Entry{Kind: "user", SourceUser: j.sourceID, Why: "access token refused: it is another user's here already"})
	}
	for i, t := range res.Tokens {
		switch t.Outcome {
		case dynamo.ImportAlready:
			r.Already++
			continue
		case dynamo.ImportKeyTaken:
			r.Refused++
			r.add(Entry{Kind: "refused", SourceUser: j.sourceID, SourceToken: t.SourceID, Why: "the key exists here already for another token"})
			continue
		case dynamo.ImportRenumbered:
			r.Renumbered++
			r.add(Entry{Kind: "renumbered", SourceUser: j.sourceID, SourceToken: t.SourceID, ID: t.ID,
				Why: fmt.Sprintf("id %d is used here: imported as %d", t.SourceID, t.ID)})
		}
		r.Imported++
		for _, n := range j.notes[i] {
			r.Notes[n.Kind]++
			r.add(Entry{Kind: string(n.Kind), SourceUser: j.sourceID, SourceToken: t.SourceID, ID: t.ID, Why: n.Text})
		}
	}
}

// finish orders the entries.
func (r *Report) finish() {
	slices.SortStableFunc(r.Entries, func(a, b Entry) int {
		if a.SourceUser != b.SourceUser {
			return cmpInt(a.SourceUser, b.SourceUser)
		}
		return cmpInt(a.SourceToken, b.SourceToken)
	})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Print writes the report: the counts, then one line per entry.
func (r *Report) Print(w io.Writer) {
	verb := "imported"
	if r.DryRun {
		verb = "would import"
		fmt.Fprintf(w, "dry run: nothing written\n")
	}
	fmt.Fprintf(w, "source %s (%s schema)\n", r.Source, r.Schema)
	fmt.Fprintf(w, "users: %d %s (%d disabled), %d refused, %d skipped, %d above the token limit, %d failed\n",
		r.UsersImported, verb, r.UsersDisabled, r.UsersRefused, r.UsersSkipped, r.UsersAboveLimit, r.Failed)
	fmt.Fprintf(w, "tokens: %d read, %d %s (%d renumbered), %d imported before, %d skipped, %d refused\n",
		r.Read, r.Imported, verb, r.Renumbered, r.Already, r.Skipped, r.Refused)
	kinds := make([]string, 0, len(r.Notes))
	for k, n := range r.Notes {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(kinds)
	if len(kinds) > 0 {
		fmt.Fprintf(w, "changed by a rule: %s\n", strings.Join(kinds, ", "))
	}
	fmt.Fprintf(w, "access tokens: %d %s, %d imported before, %d refused\n", r.AccessImported, verb, r.AccessAlready, r.AccessRefused)
	if r.Imported == 0 && r.AccessImported == 0 && r.Already > 0 && r.Failed == 0 {
		fmt.Fprintf(w, "nothing new: every row was imported by an earlier run (or is refused or skipped again, below)\n")
	}
	for _, e := range r.Entries {
		switch {
		case e.SourceToken == 0:
			fmt.Fprintf(w, "  %-14s user %d: %s\n", e.Kind, e.SourceUser, e.Why)
		default:
			fmt.Fprintf(w, "  %-14s user %d token %d: %s\n", e.Kind, e.SourceUser, e.SourceToken, e.Why)
		}
	}
}
