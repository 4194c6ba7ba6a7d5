package importer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite", pure Go (CGO stays off)
)

// Dialect is the kind of database a source is.
type Dialect string

// The dialects a source may be.
const (
	SQLite     Dialect = "sqlite"
	MySQL      Dialect = "mysql"
	PostgreSQL Dialect = "postgres"
)

// Source is a parsed -from value.
type Source struct {
	Dialect Dialect
	// Name identifies the deployment without its credentials: what each
	// imported user's meta item records (sqlite:<absolute path>,
	// mysql://host:port/db, postgres://host:port/db).
	Name string
	// driver and dsn open it through database/sql.
	driver, dsn string
}

// ParseSource reads a -from value: sqlite:<path>,
// mysql://user:pass@host:port/db or postgres://user:pass@host:port/db
// (postgresql:// too; query parameters such as sslmode are passed to the
// driver).
func ParseSource(s string) (Source, error) {
	switch {
	case strings.HasPrefix(s, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(s, "sqlite:"), "//")
		if path == "" {
			return Source{}, errors.New("source: sqlite:<path> needs a path")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return Source{}, fmt.Errorf("source: %w", err)
		}
		// Read only: the import never writes to the old gateway's database,
		// which may still be serving.
		dsn := (&url.URL{Scheme: "file", Opaque: abs, RawQuery: "mode=ro&_pragma=busy_timeout(10000)"}).String()
		return Source{Dialect: SQLite, Name: "sqlite:" + abs, driver: "sqlite", dsn: dsn}, nil
	case strings.HasPrefix(s, "mysql://"):
		u, err := url.Parse(s)
		if err != nil {
			return Source{}, fmt.Errorf("source: %w", redact(err))
		}
		db := strings.TrimPrefix(u.Path, "/")
		if u.Host == "" || db == "" {
			return Source{}, errors.New("source: mysql://user:pass@host:port/db needs a host and a database")
		}
		cfg := mysql.NewConfig()
		cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, db
		if u.Port() == "" {
			cfg.Addr = u.Host + ":3306"
		}
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		for k, v := range u.Query() {
			if cfg.Params == nil {
				cfg.Params = map[string]string{}
			}
			cfg.Params[k] = v[0]
		}
		return Source{Dialect: MySQL, Name: "mysql://" + cfg.Addr + "/" + db, driver: "mysql", dsn: cfg.FormatDSN()}, nil
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		u, err := url.Parse(s)
		if err != nil {
			return Source{}, fmt.Errorf("source: %w", redact(err))
		}
		db := strings.TrimPrefix(u.Path, "/")
		if u.Host == "" || db == "" {
			return Source{}, errors.New("source: postgres://user:pass@host:port/db needs a host and a database")
		}
		host := u.Host
		if u.Port() == "" {
			host += ":5432"
		}
		return Source{Dialect: PostgreSQL, Name: "postgres://" + host + "/" + db, driver: "pgx", dsn: s}, nil
	}
	return Source{}, errors.New("source: -from must be sqlite:<path>, mysql://user:pass@host:port/db or postgres://user:pass@host:port/db")
}

// redact drops the URL from a url.Error, which may hold a password.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Open connects to the source and checks that it answers.
func (s Source) Open(ctx context.Context) (*sql.DB, error) {
	db, err := sql.Open(s.driver, s.dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.Name, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", s.Name, err)
	}
	return db, nil
}

// quote quotes an identifier for the dialect: key and group are reserved
// words in MySQL and PostgreSQL.
func (d Dialect) quote(name string) string {
	if d == MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}
