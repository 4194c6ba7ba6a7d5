//go:build linux

// Package dbserver starts throwaway MariaDB and PostgreSQL servers for
// tests, from Debian's packages (`make databases` installs them): each in
// its own temporary folder, on a free loopback port, as an unprivileged
// user where the server insists (PostgreSQL refuses root; MariaDB is told
// --user=root when run as root). A test binary shares one server of each
// kind (Shared) and stops it when its tests end (Stop, from TestMain).
package dbserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// Server is a running database server.
type Server struct {
	// Kind is "mysql" or "postgres"; Port its loopback port.
	Kind string
	Port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// URL returns the importer's -from value for database db on s.
func (s *Server) URL(db string) string {
	if s.Kind == "mysql" {
		return fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", s.Port, db)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// admin opens the server's administrative database.
func (s *Server) admin() (*sql.DB, error) {
	if s.Kind == "mysql" {
		return sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", s.Port))
	}
	return sql.Open("pgx", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port))
}

// CreateDatabase makes an empty database named db and returns it open.
func (s *Server) CreateDatabase(ctx context.Context, db string) (*sql.DB, error) {
	a, err := s.admin()
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if _, err := a.ExecContext(ctx, "CREATE DATABASE "+db); err != nil {
		return nil, fmt.Errorf("create database %s: %w", db, err)
	}
	if s.Kind == "mysql" {
		return sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", s.Port, db))
	}
	return sql.Open("pgx", s.URL(db))
}

// Stop ends the server and removes its folder.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	_ = os.RemoveAll(s.dir)
}

var (
	mu     sync.Mutex
	shared = map[string]*Server{}
	errs   = map[string]error{}
)

// Shared returns the test binary's server of kind ("mysql" or
// "postgres"), starting it on first use.
func Shared(kind string) (*Server, error) {
	mu.Lock()
	defer mu.Unlock()
	if s, ok := shared[kind]; ok {
		return s, nil
	}
	if err, ok := errs[kind]; ok {
		return nil, err
	}
	var s *Server
	var err error
	switch kind {
	case "mysql":
		s, err = startMariaDB()
	case "postgres":
		s, err = startPostgres()
	default:
		err = fmt.Errorf("dbserver: unknown kind %q", kind)
	}
	if err != nil {
		errs[kind] = err
		return nil, err
	}
	shared[kind] = s
	return s, nil
}

// Stop stops every shared server.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	for k, s := range shared {
		s.Stop()
		delete(shared, k)
	}
}

// freePort returns a loopback port nothing listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tempDir makes a folder others may enter (the server's user may not be
// this one).
func tempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

func startMariaDB() (*Server, error) {
	mysqld, err := exec.LookPath("mariadbd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mariadbd"); serr != nil {
			return nil, errors.New("dbserver: mariadbd not found: make databases (apt-get install mariadb-server)")
		}
		mysqld = "/usr/sbin/mariadbd"
	}
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		return nil, errors.New("dbserver: mariadb-install-db not found: make databases (apt-get install mariadb-server)")
	}
	dir, err := tempDir("mariadb-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	var asUser []string
	if os.Geteuid() == 0 {
		asUser = []string{"--user=root"}
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}, asUser...)
	if out, err := exec.Command(install, args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("dbserver: mariadb-install-db: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Kind: "mysql", Port: port, dir: dir}
	args = append([]string{"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(dir, "mysqld.sock"), "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(dir, "error.log"), "--skip-grant-tables", "--skip-name-resolve",
		"--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0", "--character-set-server=utf8mb4"}, asUser...)
	if err := s.start(mysqld, args, nil); err != nil {
		return nil, err
	}
	return s, nil
}

func startPostgres() (*Server, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var bin string
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(b, "postgres")); err == nil {
			bin = b
		}
	}
	if bin == "" {
		return nil, errors.New("dbserver: postgres not found under /usr/lib/postgresql: make databases (apt-get install postgresql)")
	}
	dir, err := tempDir("postgres-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	// PostgreSQL refuses to run as root: as root, run it as an
	// unprivileged user that owns its folder.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			return nil, fmt.Errorf("dbserver: no unprivileged user to run postgres as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, p := range []string{dir, data} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("dbserver: initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Kind: "postgres", Port: port, dir: dir}
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"}
	if err := s.start(filepath.Join(bin, "postgres"), args, cred); err != nil {
		return nil, err
	}
	return s, nil
}

// start runs the server and waits until it answers (a minute at most).
func (s *Server) start(path string, args []string, cred *syscall.Credential) error {
	log, err := os.Create(filepath.Join(s.dir, "server.log"))
	if err != nil {
		return err
	}
	s.cmd = exec.Command(path, args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("dbserver: start %s: %w", path, err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); log.Close(); close(s.done) }()
	db, err := s.admin()
	if err != nil {
		s.Stop()
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			out, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			s.Stop()
			return fmt.Errorf("dbserver: %s exited: %s", path, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("dbserver: %s did not answer within a minute: %w", path, err)
		}
	}
}
