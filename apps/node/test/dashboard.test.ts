import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'puppeteer-core';
import { startTestCluster, type TestCluster } from '@flotilla/store/testing';
import { run } from '../src/cli';

// The cluster dashboard in a real headless browser (issue #20 item 2): the
// system chromium (Debian's, installed by scripts/setup.sh as root) driven
// by puppeteer-core opens /dashboard?token=… on a live three-store cluster,
// must show every store and Region, and must show the new Region of a split
// through the live event stream without a reload; its key visualizer must
// paint the rows of the key range written to and leave an unwritten range
// background. The screenshots land in .vitest-tmp/dashboard.png and
// dashboard-heatmap.png as test artifacts.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skipReason = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found (apt-get install chromium, or run scripts/setup.sh as root; CHROMIUM_PATH overrides)`;
if (skipReason !== undefined) console.warn(`dashboard.test.ts skipped: ${skipReason}`);
const TOKEN = 'dashboard-test-token';
const ARTIFACT_DIR = resolve(__dirname, '../../../.vitest-tmp');

describe.skipIf(skipReason !== undefined)('cluster dashboard in headless chromium', () => {
  let cluster: TestCluster;
  let browser: Browser;
  let page: Page;
  let base: string;

  const getJson = async (path: string): Promise<any> => {
    const res = await fetch(base + path, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    return res.json();
  };
  const shown = (selector: string, attr: string): Promise<number[]> => page.$$eval(selector, (els, a) => els.map((e) => Number(e.getAttribute(a))).sort((x, y) => x - y), attr);

  beforeAll(async () => {
    const { default: puppeteer } = await import('puppeteer-core');
    [cluster, browser] = await Promise.all([
      // One heatmap column a second (10 s by default), so the picture moves within the test's bounds.
      startTestCluster({ stores: 3, token: TOKEN, splitKeys: ['m'], placement: { heatmap: { intervalMs: 1_000 } } }),
      puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] }),
    ]);
    base = cluster.placement.httpUrl;
    page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it('refuses the page without the token, and the token in the query only on dashboard paths', async () => {
    expect((await fetch(`${base}/dashboard`)).status).toBe(401);
    expect((await fetch(`${base}/dashboard?token=wrong`)).status).toBe(401);
    expect((await fetch(`${base}/dashboard/events?token=wrong`)).status).toBe(401);
    expect((await fetch(`${base}/stores?token=${TOKEN}`)).status).toBe(401);
    const ok = await fetch(`${base}/dashboard?token=${TOKEN}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('referrer-policy')).toBe('no-referrer');
    expect(await ok.text()).toContain('<title>Flotilla dashboard</title>');
  });

  it('shows every store and Region, then the split-off Region through the live stream', async () => {
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    await page.goto(`${base}/dashboard?token=${TOKEN}`, { waitUntil: 'domcontentloaded' });
    const storeIds = ((await getJson('/stores')).stores as { id: number }[]).map((s) => s.id).sort((a, b) => a - b);
    expect(storeIds).toHaveLength(3);
    await expect.poll(() => shown('#stores [data-store-id]', 'data-store-id'), { timeout: 10_000 }).toEqual(storeIds);
    const regionIds = async (): Promise<number[]> => ((await getJson('/regions')).regions as { id: number }[]).map((r) => r.id).sort((a, b) => a - b);
    const before = await regionIds();
    expect(before).toHaveLength(2);
    await expect.poll(() => shown('#regions [data-region-id]', 'data-region-id'), { timeout: 10_000 }).toEqual(before);
    expect(await shown('#map-scale [data-map-region-id]', 'data-map-region-id')).toEqual(before);
    await expect.poll(() => page.$eval('#conn', (e) => e.textContent), { timeout: 10_000 }).toBe('live');

    const paintedAt = Number(await page.$eval('body', (e) => e.getAttribute('data-snapshot-at')));
    await cluster.client.split('t');
    const after = await regionIds();
    expect(after).toHaveLength(3);
    // The page is not reloaded: the new Region arrives by the event stream's next snapshot.
    await expect.poll(() => shown('#regions [data-region-id]', 'data-region-id'), { timeout: 10_000 }).toEqual(after);
    expect(Number(await page.$eval('body', (e) => e.getAttribute('data-snapshot-at')))).toBeGreaterThan(paintedAt);
    await expect.poll(() => page.$$eval('#recent [data-recent-kind="split"]', (els) => els.length), { timeout: 10_000 }).toBeGreaterThan(0);
    expect(errors).toEqual([]);

    // Traffic into the Region holding "z…" (writes) and "a…" (reads): the stores report it in Region heartbeats,
    // placement keeps the rates, the page's hot tables and `flotilla regions --hot` show them.
    const zRegion = (await getJson('/regions/key/zz')).region.id as number;
    const aRegion = (await getJson('/regions/key/aa')).region.id as number;
    await cluster.client.put('aa', 'x'.repeat(100));
    const traffic = async (): Promise<void> => {
      await cluster.client.batchPut(Array.from({ length: 20 }, (_, i) => [`zz${i}`, 'v'.repeat(200)] as [string, string]));
      await cluster.client.batchGet(Array.from({ length: 20 }, () => 'aa'));
    };
    await expect
      .poll(async () => {
        await traffic();
        return page.$$eval('#hot-write tr[data-hot-region-id], #hot-read tr[data-hot-region-id]', (els) => els.map((e) => e.closest('table')!.id + ':' + e.getAttribute('data-hot-region-id')));
      }, { timeout: 15_000, interval: 300 })
      .toEqual(expect.arrayContaining([`hot-write:${zRegion}`, `hot-read:${aRegion}`]));
    await expect
      .poll(async () => {
        await traffic();
        const hot = (await getJson('/regions/hot?by=writeBytes')).regions as { id: number; flow: { writeBytesPerSec: number } }[];
        return hot[0] !== undefined && hot[0].flow.writeBytesPerSec > 0 ? hot[0].id : null;
      }, { timeout: 10_000, interval: 300 })
      .toBe(zRegion);
    // Rates cover each leader's last heartbeat interval only, so the CLI is polled under traffic too.
    const cliHot = async (): Promise<number[]> => {
      let out = '';
      const sink = { write: (chunk: string | Uint8Array) => ((out += String(chunk)), true) } as unknown as NodeJS.WritableStream;
      const code = await run(['regions', '--hot', '--json', '--placement', cluster.placementAddress], { stdout: sink, stderr: sink, env: { FLOTILLA_TOKEN: TOKEN } });
      expect(code, out).toBe(0);
      return (JSON.parse(out) as { id: number }[]).map((r) => r.id);
    };
    await expect
      .poll(async () => {
        await traffic();
        return cliHot();
      }, { timeout: 10_000, interval: 300 })
      .toEqual(expect.arrayContaining([zRegion, aRegion]));

    mkdirSync(ARTIFACT_DIR, { recursive: true });
    const shot = resolve(ARTIFACT_DIR, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(existsSync(shot)).toBe(true);
    console.log(`dashboard screenshot: ${shot}`);
  }, 30_000);

  it('paints the written key range hot on the key visualizer, switches metric, and names the range under the pointer', async () => {
    const BACKGROUND = [27, 34, 51]; // heatmap-page.ts HM.background, #1b2233
    // Non-background pixels of the plot between axis boundaries a and b (2 px in from each edge: a row's rounding may spill one pixel).
    type Canvas = { dataset: Record<string, string | undefined>; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } };
    const painted = (a: number, b: number): Promise<number> =>
      page.$eval(
        '#heatmap',
        (el, a, b, bg) => {
          const c = el as unknown as Canvas;
          if (c.dataset.plot === undefined || c.dataset.span === undefined) return -1;
          const p = JSON.parse(c.dataset.plot) as { left: number; top: number; width: number; height: number };
          const span = Number(c.dataset.span);
          const y0 = Math.ceil(p.top + (a / span) * p.height) + 2;
          const y1 = Math.floor(p.top + (b / span) * p.height) - 2;
          if (y1 <= y0) return -1;
          const px = c.getContext('2d').getImageData(p.left, y0, p.width, y1 - y0).data;
          let n = 0;
          for (let i = 0; i < px.length; i += 4) if (px[i] !== bg[0] || px[i + 1] !== bg[1] || px[i + 2] !== bg[2]) n++;
          return n;
        },
        a,
        b,
        BACKGROUND,
      );
    const traffic = async (): Promise<void> => {
      await cluster.client.batchPut(Array.from({ length: 20 }, (_, i) => [`zz${i}`, 'v'.repeat(200)] as [string, string]));
      await cluster.client.batchGet(Array.from({ length: 20 }, () => 'aa'));
    };
    // The Regions are ["", m), [m, t), [t, +inf) since the split above: the axis is those boundaries.
    const axis = (await getJson('/dashboard/heatmap')).keys as string[];
    expect(axis).toEqual(['', 'm', 't', '']);
    const [a, m, t, end] = [0, 1, 2, 3];
    await expect
      .poll(
        async () => {
          await traffic();
          return painted(t, end);
        },
        { timeout: 15_000, interval: 300 },
      )
      .toBeGreaterThan(0);
    // Nothing was written into [m, t): its rows stay background in every column, before and after the split.
    expect(await painted(m, t)).toBe(0);
    expect(await page.$eval('#heatmap', (e) => e.getAttribute('data-metric'))).toBe('write_bytes');

    // Colour by read bytes: the Region holding "aa" (read above) becomes hot.
    await page.select('#hm-metric', 'read_bytes');
    await expect.poll(() => page.$eval('#heatmap', (e) => e.getAttribute('data-metric')), { timeout: 10_000 }).toBe('read_bytes');
    await expect
      .poll(
        async () => {
          await traffic();
          return painted(a, m);
        },
        { timeout: 10_000, interval: 300 },
      )
      .toBeGreaterThan(0);
    expect(await painted(m, t)).toBe(0);

    // Hovering the newest column of the "aa" rows names that range and its amount.
    const box = (await (await page.$('#heatmap'))!.boundingBox())!;
    const plot = JSON.parse((await page.$eval('#heatmap', (e) => e.getAttribute('data-plot')))!) as { left: number; top: number; width: number; height: number };
    await page.mouse.move(box.x + plot.left + plot.width - 2, box.y + plot.top + plot.height / 6);
    await expect.poll(() => page.$eval('#hm-tip', (e) => e.textContent ?? ''), { timeout: 5_000 }).toMatch(/^\[\(start\), m\)\n.*\nread bytes: /);
    expect(await page.$eval('#hm-note', (e) => e.textContent)).toMatch(/Recorded in memory by the placement leader p1 .*Not persisted/);

    mkdirSync(ARTIFACT_DIR, { recursive: true });
    const shot = resolve(ARTIFACT_DIR, 'dashboard-heatmap.png');
    await (await page.$('#heatmap-panel'))!.screenshot({ path: shot });
    expect(existsSync(shot)).toBe(true);
    console.log(`dashboard heatmap screenshot: ${shot}`);
  }, 45_000);
});
