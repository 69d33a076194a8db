//go:build !(js && wasm)

package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// readOnlyFS lets the test read files (testdata/ golden cases) through the page: wasm_exec.js's
// fs calls become POSTs to fs/<op>. Relative paths are relative to our working directory, which
// go test sets to the package's directory, as for a native test. Nothing can be written: a
// browser test that writes files is a test to move to native Go.
type readOnlyFS struct {
	cwd string

	mu     sync.Mutex
	files  map[int]*os.File
	nextFD int
}

func newReadOnlyFS() (*readOnlyFS, error) {
	cwd, err := os.Getwd()
	return &readOnlyFS{cwd: cwd, files: map[int]*os.File{}, nextFD: 100}, err
}

// fsRequest holds the arguments of every op; each uses a few.
type fsRequest struct {
	Path     string `json:"path"`
	Flags    int    `json:"flags"`
	FD       int    `json:"fd"`
	Length   int    `json:"length"`
	Position *int64 `json:"position"` // null: from the file's own offset
}

// fsStat is what syscall.setStat reads, plus isDir for the page's isDirectory().
type fsStat struct {
	Dev     int64 `json:"dev"`
	Ino     int64 `json:"ino"`
	Mode    int64 `json:"mode"`
	Nlink   int64 `json:"nlink"`
	UID     int64 `json:"uid"`
	GID     int64 `json:"gid"`
	Rdev    int64 `json:"rdev"`
	Size    int64 `json:"size"`
	Blksize int64 `json:"blksize"`
	Blocks  int64 `json:"blocks"`
	AtimeMs int64 `json:"atimeMs"`
	MtimeMs int64 `json:"mtimeMs"`
	CtimeMs int64 `json:"ctimeMs"`
	IsDir   bool  `json:"isDir"`
}

func (f *readOnlyFS) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req fsRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := f.do(r.PathValue("op"), &req)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error(), "code": errnoCode(err)})
			return
		}
		json.NewEncoder(w).Encode(res)
	})
}

func (f *readOnlyFS) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.cwd, p)
}

func (f *readOnlyFS) file(fd int) (*os.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if file := f.files[fd]; file != nil {
		return file, nil
	}
	return nil, syscall.EBADF
}

func (f *readOnlyFS) do(op string, req *fsRequest) (any, error) {
	switch op {
	case "open":
		// wasm_exec's O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND are those of Linux (page/runner.js).
		if req.Flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
			return nil, syscall.EROFS
		}
		file, err := os.Open(f.abs(req.Path))
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.nextFD++
		f.files[f.nextFD] = file
		return map[string]int{"fd": f.nextFD}, nil
	case "close":
		f.mu.Lock()
		file := f.files[req.FD]
		delete(f.files, req.FD)
		f.mu.Unlock()
		if file == nil {
			return nil, syscall.EBADF
		}
		return map[string]any{}, file.Close()
	case "read":
		file, err := f.file(req.FD)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, req.Length)
		var n int
		if req.Position != nil {
			n, err = file.ReadAt(buf, *req.Position)
		} else {
			n, err = file.Read(buf)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return map[string]any{"n": n, "data": buf[:n]}, nil // []byte marshals as base64
	case "fstat":
		file, err := f.file(req.FD)
		if err != nil {
			return nil, err
		}
		fi, err := file.Stat()
		return toFSStat(fi), err
	case "stat", "lstat":
		stat := os.Stat
		if op == "lstat" {
			stat = os.Lstat
		}
		fi, err := stat(f.abs(req.Path))
		if err != nil {
			return nil, err
		}
		return toFSStat(fi), nil
	case "readdir":
		entries, err := os.ReadDir(f.abs(req.Path))
		if err != nil {
			return nil, err
		}
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		return map[string]any{"entries": names}, nil
	}
	return nil, syscall.ENOSYS
}

func toFSStat(fi os.FileInfo) *fsStat {
	if fi == nil {
		return nil
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		st = &syscall.Stat_t{}
	}
	ms := func(ts syscall.Timespec) int64 { return ts.Sec*1000 + ts.Nsec/1e6 }
	return &fsStat{Dev: int64(st.Dev), Ino: int64(st.Ino), Mode: int64(st.Mode), Nlink: int64(st.Nlink),
		UID: int64(st.Uid), GID: int64(st.Gid), Rdev: int64(st.Rdev), Size: st.Size,
		Blksize: int64(st.Blksize), Blocks: st.Blocks,
		AtimeMs: ms(st.Atim), MtimeMs: ms(st.Mtim), CtimeMs: ms(st.Ctim), IsDir: fi.IsDir()}
}

// errnoCode names err the way Node does, which syscall/fs_js.go maps back to an Errno; it panics
// on a code it does not know, so only those in its table are used.
func errnoCode(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT:
			return "ENOENT"
		case syscall.EACCES, syscall.EPERM:
			return "EACCES"
		case syscall.ENOTDIR:
			return "ENOTDIR"
		case syscall.EISDIR:
			return "EISDIR"
		case syscall.ELOOP:
			return "ELOOP"
		case syscall.ENAMETOOLONG:
			return "ENAMETOOLONG"
		case syscall.EBADF:
			return "EBADF"
		case syscall.EROFS:
			return "EROFS"
		case syscall.EINVAL:
			return "EINVAL"
		case syscall.ENOSYS:
			return "ENOSYS"
		}
	}
	return "EIO"
}
