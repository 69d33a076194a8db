//go:build !(js && wasm)

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userJS is the fresh profile's user.js. WebGPU is off by default on Linux and lavapipe (a CPU
// Vulkan device) is on the blocklist, hence the first two prefs. The rest keep a machine without
// network quiet and fast: no updates, telemetry, studies, remote settings, safe browsing,
// captive-portal or connectivity probes, and no first-run or what's-new pages. The remote agent
// adds its own recommended prefs on top (remote.prefs.recommended).
const userJS = `// Written by nibble's tools/browser/firefox for one test run; removed after it.
user_pref("dom.webgpu.enabled", true);
user_pref("gfx.webgpu.ignore-blocklist", true);

user_pref("app.update.auto", false);
user_pref("app.update.enabled", false);
user_pref("app.update.disabledForTesting", true);
user_pref("app.normandy.enabled", false);
user_pref("app.shield.optoutstudies.enabled", false);
user_pref("browser.aboutwelcome.enabled", false);
user_pref("browser.discovery.enabled", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.ping-centre.telemetry", false);
user_pref("browser.region.network.url", "");
user_pref("browser.region.update.enabled", false);
user_pref("browser.safebrowsing.blockedURIs.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.provider.mozilla.updateURL", "");
user_pref("browser.search.update", false);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage", "about:blank");
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.startup.page", 0);
user_pref("browser.tabs.warnOnClose", false);
user_pref("browser.topsites.contile.enabled", false);
user_pref("captivedetect.canonicalURL", "");
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.policy.firstRunURL", "");
user_pref("extensions.blocklist.enabled", false);
user_pref("extensions.getAddons.cache.enabled", false);
user_pref("extensions.systemAddon.update.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("media.gmp-manager.url", "");
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.http.speculative-parallel-limit", 0);
user_pref("network.prefetch-next", false);
user_pref("network.proxy.type", 0);
user_pref("services.settings.server", "data:,#remote-settings-disabled");
user_pref("startup.homepage_welcome_url", "about:blank");
user_pref("startup.homepage_welcome_url.additional", "");
user_pref("toolkit.startup.max_resumed_crashes", -1);
user_pref("toolkit.telemetry.archive.enabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("toolkit.telemetry.server", "");
user_pref("toolkit.telemetry.unified", false);
user_pref("trailhead.firstrun.didSeeAboutWelcome", true);
`

var (
	// listeningRE matches the line Firefox prints once its remote agent accepts BiDi connections.
	listeningRE = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)
	// vulkanDeviceRE matches the Vulkan loader's line (VK_LOADER_DEBUG=driver) naming the device
	// WebGPU opened: Firefox leaves GPUAdapterInfo's strings empty, so this is where a report
	// learns the adapter is lavapipe ("llvmpipe (LLVM 15.0.6, 256 bits)" … libvulkan_lvp.so).
	vulkanDeviceRE = regexp.MustCompile(`Using "([^"]+)" with driver: "([^"]+)"`)
)

// firefox is one headless Firefox on a throwaway profile.
type firefox struct {
	cmd     *exec.Cmd
	profile string
	wsURL   string // ws://127.0.0.1:port, without /session

	exited  chan struct{} // closed when the process has exited; waitErr is set then
	waitErr error

	mu           sync.Mutex
	tail         []string // Firefox's last stderr/stdout lines, for error messages
	vulkanDevice string   // "name (driver)", once WebGPU has opened one
}

// findFirefox returns the browser to run: $FIREFOX_BIN, else firefox-esr or firefox on PATH.
func findFirefox() (string, error) {
	if p := os.Getenv("FIREFOX_BIN"); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("FIREFOX_BIN: %w", err)
		}
		return path, nil
	}
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("firefox-esr not found on PATH: run 'make deps' (tools/browser/install.sh installs Debian's firefox-esr) or set FIREFOX_BIN")
}

// startFirefox starts Firefox and waits, at most startTimeout, until its BiDi port is open.
func startFirefox(ctx context.Context, startTimeout time.Duration, debug bool) (*firefox, error) {
	bin, err := findFirefox()
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "nibble-firefox-profile-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(userJS), 0o644); err != nil {
		os.RemoveAll(profile)
		return nil, err
	}
	ff := &firefox{profile: profile, exited: make(chan struct{})}
	// Port 0: Firefox picks a free port and prints it, so two runs (go test runs packages in
	// parallel) never race for one we picked.
	ff.cmd = exec.Command(bin, "--headless", "--no-remote", "--new-instance",
		"--remote-debugging-port=0", "--remote-allow-hosts=127.0.0.1,localhost",
		"--profile", profile, "about:blank")
	ff.cmd.Env = append(os.Environ(),
		"MOZ_HEADLESS=1",
		// No crash reporter dialog or minidump upload on a machine without network.
		"MOZ_CRASHREPORTER_DISABLE=1",
	)
	if os.Getenv("VK_LOADER_DEBUG") == "" {
		ff.cmd.Env = append(ff.cmd.Env, "VK_LOADER_DEBUG=driver") // see vulkanDeviceRE
	}
	// Its own process group, so Stop kills the content, GPU and utility processes too. Pdeathsig
	// takes Firefox down if we are killed without a chance to clean up.
	ff.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// One pipe for stdout and stderr keeps their order; our own pipe (not StderrPipe) because
	// Wait would close that one under the reader and lose the last lines.
	out, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(profile)
		return nil, err
	}
	ff.cmd.Stdout, ff.cmd.Stderr = w, w
	err = ff.cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		os.RemoveAll(profile)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	listening := make(chan string, 1)
	go ff.readOutput(out, listening, debug)
	go func() {
		ff.waitErr = ff.cmd.Wait()
		close(ff.exited)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case ff.wsURL = <-listening:
		return ff, nil
	case <-ff.exited:
		err = fmt.Errorf("%s exited while starting (%v)%s", bin, ff.waitErr, ff.stderrTail())
	case <-timer.C:
		err = fmt.Errorf("%s did not open its WebDriver BiDi port within %v (a slow machine? set FIREFOX_WASM_EXEC_START=3m)%s", bin, startTimeout, ff.stderrTail())
	case <-ctx.Done():
		err = errors.New("interrupted while firefox was starting")
	}
	ff.Stop()
	return nil, err
}

// readOutput keeps Firefox's last lines and reports the BiDi address once it is printed.
func (ff *firefox) readOutput(r io.ReadCloser, listening chan<- string, debug bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if debug {
			fmt.Fprintf(os.Stderr, "firefox: %s\n", line)
		}
		ff.mu.Lock()
		if m := vulkanDeviceRE.FindStringSubmatch(line); m != nil {
			ff.vulkanDevice = fmt.Sprintf("%s (%s)", m[1], m[2])
		}
		// The loader's search lines would crowd out the clues.
		if !strings.Contains(line, "DRIVER:") {
			ff.tail = append(ff.tail, line)
			if len(ff.tail) > 40 {
				ff.tail = ff.tail[len(ff.tail)-40:]
			}
		}
		ff.mu.Unlock()
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			select {
			case listening <- strings.TrimSuffix(m[1], "/"):
			default:
			}
		}
	}
	// Drain after a read error (a line over 1 MiB) so Firefox never blocks on a full pipe.
	io.Copy(io.Discard, r)
	r.Close()
}

// VulkanDevice names the Vulkan device Firefox's WebGPU opened, or "" if none (yet).
func (ff *firefox) VulkanDevice() string {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.vulkanDevice
}

// stderrTail formats Firefox's last output lines for an error message.
func (ff *firefox) stderrTail() string {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if len(ff.tail) == 0 {
		return ""
	}
	return "\nfirefox output (last lines):\n\t" + strings.Join(ff.tail, "\n\t")
}

// Stop kills Firefox's process group, waits for it and removes the profile. Safe to call twice.
func (ff *firefox) Stop() {
	if ff.cmd.Process != nil {
		// A throwaway profile needs no orderly shutdown; SIGKILL cannot be ignored or hang.
		syscall.Kill(-ff.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-ff.exited:
		case <-time.After(10 * time.Second):
		}
	}
	os.RemoveAll(ff.profile)
}
