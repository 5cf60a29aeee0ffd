// Runs Lighthouse's accessibility category on a list of pages, in one
// headless Chromium, and prints one JSON result per page on stdout.
//
// Input (stdin): {"chrome": "/usr/bin/chromium", "reports": "dir", "pages": [
//   {"name": "checkout-360", "url": "http://127.0.0.1:…", "width": 360,
//    "height": 740, "mobile": true, "headers": {"Cookie": "…"}}]}
// Output (stdout): [{"name", "url", "score", "failing": [{"id", "title"}]}]
//
// One browser for all pages because Chromium's start is most of a run's time
// on a 2-core machine; the browser is killed however the script ends.
import fs from 'node:fs';
import path from 'node:path';
import * as chromeLauncher from 'chrome-launcher';
import lighthouse from 'lighthouse';

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const chrome = await chromeLauncher.launch({
  chromePath: input.chrome,
  chromeFlags: [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    // This machine's network is closed: background fetches only fail slowly.
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic',
  ],
  logLevel: 'silent',
});
const kill = () => { try { chrome.kill(); } catch { /* already gone */ } };
process.on('SIGTERM', () => { kill(); process.exit(143); });

const results = [];
try {
  for (const page of input.pages) {
    const width = page.width, height = page.height, mobile = !!page.mobile;
    const config = {
      extends: 'lighthouse:default',
      settings: {
        onlyCategories: ['accessibility'],
        formFactor: mobile ? 'mobile' : 'desktop',
        screenEmulation: { mobile, width, height, deviceScaleFactor: mobile ? 2 : 1, disabled: false },
        throttlingMethod: 'provided',
        disableStorageReset: false,
        extraHeaders: page.headers || undefined,
        locale: page.locale || 'en-US',
      },
    };
    const run = await lighthouse(page.url, { port: chrome.port, output: 'html', logLevel: 'error' }, config);
    if (input.reports) {
      fs.writeFileSync(path.join(input.reports, `lighthouse-${page.name}.html`), run.report);
    }
    const lhr = run.lhr;
    const category = lhr.categories.accessibility;
    const failing = category.auditRefs
      .map((ref) => lhr.audits[ref.id])
      .filter((a) => a && a.score !== null && a.score < 1 && a.scoreDisplayMode !== 'notApplicable' && a.scoreDisplayMode !== 'manual' && a.scoreDisplayMode !== 'informative')
      .map((a) => ({ id: a.id, title: a.title }));
    results.push({
      name: page.name,
      url: lhr.finalDisplayedUrl || page.url,
      score: category.score,
      failing,
      runtimeError: lhr.runtimeError ? lhr.runtimeError.message : '',
    });
  }
} finally {
  kill();
}
process.stdout.write(JSON.stringify(results));
