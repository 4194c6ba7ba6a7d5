// Package console serves the Tokens web console: GET / answers the page
// (index.html) and GET /assets/{file} the files it loads, from an fs.FS
// (web.Console, embedded in the function's binary). Every answer carries a
// strict Content-Security-Policy (no inline script or style, requests only
// to the page's own origin) and nosniff; the page is never cached, the
// assets briefly and revalidated by ETag.
package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// Security headers on every answer.
const (
	// ContentSecurityPolicy allows scripts, styles, images, fonts and
	// requests from the page's own origin only: no inline script, no
	// eval, no inline style attribute, no framing.
	ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	// AssetCacheControl lets a browser keep an asset five minutes, then
	// revalidate it (ETag): asset names carry no version.
	AssetCacheControl = "public, max-age=300"
	// IndexCacheControl makes the browser revalidate the page every time.
	IndexCacheControl = "no-cache"
)

// AssetPrefix is the URL path under which the files are served.
const AssetPrefix = "/assets/"

// contentTypes maps the extensions the console uses to their types; a file
// of another extension is not served.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

// ContentType returns the Content-Type of a file name by its extension, or
// "" for an extension the console does not serve.
func ContentType(name string) string {
	return contentTypes[strings.ToLower(path.Ext(name))]
}

// Handler serves files: "index.html" at / and every other file at
// /assets/<name>.
type Handler struct {
	files fs.FS

	mu    sync.Mutex
	cache map[string]file // by name; the tree never changes
}

type file struct {
	body []byte
	etag string
}

// New returns the handler of the file tree files.
func New(files fs.FS) *Handler {
	return &Handler{files: files, cache: map[string]file{}}
}

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("404 not found\n"))
}

// ServeHTTP answers GET and HEAD of / and /assets/<name>; anything else is
// 404 (405 for another method).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	name, cacheControl, ok := fileName(r.URL.Path)
	if !ok {
		notFound(w)
		return
	}
	f, ok := h.open(name)
	if !ok {
		notFound(w)
		return
	}
	w.Header().Set("Content-Type", ContentType(name))
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304 and HEAD without a body.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// fileName maps a URL path to a file name of the tree and its
// Cache-Control. Only "/" and "/assets/<valid name with a served
// extension>" map: no "..", no "." or empty element, no backslash, no
// leading slash (fs.ValidPath), so nothing outside the tree is reachable.
func fileName(urlPath string) (name, cacheControl string, ok bool) {
	if urlPath == "/" || urlPath == "" {
		return "index.html", IndexCacheControl, true
	}
	rest, found := strings.CutPrefix(urlPath, AssetPrefix)
	if !found || !fs.ValidPath(rest) || rest == "." || strings.ContainsAny(rest, "\\\x00") ||
		ContentType(rest) == "" || rest == "index.html" {
		return "", "", false
	}
	return rest, AssetCacheControl, true
}

func (h *Handler) open(name string) (file, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.cache[name]; ok {
		return f, true
	}
	st, err := fs.Stat(h.files, name)
	if err != nil || !st.Mode().IsRegular() {
		return file{}, false
	}
	body, err := fs.ReadFile(h.files, name)
	if err != nil {
		return file{}, false
	}
	sum := sha256.Sum256(body)
	f := file{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	h.cache[name] = f
	return f, true
}
