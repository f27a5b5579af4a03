// Drives the admin page (nginx/admin/) in headless Chromium for t/7040-admin-browser.t.
// Prints one line per check, "ok - <title>" or "not ok - <title> # <why>", which the Perl
// test turns into assertions; screenshots of each step go to $SHOTS. Environment: BASE_URL,
// ADMIN_USER/ADMIN_PASSWORD (a superuser), PLAIN_USER/PLAIN_PASSWORD, VICTIM (a username),
// CHROMIUM (the browser binary), SHOTS (a directory).
'use strict';

const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const env = process.env;
const base = env.BASE_URL;
const shots = env.SHOTS;
const WAIT = 20000; // generous: 2 cores shared by many test runs
let failed = 0;

function report(ok, title, why) {
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'not ok'} - ${title}${ok || !why ? '' : ' # ' + String(why).replace(/\n/g, ' ')}`);
}

async function check(title, fn) {
  try {
    const v = await fn();
    report(v !== false, title, v === false ? 'condition false' : '');
  } catch (e) {
    report(false, title, e && e.message);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

const visible = (page, sel) => page.waitForSelector(sel, { visible: true, timeout: WAIT });

async function signIn(page, user, password) {
  await page.goto(`${base}/admin/`, { waitUntil: 'domcontentloaded' });
  await visible(page, '#login-form');
  await page.type('#login-username', user);
  await page.type('#login-password', password);
  await page.keyboard.press('Enter'); // the form submits from the keyboard
}

async function rowsText(page) {
  return page.$$eval('#tbody tr', (trs) => trs.map((tr) => tr.textContent));
}

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const downloads = path.join(shots, 'downloads');
  fs.mkdirSync(downloads, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: env.CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT);
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.setViewport({ width: 1280, height: 800 });

    await check('the sign-in form is shown', async () => {
      await page.goto(`${base}/admin/`, { waitUntil: 'domcontentloaded' });
      await visible(page, '#login-form');
      await shot(page, '01-login');
    });
    await check('a superuser signs in and sees the dashboard with the six stats', async () => {
      await signIn(page, env.ADMIN_USER, env.ADMIN_PASSWORD);
      await visible(page, '#dashboard');
      await page.waitForFunction(() => document.querySelectorAll('#stats .stat').length === 6, { timeout: WAIT });
      await shot(page, '02-dashboard');
    });
    await check('no token in localStorage, sessionStorage or script-readable cookies', async () => {
      const s = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
      return s[0] === 0 && s[1] === 0 && !/access_token|refresh_token/.test(s[2]);
    });

    await check('the users list opens from the navigation', async () => {
      await page.click('#nav a[data-view="users"]');
      await visible(page, '#list');
      await page.waitForFunction(() => document.querySelectorAll('#tbody tr').length >= 3, { timeout: WAIT });
    });
    await check('sorting by a column marks it and the second click reverses the order', async () => {
      const names = () => page.$$eval('#tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
      await page.click('th button');
      await page.waitForSelector('th[aria-sort="ascending"]', { timeout: WAIT });
      const asc = await names();
      await page.click('th[aria-sort] button');
      await page.waitForSelector('th[aria-sort="descending"]', { timeout: WAIT });
      const desc = await names();
      return asc.length >= 3 && JSON.stringify(asc) === JSON.stringify([...desc].reverse());
    });
    await check('a debounced search finds the user', async () => {
      await page.click('#search');
      await page.keyboard.type(env.VICTIM, { delay: 20 });
      await page.waitForFunction((v) => {
        const rows = [...document.querySelectorAll('#tbody tr')];
        return rows.length === 1 && rows[0].textContent.includes(v);
      }, { timeout: WAIT }, env.VICTIM);
      await shot(page, '03-search');
    });
    await check('on a phone screen the page fits the width', async () => {
      // Width only: a change of isMobile makes puppeteer reload the page, which dropped the
      // search state under load (CI saw the next step click another row).
      await page.setViewport({ width: 390, height: 844 });
      await shot(page, '03b-search-phone');
      const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
      await page.setViewport({ width: 1280, height: 800 });
      return fits;
    });

    await check('the user opens in the detail view', async () => {
      await page.waitForFunction((v) => {
        const rows = [...document.querySelectorAll('#tbody tr')];
        return rows.length === 1 && rows[0].textContent.includes(v);
      }, { timeout: WAIT }, env.VICTIM);
      await page.click('#tbody tr button');
      await visible(page, '#toggle-active');
      return (await page.$eval('#toggle-active', (b) => b.textContent)) === 'Deactivate';
    });
    await check('deactivate asks for confirmation, then deactivates', async () => {
      await page.click('#toggle-active');
      await visible(page, '#confirm-ok');
      await shot(page, '04a-confirm');
      await page.click('#confirm-ok');
      await page.waitForFunction(() => document.querySelector('#toggle-active')
        && document.querySelector('#toggle-active').textContent === 'Reactivate', { timeout: WAIT });
      await shot(page, '04-deactivated');
    });
    await check('reactivate', async () => {
      await page.click('#toggle-active');
      await page.waitForFunction(() => document.querySelector('#toggle-active')
        && document.querySelector('#toggle-active').textContent === 'Deactivate', { timeout: WAIT });
      await shot(page, '05-reactivated');
    });
    await check('an API error is shown as it comes (a taken username)', async () => {
      const f = await page.$('#edit-form input[name="username"]');
      await f.click({ clickCount: 3 });
      await f.type(env.ADMIN_USER);
      await page.click('#edit-form button[type="submit"]');
      await visible(page, '#error');
      const text = await page.$eval('#error', (e) => e.textContent);
      await shot(page, '05b-error');
      return text.includes('Username already taken');
    });

    await check('export CSV downloads the filtered list', async () => {
      await page.click('#back');
      await visible(page, '#list');
      await page.waitForFunction((v) => [...document.querySelectorAll('#tbody tr')].some((r) => r.textContent.includes(v)),
        { timeout: WAIT }, env.VICTIM);
      const cdp = await page.createCDPSession();
      await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
      await page.click('#export');
      const file = path.join(downloads, 'users.csv');
      const t0 = Date.now();
      while (!fs.existsSync(file) && Date.now() - t0 < WAIT) await new Promise((r) => setTimeout(r, 200));
      await shot(page, '06-export');
      const csv = fs.readFileSync(file, 'utf8');
      return csv.startsWith('id,email,username,') && csv.includes(env.VICTIM);
    });

    await check('the audit view lists the deactivation and the reactivation', async () => {
      await page.click('#nav a[data-view="audit"]');
      await visible(page, '#list');
      await page.waitForFunction(() => [...document.querySelectorAll('#tbody tr')]
        .filter((r) => r.textContent.includes('is_active')).length >= 2, { timeout: WAIT });
      await shot(page, '07-audit');
      const rows = await rowsText(page);
      return rows.some((r) => /update.*users/.test(r));
    });
    await check('sign out', async () => {
      await page.click('#logout');
      await visible(page, '#login-form');
    });

    await check('a non-superuser sees the refusal', async () => {
      await signIn(page, env.PLAIN_USER, env.PLAIN_PASSWORD);
      await visible(page, '#refused');
      const text = await page.$eval('#refused-text', (e) => e.textContent);
      const nav = await page.$eval('#nav', (e) => e.hidden);
      await shot(page, '08-refused');
      return text.includes('Superuser required') && nav;
    });
    report(pageErrors.length === 0, 'no JavaScript errors on the page', pageErrors.join('; '));
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(failed ? 1 : 0), (e) => {
  report(false, 'the browser script ran', e && e.stack);
  process.exit(2);
});
