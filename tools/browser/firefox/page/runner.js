// Runs the Go test binary test.wasm with the argv and env of config.json, for firefox_wasm_exec.
"use strict";

(() => {
	// Each write of the test (fs.writeSync: fmt, log, testing; runtime.wasmWrite: panics, the
	// timeout's goroutine dump) goes to the server by a synchronous XHR. Synchronous, because
	// runtime.wasmWrite cannot wait for a promise, and because then every write has reached our
	// stdout before the next one starts or the exit code is sent: nothing is lost or reordered,
	// stdout and stderr stay apart, and a partial line (no newline yet) is not held back the way
	// wasm_exec.js's console.log buffer holds it. A local round trip costs well under a millisecond.
	function post(path, body) {
		const xhr = new XMLHttpRequest();
		xhr.open("POST", path, false);
		xhr.send(body);
		if (xhr.status !== 204) {
			throw new Error(`POST ${path}: ${xhr.status} ${xhr.responseText}`);
		}
	}

	globalThis.fs.writeSync = (fd, buf) => {
		// A copy: buf may be a view of the wasm memory, which XHR must not see grow under it.
		post(`write?fd=${fd === 2 ? 2 : 1}`, buf.slice());
		return buf.length;
	};

	let reported = false;
	function exit(code) {
		if (reported) {
			return;
		}
		reported = true;
		post(`exit?code=${code}`, "");
	}

	function fail(what, err) {
		const msg = `firefox_wasm_exec page: ${what}: ${err && err.stack ? err.stack : err}\n`;
		try {
			globalThis.fs.writeSync(2, new TextEncoder().encode(msg));
		} catch (e) {
			console.error(msg, e);
		}
		exit(1);
	}

	(async () => {
		let go;
		try {
			const config = await (await fetch("config.json")).json();
			go = new Go();
			go.argv = config.argv;
			go.env = config.env;
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
