// Browser tests of the Tokens console: Debian's chromium, driven by
// playwright-core, against a running local stack. cmd/localapi's
// TestConsoleBrowser starts the stack (runner + DynamoDB Local), issues an
// access token and runs this file with:
//   CONSOLE_URL   the runner's base URL
//   ACCESS_TOKEN  a user access token (at-...)
//   CHROMIUM      the browser (default /usr/bin/chromium)
//   SCREENSHOT    where to save the table's screenshot (optional)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const URL_ = process.env.CONSOLE_URL;
const TOKEN = process.env.ACCESS_TOKEN;
const KEY_RE = /^sk-[A-Za-z0-9]{48}$/;
const T = 10_000; // per wait

let context;
let page;
let profile;
const pageErrors = [];
let alphaKey = '';
let batchKeys = [];

// api calls the token API directly, to check what the page did.
async function api(method, path, body) {
  const resp = await fetch(URL_ + path, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const env = await resp.json();
  assert.equal(env.success, true, `${method} ${path}: ${env.message}`);
  return env.data;
}

const findToken = async (name) => (await api('GET', `/api/token/search?keyword=${encodeURIComponent(name)}`)).find((x) => x.name === name);
const clipboard = () => page.evaluate(() => navigator.clipboard.readText());
// copied waits until the clipboard holds something (copies are async) and returns it.
async function copied() {
  for (let i = 0; i < 50; i++) {
    const text = await clipboard();
    if (text !== '') return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  return '';
}
const clearClipboard = () => page.evaluate(() => navigator.clipboard.writeText(''));
const row = (name) => page.locator('#token-rows tr', { has: page.locator('.token-name', { hasText: new RegExp(`^${name}$`) }) });

before(async () => {
  assert.ok(URL_ && TOKEN, 'CONSOLE_URL and ACCESS_TOKEN are required (run through TestConsoleBrowser)');
  profile = mkdtempSync(join(tmpdir(), 'console-e2e-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    locale: 'zh-CN',
    viewport: { width: 1360, height: 760 },
    permissions: ['clipboard-read', 'clipboard-write'],
    timeout: 30_000,
  });
  context.setDefaultTimeout(T);
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`);
  });
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test('the page loads its files under the CSP, in Chinese by navigator.language', async () => {
  const resp = await page.goto(URL_ + '/');
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'], /default-src 'self'/);
  assert.equal(resp.headers()['cache-control'], 'no-cache');
  await page.locator('#signin-view').waitFor();
  assert.equal(await page.locator('h1').textContent(), '令牌管理');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
  const js = await page.request.get(URL_ + '/assets/app.js');
  assert.equal(js.headers()['content-type'], 'text/javascript; charset=utf-8');
  const png = await page.request.get(URL_ + '/assets/icon.png');
  assert.equal(png.headers()['content-type'], 'image/png');
  assert.deepEqual([...(await png.body()).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  assert.equal((await page.request.get(URL_ + '/assets/nope.js')).status(), 404);
});

test('a wrong access token is refused with a message; the right one signs in', async () => {
  await page.fill('#access-token', 'at-' + 'A'.repeat(43));
  await page.click('#signin-form button[type=submit]');
  await page.locator('#signin-error', { hasText: '访问令牌无效' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  await page.fill('#access-token', TOKEN);
  await page.keyboard.press('Enter');
  await page.locator('#tokens-view').waitFor();
  await page.locator('#empty', { hasText: '还没有令牌' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('console.accessToken')), TOKEN);
});

test('create a token with limits: IPs checked as typed, key shown once and copied', async () => {
  await page.click('#create-button');
  const dialog = page.locator('#token-dialog');
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'f-name', 'focus moves into the dialog');
  await page.fill('#f-name', 'e2e-alpha');
  await page.check('#token-dialog input[name=expiry][value=day]');
  await page.fill('#f-quota', '5000');
  await page.check('#f-models-enabled');
  await page.fill('#f-model-input', 'gpt-4');
  await page.keyboard.press('Enter');
  await page.fill('#f-model-input', 'gpt-4o');
  await page.keyboard.press('Enter');
  assert.deepEqual(await page.locator('#f-model-tags .tag > span').allTextContents(), ['gpt-4', 'gpt-4o']);
  assert.ok(await dialog.isVisible(), 'Enter in the model field adds a tag, it does not submit');

  await page.fill('#f-ips', '10.0.0.0/8\n300.1.1.1');
  await page.locator('#f-ips-error', { hasText: '300.1.1.1' }).waitFor();
  assert.equal(await page.isDisabled('#token-submit'), true);
  await page.fill('#f-ips', '10.0.0.0/8\n2001:db8::/32');
  await page.locator('#f-ips-error').waitFor({ state: 'hidden' });
  await page.fill('#f-group', 'default');
  await page.fill('#f-rpm', '60');
  await page.click('#token-submit');

  await page.locator('#keys-dialog').waitFor();
  const keys = await page.locator('#keys-list .full-key').allTextContents();
  assert.equal(keys.length, 1);
  assert.match(keys[0], KEY_RE);
  alphaKey = keys[0];
  await clearClipboard();
  await page.click('#keys-list button');
  await page.locator('#toast', { hasText: '已复制' }).waitFor();
  assert.equal(await copied(), alphaKey);
  await page.keyboard.press('Escape');
  await page.locator('#keys-dialog').waitFor({ state: 'hidden' });

  const r = row('e2e-alpha');
  await r.waitFor();
  assert.equal(await r.locator('.badge').textContent(), '已启用');
  assert.equal(await r.locator('.masked-key').textContent(), `sk-${alphaKey.slice(3, 7)}**********${alphaKey.slice(-4)}`);
  assert.match(await r.locator('td').nth(4).textContent(), /5,000/);

  const tok = await findToken('e2e-alpha');
  assert.equal(tok.model_limits_enabled, true);
  assert.equal(tok.model_limits, 'gpt-4,gpt-4o');
  assert.match(tok.allow_ips, /10\.0\.0\.0\/8/);
  assert.match(tok.allow_ips, /2001:db8::\/32/);
  assert.equal(tok.rpm_limit, 60);
  assert.equal(tok.remain_quota, 5000);
  assert.ok(Math.abs(tok.expired_time - (Date.now() / 1000 + 86400)) < 120, `expired_time ${tok.expired_time}`);
});

test('the copy button copies the real key through the reveal endpoint', async () => {
  await clearClipboard();
  await row('e2e-alpha').locator('.copy-key').click();
  assert.equal(await copied(), alphaKey);
  await page.locator('#toast', { hasText: '已复制' }).waitFor();
});

test('batch creation shows every key once', async () => {
  await page.click('#create-button');
  await page.fill('#f-name', 'e2e-batch');
  await page.check('#f-unlimited');
  assert.equal(await page.isDisabled('#f-quota'), true);
  await page.fill('#f-count', '3');
  await page.click('#token-submit');
  await page.locator('#keys-dialog').waitFor();
  batchKeys = await page.locator('#keys-list .full-key').allTextContents();
  assert.equal(batchKeys.length, 3);
  for (const k of batchKeys) assert.match(k, KEY_RE);
  assert.deepEqual(await page.locator('#keys-list .key-name').allTextContents(), ['e2e-batch', 'e2e-batch-2', 'e2e-batch-3']);
  await page.click('#keys-dialog button[data-close]');
  await page.locator('#keys-dialog').waitFor({ state: 'hidden' });
  await page.locator('#token-rows tr').nth(3).waitFor();
  assert.equal(await page.locator('#token-rows tr').count(), 4);
  assert.equal(await row('e2e-batch-2').locator('td').nth(4).textContent(), '无限');
});

test('search by name and by key fragment', async () => {
  await page.fill('#search-name', 'BATCH');
  await page.press('#search-name', 'Enter');
  await page.locator('#page-info', { hasText: '找到 3 个' }).waitFor();
  assert.deepEqual((await page.locator('#token-rows .token-name').allTextContents()).sort(), ['e2e-batch', 'e2e-batch-2', 'e2e-batch-3']);

  await page.fill('#search-name', '');
  await page.fill('#search-key', alphaKey.slice(-4));
  await page.click('#search-form button[type=submit]');
  await page.locator('#page-info', { hasText: '找到 1 个' }).waitFor();
  assert.deepEqual(await page.locator('#token-rows .token-name').allTextContents(), ['e2e-alpha']);

  await page.fill('#search-key', 'zzzz-not-a-key');
  await page.click('#search-form button[type=submit]');
  await page.locator('#empty', { hasText: '没有匹配的令牌' }).waitFor();

  await page.click('#search-reset');
  await page.locator('#page-info', { hasText: '共 4 个' }).waitFor();
});

test('disable and re-enable with the switch', async () => {
  const sw = () => row('e2e-alpha').locator('.switch');
  assert.equal(await sw().getAttribute('aria-checked'), 'true');
  await sw().click();
  await row('e2e-alpha').locator('.badge', { hasText: '已禁用' }).waitFor();
  assert.equal(await sw().getAttribute('aria-checked'), 'false');
  assert.equal((await findToken('e2e-alpha')).status, 2);
  await sw().press('Space'); // by keyboard: the switch keeps focus
  await row('e2e-alpha').locator('.badge', { hasText: '已启用' }).waitFor();
  assert.equal((await findToken('e2e-alpha')).status, 1);
});

test('edit keeps what is not changed', async () => {
  const before = await findToken('e2e-alpha');
  await row('e2e-alpha').locator('.edit').click();
  await page.locator('#token-dialog').waitFor();
  assert.equal(await page.inputValue('#f-name'), 'e2e-alpha');
  assert.equal(await page.isHidden('#f-count-wrap'), true);
  assert.deepEqual(await page.locator('#f-model-tags .tag > span').allTextContents(), ['gpt-4', 'gpt-4o']);
  assert.equal(await page.inputValue('#f-ips'), before.allow_ips.split(',').join('\n'));
  await page.fill('#f-name', 'e2e-alpha-2');
  await page.fill('#f-rpm', '120');
  await page.click('#token-submit');
  await page.locator('#token-dialog').waitFor({ state: 'hidden' });
  await row('e2e-alpha-2').waitFor();
  const after = await findToken('e2e-alpha-2');
  assert.equal(after.id, before.id);
  assert.equal(after.rpm_limit, 120);
  assert.equal(after.expired_time, before.expired_time);
  assert.equal(after.model_limits, before.model_limits);
  assert.equal(after.allow_ips, before.allow_ips);
  assert.equal(after.remain_quota, before.remain_quota);
});

test('spend windows: create with a day and a minute budget, see them, edit a limit, remove a window', async () => {
  await page.click('#create-button');
  await page.locator('#token-dialog').waitFor();
  await page.fill('#f-name', 'e2e-windows');
  await page.check('#f-unlimited');
  await page.fill('#f-budget-day', '100000');
  await page.fill('#f-budget-minute', '5000');
  await page.click('#token-submit');
  await page.locator('#keys-dialog').waitFor();
  await page.click('#keys-dialog button[data-close]');
  await page.locator('#keys-dialog').waitFor({ state: 'hidden' });

  let tok = await findToken('e2e-windows');
  assert.deepEqual(tok.budgets, { day: 100000, minute: 5000 });
  assert.equal(tok.budget_timezone, '');
  assert.deepEqual(Object.keys(tok.budget_usage).sort(), ['day', 'minute']);
  assert.equal(tok.budget_usage.day.used, 0);
  assert.ok(tok.budget_usage.minute.resets_at > Date.now() / 1000 - 5 && tok.budget_usage.minute.resets_at <= Date.now() / 1000 + 65,
    `minute window resets at ${tok.budget_usage.minute.resets_at}`);

  // In the table: one bar per window, shortest first, used / limit and the reset.
  const r = row('e2e-windows');
  await r.waitFor();
  const wins = r.locator('.window');
  assert.deepEqual(await wins.evaluateAll((ws) => ws.map((w) => w.dataset.period)), ['minute', 'day']);
  assert.equal(await wins.nth(0).locator('.window-label').textContent(), '每分钟');
  assert.equal(await wins.nth(0).locator('.window-used').textContent(), '0 / 5,000');
  assert.equal(await wins.nth(1).locator('.window-used').textContent(), '0 / 100,000');
  assert.equal(await wins.nth(1).locator('meter').evaluate((m) => [m.min, m.max, m.value].join()), '0,100000,0');
  assert.match(await wins.nth(1).locator('.window-reset').textContent(), /重置$/);
  assert.equal(await wins.nth(1).locator('time').getAttribute('datetime'), new Date(tok.budget_usage.day.resets_at * 1000).toISOString());
  assert.equal(await row('e2e-alpha-2').locator('.windows').count(), 0, 'a token without windows shows none');

  // The edit dialog shows them; a new day limit, and the minute window removed by 0.
  await r.locator('.edit').click();
  await page.locator('#token-dialog').waitFor();
  assert.equal(await page.inputValue('#f-budget-day'), '100000');
  assert.equal(await page.inputValue('#f-budget-minute'), '5000');
  assert.equal(await page.inputValue('#f-budget-hour'), '');
  assert.equal(await page.inputValue('#f-budget-tz'), '');
  await page.fill('#f-budget-day', '200000');
  await page.fill('#f-budget-minute', '0');
  await page.click('#token-submit');
  await page.locator('#token-dialog').waitFor({ state: 'hidden' });
  await row('e2e-windows').locator('.window-used', { hasText: '0 / 200,000' }).waitFor();
  assert.deepEqual(await row('e2e-windows').locator('.window').evaluateAll((ws) => ws.map((w) => w.dataset.period)), ['day']);
  tok = await findToken('e2e-windows');
  assert.deepEqual(tok.budgets, { day: 200000 });
  assert.deepEqual(Object.keys(tok.budget_usage), ['day']);
  assert.equal(tok.budget_usage.day.limit, 200000);

  // English labels; a bad limit is refused with the API's message.
  await page.click('#lang-switch');
  assert.equal(await row('e2e-windows').locator('.window-label').textContent(), 'Per day');
  assert.match(await row('e2e-windows').locator('.window-reset').textContent(), /^resets /);
  await row('e2e-windows').locator('.edit').click();
  await page.fill('#f-budget-tz', 'Mars/Olympus');
  await page.click('#token-submit');
  await page.locator('#token-form-error', { hasText: 'Invalid budgets' }).waitFor();
  await page.keyboard.press('Escape');
  await page.click('#lang-switch');
  assert.equal((await findToken('e2e-windows')).budget_timezone, '');

  await row('e2e-windows').locator('.delete').click();
  await page.locator('#confirm-dialog').waitFor();
  await page.click('#confirm-ok');
  await row('e2e-windows').waitFor({ state: 'detached' });
});

test('an API error is shown with the API message: 31-character name', async () => {
  await page.click('#create-button');
  await page.fill('#f-name', 'x'.repeat(31));
  await page.click('#token-submit');
  await page.locator('#token-form-error', { hasText: '令牌名称过长' }).waitFor();
  assert.ok(await page.locator('#token-dialog').isVisible(), 'the dialog stays open');
  await page.keyboard.press('Escape');
  await page.locator('#token-dialog').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'create-button', 'focus returns to the opener');
});

test('screenshot of the table, and cards at phone width', async () => {
  if (process.env.SCREENSHOT) {
    // A disabled row too, and no toast or focus ring in the picture.
    await row('e2e-batch-3').locator('.switch').click();
    await row('e2e-batch-3').locator('.badge', { hasText: '已禁用' }).waitFor();
    await page.evaluate(() => {
      document.activeElement.blur();
      document.querySelector('#toast').hidden = true;
    });
    await page.mouse.move(0, 0);
    await page.screenshot({ path: process.env.SCREENSHOT });
  }
  await page.setViewportSize({ width: 390, height: 844 });
  const display = await page.locator('#token-rows tr').first().evaluate((tr) => getComputedStyle(tr).display);
  assert.equal(display, 'block');
  assert.equal(await page.locator('thead').evaluate((th) => th.getBoundingClientRect().height <= 1), true);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px at phone width`);
  await page.setViewportSize({ width: 1360, height: 760 });
});

test('batch copy and batch delete of the selected rows', async () => {
  for (const name of ['e2e-batch', 'e2e-batch-2', 'e2e-batch-3']) await row(name).locator('.row-select').check();
  await page.locator('#selection-count', { hasText: '已选 3 个' }).waitFor();
  await clearClipboard();
  await page.click('#batch-copy');
  await page.locator('#toast', { hasText: '已复制 3 个密钥' }).waitFor();
  assert.deepEqual((await copied()).split('\n').sort(), [...batchKeys].sort());

  await page.click('#batch-delete');
  await page.locator('#confirm-dialog', { hasText: '3' }).waitFor();
  await page.click('#confirm-ok');
  await page.locator('#toast', { hasText: '已删除 3 个令牌' }).waitFor();
  await page.locator('#page-info', { hasText: '共 1 个' }).waitFor();
  assert.deepEqual(await page.locator('#token-rows .token-name').allTextContents(), ['e2e-alpha-2']);
  assert.equal(await page.isDisabled('#batch-delete'), true);
});

test('English: the switch translates the page and the API answers in English', async () => {
  await page.click('#lang-switch');
  assert.equal(await page.locator('h1').textContent(), 'Tokens');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  assert.equal(await row('e2e-alpha-2').locator('.badge').textContent(), 'Enabled');
  await page.click('#create-button');
  await page.fill('#f-name', 'y'.repeat(31));
  await page.click('#token-submit');
  await page.locator('#token-form-error', { hasText: 'The token name is too long' }).waitFor();
  await page.keyboard.press('Escape');
  await page.click('#lang-switch');
  assert.equal(await page.locator('h1').textContent(), '令牌管理');
});

test('delete one token, then sign out clears the session', async () => {
  await row('e2e-alpha-2').locator('.delete').click();
  await page.locator('#confirm-dialog').waitFor();
  await page.click('#confirm-ok');
  await page.locator('#empty', { hasText: '还没有令牌' }).waitFor();
  await page.click('#sign-out');
  await page.locator('#signin-view').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('console.accessToken')), null);
  await page.reload();
  await page.locator('#signin-view').waitFor();
});

test('no script error and no CSP violation in the page', () => {
  // The refused access token (403) and the too-long names (400) are expected
  // failed requests; anything else is a bug.
  assert.deepEqual(pageErrors.filter((e) => !/Failed to load resource: the server responded with a status of (400|403) /.test(e)), []);
});
