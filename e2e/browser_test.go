package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/kubeyard/kubeyard/e2e/harness"
)

// browser is Debian's Chromium, headless, driven over the DevTools
// protocol: it loads the engine's console as a user's browser does. An
// uncaught error in the page's scripts fails the test.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string // the engine's address, http://127.0.0.1:PORT
	shots string // where screenshots go

	mu     sync.Mutex
	errors []string
}

// artifactsDir is where the console tests write their screenshots:
// console/ in the artifacts folder.
func artifactsDir(t *testing.T) string {
	dir := filepath.Join(harness.ArtifactsDir(), "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newBrowser starts Chromium (stopped when the test ends) with an empty
// profile of its own, and the flags that keep it off the network: it
// reaches only the engine on loopback.
func newBrowser(t *testing.T, e *harness.Engine, width, height int) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (Debian's package chromium; .ci/run installs it)")
	}
	profile, tmp := t.TempDir(), t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		// Its shared memory and singleton socket go where the test
		// cleans up, not into /tmp.
		chromedp.Env("TMPDIR="+tmp),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
	)
	b := &browser{t: t, base: "http://" + e.Addr, shots: artifactsDir(t)}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if ex, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := ex.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			b.mu.Lock()
			b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber+1))
			b.mu.Unlock()
		}
	}))
	b.ctx = ctx
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // ends Chromium and waits for it
		if pids := processesWith(profile); len(pids) > 0 {
			t.Errorf("Chromium processes left running: %v", pids)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, msg := range b.errors {
			t.Errorf("the console's scripts threw: %s", msg)
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts Chromium, with no deadline
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// processesWith are the processes whose command line holds s.
func processesWith(s string) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil && strings.Contains(string(cmdline), s) {
			out = append(out, pid)
		}
	}
	return out
}

// do runs steps, failing the test if they take over a minute.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\npage text:\n%s", err, b.textNow())
	}
}

// eval evaluates a JavaScript expression and returns its value.
func eval[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("browser: %s: %v\npage text:\n%s", expr, err, b.textNow())
	}
	return v
}

// textNow is the page's text, for failure messages.
func (b *browser) textNow() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	return s
}

// open loads a page of the engine.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base + path))
}

// await waits until the JavaScript expression cond is true, within
// timeout, asking again every 100 ms (also across a navigation, which
// ends the page an evaluation ran in); what says it failed is the page's
// text.
func (b *browser) await(what string, timeout time.Duration, cond string) {
	b.t.Helper()
	var last error
	err := harness.Poll(timeout, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		switch {
		case err != nil:
			last = err
			return err
		case !ok:
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		b.t.Fatalf("%s: not within %s (last: %v)\npage text:\n%s", what, timeout, last, b.textNow())
	}
}

// awaitText waits until the text of the first element matching selector
// holds text.
func (b *browser) awaitText(selector, text string, timeout time.Duration) {
	b.t.Helper()
	b.await(fmt.Sprintf("%s showing %q", selector, text), timeout,
		fmt.Sprintf(`(() => { const el = document.querySelector(%s); return !!el && el.innerText.includes(%s); })()`, jsString(selector), jsString(text)))
}

// textOf is the text of the first element matching selector.
func (b *browser) textOf(selector string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%s) || {innerText: ''}).innerText`, jsString(selector)))
}

// press clicks the button or link whose text is label, once it is there
// and enabled; in the open dialog when there is one, as a user can reach
// nothing else.
func (b *browser) press(label string) {
	b.t.Helper()
	b.await("a control named "+label, 20*time.Second, fmt.Sprintf(`(() => {
		const root = document.querySelector('dialog[open]') || document;
		const el = [...root.querySelectorAll('button, a')].find(el => el.innerText.trim() === %s && !el.disabled);
		if (el) el.click();
		return !!el;
	})()`, jsString(label)))
}

// fill types text into the input matching selector, in place of what it
// held, as a user who selects it all and types.
func (b *browser) fill(selector, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).value = ''`, jsString(selector))),
		chromedp.SendKeys(selector, text))
}

// expectLabelled fails the test for each control on the page a screen
// reader could not name: an input without a label, a button or link
// without text.
func (b *browser) expectLabelled(page string) {
	b.t.Helper()
	unnamed := eval[[]string](b, `[...document.querySelectorAll('input, select, textarea, button, a[href]')]
		.filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !(el.innerText || '').trim() && el.type !== 'hidden')
		.map(el => el.outerHTML.slice(0, 120))`)
	for _, el := range unnamed {
		b.t.Errorf("%s: a control without a name: %s", page, el)
	}
}

// shot writes a screenshot of the whole page to the artifacts folder.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

func jsString(s string) string {
	data, _ := json.Marshal(s)
	return string(data)
}

// consoleLogin logs the browser in with a link from `kubeyard console`
// and selects the engine's project, as a user types it.
func consoleLogin(t *testing.T, e *harness.Engine, b *browser) {
	t.Helper()
	link, err := e.Kubeyard("console")
	if err != nil {
		t.Fatalf("kubeyard console: %v\n%s", err, link)
	}
	b.open(strings.TrimPrefix(strings.TrimSpace(link), b.base))
	b.awaitText("h1", "Kubernetes clusters", 20*time.Second)
	b.do(b.fill("#project", e.Project+"\n"))
	b.awaitText("main", "No clusters in project "+e.Project, 20*time.Second)
}
