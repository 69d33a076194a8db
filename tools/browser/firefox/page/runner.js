// Runs the Go test binary test.wasm with the argv and env of config.json, for firefox_wasm_exec.
"use strict";

(() => {
	// The token in our URL (/<token>/index.html) marks our console messages as the test's output.
	const token = location.pathname.split("/")[1];
	const log = console.log.bind(console);
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
