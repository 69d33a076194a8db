// Runs the Go test binary test.wasm with the argv and env of config.json, for firefox_wasm_exec.
"use strict";

(() => {
	// The token in our URL (/<token>/index.html) marks our console messages as the test's output.
	const token = location.pathname.split("/")[1];
	const consoleLog = console.log.bind(console);
	// Poll mode (WebKit: classic WebDriver has no console events): every message also goes into
	// a queue that webkit_wasm_exec empties through nibbleDrain, as BiDi log entries would come.
	// Until config.json says which mode, messages are queued; plain mode drops the queue then.
	let queue = [];
	globalThis.nibbleDrain = () => {
		const q = queue || [];
		if (queue) {
			queue = [];
		}
		return q;
	};
	const log = (text) => {
		if (queue) {
			queue.push({ type: "console", method: "log", level: "info", text });
		}
		consoleLog(text);
	};
	// The page's own messages (a test's console.error, an uncaught exception) reach the runner
	// too, labelled as the browser's, as over BiDi.
	for (const method of ["error", "warn", "info", "log"]) {
		const orig = console[method].bind(console);
		console[method] = (...a) => {
			if (queue) {
				queue.push({ type: "console", method, level: method, text: a.map(String).join(" ") });
			}
			orig(...a);
		};
	}
	addEventListener("error", (e) => {
		if (queue) {
			queue.push({ type: "javascript", level: "error", text: `${e.message} (${e.filename}:${e.lineno})` });
		}
	});
	addEventListener("unhandledrejection", (e) => {
		if (queue) {
			queue.push({ type: "javascript", level: "error", text: `unhandled rejection: ${e.reason && e.reason.stack ? e.reason.stack : e.reason}` });
		}
	});
	// Well under any message size limit, and a multiple of 3 so pieces encode on their own.
	const piece = 3 << 16;

	function toBase64(b) {
		if (b.toBase64) {
			return b.toBase64();
		}
		let s = "";
		for (let i = 0; i < b.length; i += 0x8000) {
			s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
		}
		return btoa(s);
	}

	// Every write of the test (fs.writeSync: fmt, log, testing; runtime.wasmWrite: panics, the
	// timeout's goroutine dump) becomes one console message "<token> <fd> <base64>", in order.
	// Unlike wasm_exec.js's default, nothing is held back waiting for a newline, so the last
	// partial line before a hang or a crash still shows. Why the console: see output.go.
	globalThis.fs.writeSync = (fd, buf) => {
		const stream = fd === 2 ? 2 : 1;
		for (let i = 0; i < buf.length; i += piece) {
			log(`${token} ${stream} ${toBase64(buf.subarray(i, i + piece))}`);
		}
		return buf.length;
	};

	// Reading files (testdata/) goes to the server's read-only fs; see fs.go. Errors carry the
	// Node-style code syscall/fs_js.go maps to an Errno.
	const fs = globalThis.fs;
	fs.constants = { O_WRONLY: 0o1, O_RDWR: 0o2, O_CREAT: 0o100, O_TRUNC: 0o1000, O_APPEND: 0o2000,
		O_EXCL: 0o200, O_DIRECTORY: 0o200000 };
	function fsCall(op, args, ok, callback) {
		fetch(`fs/${op}`, { method: "POST", body: JSON.stringify(args) })
			.then((r) => r.json())
			.then((res) => {
				if (res && res.error) {
					const err = new Error(res.error);
					err.code = res.code;
					callback(err);
				} else {
					callback(null, ok(res));
				}
			}, (e) => {
				const err = new Error(`fs/${op}: ${e}`);
				err.code = "EIO";
				callback(err);
			});
	}
	const stat = (s) => Object.assign(s, { isDirectory: () => s.isDir });
	fs.open = (path, flags, mode, cb) => fsCall("open", { path, flags }, (r) => r.fd, cb);
	fs.close = (fd, cb) => fsCall("close", { fd }, () => undefined, cb);
	fs.fstat = (fd, cb) => fsCall("fstat", { fd }, stat, cb);
	fs.stat = (path, cb) => fsCall("stat", { path }, stat, cb);
	fs.lstat = (path, cb) => fsCall("lstat", { path }, stat, cb);
	fs.readdir = (path, cb) => fsCall("readdir", { path }, (r) => r.entries, cb);
	fs.read = (fd, buffer, offset, length, position, cb) => fsCall("read", { fd, length, position }, (r) => {
		const data = Uint8Array.fromBase64 ? Uint8Array.fromBase64(r.data) :
			Uint8Array.from(atob(r.data), (c) => c.charCodeAt(0));
		buffer.set(data, offset);
		return r.n;
	}, cb);
	const write = fs.write.bind(fs);
	fs.write = (fd, buf, offset, length, position, cb) => {
		if (fd > 2) {
			const err = new Error("read-only file system");
			err.code = "EROFS";
			cb(err);
			return;
		}
		write(fd, buf, offset, length, position, cb);
	};

	let reported = false;
	function exit(code) {
		if (!reported) {
			reported = true;
			log(`${token} exit ${code}`);
		}
	}

	function fail(what, err) {
		const msg = `firefox_wasm_exec page: ${what}: ${err && err.stack ? err.stack : err}\n`;
		globalThis.fs.writeSync(2, new TextEncoder().encode(msg));
		exit(1);
	}

	(async () => {
		let go;
		try {
			const config = await (await fetch("config.json")).json();
			if (!config.poll) {
				queue = null;
			}
			go = new Go();
			go.argv = config.argv;
			go.env = config.env;
			// Relative paths resolve against the runner's directory: the package's, as natively.
			globalThis.process.cwd = () => config.cwd;
			// Called from runtime.wasmExit, after the test's last write.
			go.exit = exit;
			const { instance } = await WebAssembly.instantiateStreaming(fetch("test.wasm"), go.importObject);
			await go.run(instance);
		} catch (err) {
			// A wasm trap (unreachable, out of memory), a failed fetch or compile.
			fail(go ? "the Go program failed" : "could not start the Go program", err);
			return;
		}
		// go.run resolves only after go.exit; if it ever did not, say so rather than hang.
		if (!reported) {
			fail("the Go program ended without an exit code", "");
		}
	})();
})();
