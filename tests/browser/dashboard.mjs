// Loads the dashboard in headless Chromium (playwright-core driving
// Debian's chromium) in three views, light and dark at 1400 px and a
// phone's 390 px; reports
// what it found as one JSON line and saves a screenshot of each.
//   node dashboard.mjs URL OUTDIR
// CHROMIUM is the browser's path. With TOKEN set, one view of a dashboard
// whose reads need the admin token: the page must load without it, ask
// for it, and fill in once it is given. Run by tests/browser.rs.
import { chromium } from 'playwright-core';

const [url, outdir] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
const token = process.env.TOKEN;
const views = token ? [{ name: 'token', viewport: { width: 1280, height: 900 }, colorScheme: 'light' }] : [
  { name: 'light', viewport: { width: 1400, height: 900 }, colorScheme: 'light' },
  { name: 'dark', viewport: { width: 1400, height: 900 }, colorScheme: 'dark' },
  { name: 'phone', viewport: { width: 390, height: 844 }, colorScheme: 'light', isMobile: true },
];
const results = [];
try {
  for (const view of views) {
    const context = await browser.newContext({ viewport: view.viewport, colorScheme: view.colorScheme, isMobile: !!view.isMobile });
    const page = await context.newPage();
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.type() + ': ' + m.text()); });
    page.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
    page.on('requestfailed', (r) => problems.push('requestfailed: ' + r.url()));
    await page.goto(url, { waitUntil: 'load' });
    let asked = false;
    if (token) {
      await page.waitForSelector('#token-dialog[open]', { timeout: 20000 });
      asked = true;
      // The 401s that made the page ask are expected.
      problems.length = 0;
      await page.fill('#token-input', token);
      await page.click('#token-save');
    }
    await page.waitForFunction(() => (document.getElementById('updated').textContent || '').startsWith('updated'), null, { timeout: 20000 });
    // Layout of the first render, then a second refresh: nothing may move.
    const before = await page.evaluate(() => [...document.querySelectorAll('.cards .card, .charts .chart')].map((e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }));
    await page.selectOption('#every', '5');
    const first = await page.textContent('#updated');
    await page.waitForFunction((t) => document.getElementById('updated').textContent !== t, first, { timeout: 15000 });
    const after = await page.evaluate(() => [...document.querySelectorAll('.cards .card, .charts .chart')].map((e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }));
    const found = await page.evaluate(() => {
      const cards = [...document.querySelectorAll('.card')].map((c) => ({
        id: c.id,
        value: c.querySelector('[data-field="value"]').textContent.trim(),
        detail: c.querySelector('[data-field="detail"]').textContent.trim(),
      }));
      const charts = [...document.querySelectorAll('.chart')].map((c) => {
        const root = c.querySelector('svg');
        const texts = [...c.querySelectorAll('svg text:not(.empty)')];
        // Where the first data point sits across the plot (0 left, 1 right).
        const xs = [...c.querySelectorAll('svg path.series')].map((p) => Number((p.getAttribute('d').match(/^M([\d.]+)/) || [])[1]))
          .concat([...c.querySelectorAll('svg circle, svg rect[class]')].map((e) => Number(e.getAttribute('cx') ?? e.getAttribute('x'))))
          .filter((x) => isFinite(x));
        const width = root ? root.viewBox.baseVal.width : 1;
        return {
          id: c.id,
          points: Number(c.querySelector('.plot').dataset.points || 0),
          axisLabels: texts.length,
          firstAt: xs.length ? Math.min(...xs) / width : null,
          // The time labels under the axis, left to right.
          times: texts.filter((t) => /^\d\d:\d\d/.test(t.textContent)).map((t) => t.textContent),
          values: texts.filter((t) => !/^\d\d:\d\d/.test(t.textContent)).map((t) => t.textContent),
          smallestText: Math.min(...texts.map((t) => t.getBoundingClientRect().height)),
        };
      });
      const bg = getComputedStyle(document.body).backgroundColor;
      const rows = (id) => document.querySelectorAll('#' + id + ' tbody tr').length;
      return {
        cards, charts, bg,
        statements: rows('statements'), errors: rows('errors'), alerts: rows('alerts'),
        // Each holder's route and call site (the empty table's hint otherwise).
        holders: [...document.querySelectorAll('#holders tbody tr')]
          .map((row) => [...row.querySelectorAll('td')].slice(0, 2).map((t) => t.textContent)),
        // The first N+1 pattern's route and call site, and the statements'
        // columns (with the latency split's two).
        nplusone: [...document.querySelectorAll('#nplusone tbody tr')]
          .map((row) => [...row.querySelectorAll('td')].slice(0, 2).map((t) => t.textContent)),
        statementCells: document.querySelectorAll('#statements tbody tr:first-child td').length,
        objectives: document.getElementById('objectives').hidden ? 0 : rows('objectives-table'),
        budget: document.getElementById('budget-text').textContent, poller: document.getElementById('poller-text').textContent,
        overflow: document.documentElement.scrollWidth > window.innerWidth + 1,
        errorTimes: [...document.querySelectorAll('#errors tbody tr td:first-child')].map((t) => t.textContent),
        plansText: document.getElementById('plans-text').textContent,
        plansShown: !document.getElementById('plans').hidden,
        serverTop: document.getElementById('server').getBoundingClientRect().top + window.scrollY,
        viewportHeight: window.innerHeight,
        // Every resolve button within the screen's width.
        resolveButtons: [...document.querySelectorAll('#alerts button')].map((b) => b.getBoundingClientRect().right <= window.innerWidth),
      };
    });
    let tip = null;
    if (!token) {
      // The hover value of the latency chart.
      const hit = await page.$('#chart-latency svg rect[fill="transparent"]');
      await hit.scrollIntoViewIfNeeded();
      const box = await hit.boundingBox();
      await page.mouse.move(box.x + box.width - 3, box.y + box.height / 2);
      tip = await page.evaluate(() => { const t = document.querySelector('#chart-latency .tip'); return t && !t.hidden ? t.textContent : null; });
      await page.screenshot({ path: `${outdir}/${view.name}.png`, fullPage: view.name === 'light' });
    }
    results.push({ view: view.name, problems, asked, moved: JSON.stringify(before) !== JSON.stringify(after), tip, ...found });
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
