// status_page.js -- opens sluice's status page in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core) and checks what a person would see:
// batches arrive (the completed count grows), the four timelines and histograms are drawn
// with data points, every input is listed, and after the test kills the server of a tcp
// connect-mode input, the page shows that input inactive with its error. It also opens the
// page of one batch, and shows an input waiting for partitions and the restores of keyed
// state (the server's answers altered in the browser: nothing here takes partitions).
// Screenshots go to ARTIFACTS.
//
// Environment: SLUICE_URL (http://127.0.0.1:PORT/), SLUICE_TOKEN (optional),
// BROKEN_INPUT (the input whose server is killed), UPSTREAM_PID (that server's pid),
// ARTIFACTS (a directory), CHROMIUM (default /usr/bin/chromium).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const base = process.env.SLUICE_URL;
const token = process.env.SLUICE_TOKEN || '';
const broken = process.env.BROKEN_INPUT || 'upstream';
const upstreamPid = Number(process.env.UPSTREAM_PID || 0);
const artifacts = process.env.ARTIFACTS || path.join(process.cwd(), 'artifacts');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const WATCHDOG_MS = 150000;

let failures = 0;
function log(msg) {
    console.log(`[browser] ${msg}`);
}
function check(cond, msg) {
    if (cond) {
        log(`ok: ${msg}`);
    } else {
        failures++;
        log(`FAIL: ${msg}`);
    }
    return cond;
}

const watchdog = setTimeout(() => {
    log('FAIL: the browser test did not finish in time');
    process.exit(1);
}, WATCHDOG_MS);

async function completedCount(page) {
    return page.evaluate(() => {
        const e = document.getElementById('completed-count');
        return e ? Number(e.textContent.replace(/,/g, '')) : -1;
    });
}

// Waits until fn (evaluated in the page) returns something truthy; returns it or null.
async function waitFor(page, fn, arg, timeoutMs) {
    try {
        const h = await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 250 });
        return await h.jsonValue();
    } catch (e) {
        return null;
    }
}

// Per chart: the number of coordinates of its polyline, of circles, of bars with a width.
async function chartStats(page) {
    return page.evaluate(() => {
        const out = {};
        for (const k of ['rate', 'sched', 'proc', 'total']) {
            const tl = document.getElementById('timeline-' + k);
            const line = tl.querySelector('polyline.line');
            const pts = line ? line.getAttribute('points').trim().split(/\s+/).filter(Boolean) : [];
            const hist = document.getElementById('hist-' + k);
            const bars = [...hist.querySelectorAll('rect.bar')].filter(
                (r) => Number(r.getAttribute('width')) > 0);
            out[k] = {
                points: pts.length,
                circles: tl.querySelectorAll('circle.pt').length,
                bars: bars.length,
                avg: document.getElementById('avg-' + k).textContent,
            };
        }
        return out;
    });
}

async function main() {
    fs.mkdirSync(artifacts, { recursive: true });
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        viewport: { width: 1400, height: 1000 },
    });
    const origin = new URL(base).origin;
    const page = context.pages()[0] || (await context.newPage());
    const pageErrors = [];
    const foreign = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
        if (m.type() === 'error') {
            pageErrors.push(m.text());
        }
    });
    page.on('request', (r) => {
        if (!r.url().startsWith(origin + '/') && !r.url().startsWith('data:')) {
            foreign.push(r.url());
        }
    });

    try {
        const url = base + (token ? `?token=${encodeURIComponent(token)}` : '');
        const res = await page.goto(url, { waitUntil: 'load', timeout: 20000 });
        check(res && res.status() === 200, `GET / answers 200 (got ${res && res.status()})`);
        check(/text\/html/.test(res.headers()['content-type'] || ''), 'the page is text/html');

        // Batches arrive: the completed count grows while we watch.
        const first = await waitFor(page, () => {
            const e = document.getElementById('completed-count');
            const n = e ? Number(e.textContent.replace(/,/g, '')) : 0;
            return n >= 2 ? n : 0;
        }, null, 20000);
        check(first, `batches are shown (completed: ${first})`);
        const later = await waitFor(page, (n0) => {
            const e = document.getElementById('completed-count');
            const n = e ? Number(e.textContent.replace(/,/g, '')) : 0;
            return n >= n0 + 3 ? n : 0;
        }, first || 0, 20000);
        check(later, `the completed count grows live (${first} -> ${later})`);

        // Charts have data points, and the inputs are listed and active.
        await waitFor(page, () => {
            const l = document.querySelector('#timeline-rate polyline.line');
            return l && l.getAttribute('points').split(' ').length >= 3;
        }, null, 10000);
        const charts = await chartStats(page);
        for (const [k, c] of Object.entries(charts)) {
            check(c.points > 0 && c.circles > 0,
                `timeline ${k}: ${c.points} points, ${c.circles} circles (${c.avg})`);
            check(c.bars > 0, `histogram ${k}: ${c.bars} bars`);
        }
        const inputs = await page.$$eval('#inputs-table tbody tr[data-input]', (rows) =>
            rows.map((r) => ({ name: r.dataset.input, text: r.textContent })));
        check(inputs.length >= 2, `inputs listed: ${inputs.map((i) => i.name).join(', ')}`);
        const active = await waitFor(page, (name) => {
            const r = document.querySelector(`#inputs-table tr[data-input="${name}"]`);
            return r && /ACTIVE/.test(r.textContent) && !/INACTIVE/.test(r.textContent);
        }, broken, 15000);
        check(active, `input ${broken} is shown ACTIVE while its server runs`);
        const sinks = await page.$$eval('#sinks-table tbody tr[data-sink]', (rows) =>
            rows.map((r) => r.textContent));
        check(sinks.length >= 1 && /OK/.test(sinks[0]), `the sink is listed OK: ${sinks[0]}`);
        const html = await page.content();
        check(!token || !html.includes(token), 'the token appears nowhere in the page');
        await page.screenshot({ path: path.join(artifacts, 'status-overview.png'), fullPage: true });
        log(`screenshot ${path.join(artifacts, 'status-overview.png')}`);

        // Break the connect-mode input: kill its server; the page shows the error.
        if (check(upstreamPid > 0, `the upstream server's pid is known (${upstreamPid})`)) {
            process.kill(upstreamPid, 'SIGTERM');
        }
        const err = await waitFor(page, (name) => {
            const r = document.querySelector(`#inputs-table tr[data-input="${name}"]`);
            if (!r || !/INACTIVE/.test(r.textContent)) {
                return null;
            }
            const e = r.querySelector('td.err');
            return e && e.textContent ? e.textContent : null;
        }, broken, 30000);
        check(err, `input ${broken} is shown INACTIVE with its error: ${err}`);
        await page.screenshot({ path: path.join(artifacts, 'status-input-error.png'),
            fullPage: true });
        log(`screenshot ${path.join(artifacts, 'status-input-error.png')}`);

        // Hover a chart: a tooltip tells the batch and its value.
        const box = await page.locator('#timeline-proc rect.overlay').boundingBox();
        if (box) {
            await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
            const tip = await waitFor(page, () => {
                const t = document.getElementById('tooltip');
                return t && !t.hidden ? t.textContent : null;
            }, null, 3000);
            check(tip, `hovering a timeline shows a tooltip: ${tip}`);
            await page.screenshot({ path: path.join(artifacts, 'status-tooltip.png'),
                clip: { x: 0, y: Math.max(box.y - 80, 0), width: 1400, height: 260 } });
        }

        // The page of one batch: its inputs with their descriptions, its outputs.
        const link = page.locator('#completed-table tbody a').first();
        const linkText = await link.textContent();
        await link.click();
        const kv = await waitFor(page, () => {
            const dl = document.getElementById('b-kv');
            const rows = document.querySelectorAll('#b-inputs tbody tr');
            return !document.getElementById('view-batch').hidden && dl.children.length > 0 &&
                rows.length > 0 ? dl.textContent : null;
        }, null, 10000);
        check(kv && /Processing time/.test(kv), `the batch page of ${linkText} shows its details`);
        const binputs = await page.$$eval('#b-inputs tbody tr', (rows) =>
            rows.map((r) => r.textContent));
        check(binputs.length >= 2 && binputs.some((t) => /block/.test(t)),
            `the batch's inputs with their descriptions: ${binputs.join(' | ')}`);
        const bt = await page.evaluate(() => location.hash);
        await page.screenshot({ path: path.join(artifacts, 'status-batch.png'), fullPage: true });
        log(`screenshot ${path.join(artifacts, 'status-batch.png')}`);

        // The same page at /batch?time=T.
        const t = bt.replace('#batch/', '');
        const tq = token ? `&token=${encodeURIComponent(token)}` : '';
        await page.goto(`${base}batch?time=${t}${tq}`, { waitUntil: 'load' });
        const same = await waitFor(page, () => {
            const rows = document.querySelectorAll('#b-inputs tbody tr');
            return !document.getElementById('view-batch').hidden && rows.length > 0;
        }, null, 10000);
        check(same, `/batch?time=${t} shows the batch too`);

        // Back to the overview.
        await page.click('.crumbs a');
        const back = await waitFor(page, () => !document.getElementById('view-overview').hidden &&
            document.getElementById('completed-count'), null, 10000);
        check(back, 'the crumb leads back to the overview');

        // An input waiting for partitions and restores of keyed state: none in this run, then
        // the server's answers altered (first while restoring, then after).
        const quiet = await page.evaluate(() => document.getElementById('restore').hidden &&
            document.getElementById('event-time').hidden &&
            !/WAITING FOR PARTITIONS/.test(document.getElementById('inputs-table').textContent));
        check(quiet, 'no restore line, no event-time line and no input waiting for partitions ' +
            'without them');
        let restoring = 2;
        await page.route('**/api/v1/status', async (route) => {
            const r = await route.fetch();
            const st = await r.json();
            st.phase = 'waiting for partitions';
            st.inputs_waiting = 1;
            st.restore = { restoring, tasks: 3, records: 120000, bytes: 7500000, ms: 3000,
                mb_per_s: 2.5 };
            st.event_time = [{ stream: 'per_user', watermark: 1796679961000,
                stream_time: 1796679961000, lag_ms: 4000, late_records: 2 }];
            await route.fulfill({ response: r, json: st });
        });
        await page.route('**/api/v1/inputs', async (route) => {
            const r = await route.fetch();
            const ins = (await r.json()).map((i) => ({ ...i, waiting: i.name === broken }));
            await route.fulfill({ response: r, json: ins });
        });
        const waiting = await waitFor(page, (name) => {
            const r = document.querySelector(`#inputs-table tr[data-input="${name}"]`);
            const p = document.getElementById('phase');
            return r && /WAITING FOR PARTITIONS/.test(r.textContent) && p ? p.textContent : null;
        }, broken, 10000);
        check(waiting === 'waiting for partitions',
            `input ${broken} is shown waiting for partitions, and the summary says: ${waiting}`);
        const line = await waitFor(page, () => {
            const e = document.getElementById('restore');
            return !e.hidden && /^Restoring/.test(e.textContent) ? e.textContent : null;
        }, null, 10000);
        check(line === 'Restoring state: 2 tasks, 120,000 records, 7.5 MB at 2.5 MB/s',
            `the restore line while restoring: ${line}`);
        await page.screenshot({ path: path.join(artifacts, 'status-restoring.png'),
            fullPage: true });
        restoring = 0;
        const done = await waitFor(page, () => {
            const e = document.getElementById('restore');
            return !e.hidden && /^Restored/.test(e.textContent) ? e.textContent : null;
        }, null, 10000);
        check(done === 'Restored state: 3 tasks, 120,000 records, 7.5 MB in 3 s at 2.5 MB/s',
            `the restore line after the restores: ${done}`);
        const et = await page.evaluate(() => {
            const e = document.getElementById('event-time');
            return e.hidden ? null : e.textContent;
        });
        check(et === 'Event time of per_user: watermark 2026-12-07T21:46:01.000Z (4 s behind), ' +
            '2 late records left out', `the event-time line: ${et}`);
        await page.unrouteAll();

        check(pageErrors.length === 0, `no script error in the page ${pageErrors.join('; ')}`);
        check(foreign.length === 0, `no request leaves the server ${foreign.join(', ')}`);
    } finally {
        await context.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
}

main().then(() => {
    clearTimeout(watchdog);
    log(failures ? `${failures} check(s) failed` : 'all checks passed');
    process.exit(failures ? 1 : 0);
}, (e) => {
    clearTimeout(watchdog);
    log(`FAIL: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
});
