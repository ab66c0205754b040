// The consent journey in a real browser: the Acme Money demo frontend
// (connect-local on E2E_BASE_URL), the API behind it and the Finexer sandbox's
// hosted consent page. Run with `node --test e2e/` once the stack is up
// (scripts/e2e.sh does both).
//
// Every page visited is saved as a full-page screenshot in
// artifacts/screenshots/<case>-<step>.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE_URL = new URL(process.env.E2E_BASE_URL || 'http://127.0.0.1:3000');
const BASE = BASE_URL.origin;
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCREENSHOTS = process.env.E2E_SCREENSHOTS || join(ROOT, 'artifacts', 'screenshots');
/** Run-unique suffix: reruns against the same stack start from empty lists. */
const RUN = Date.now().toString(36).slice(-5);
const SESSION_KEY = 'acme-money-session';

const STEP_TIMEOUT = 20_000;
const NAVIGATION_TIMEOUT = 30_000;
const TEST_TIMEOUT = 120_000;
const SERVER_WAIT_MS = 30_000;

let context;
let profileDir;

before(async () => {
  await waitForServer();
  await mkdir(SCREENSHOTS, { recursive: true });
  profileDir = await mkdtemp(join(tmpdir(), 'connect-e2e-profile-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1200, height: 800 },
    locale: 'en-GB',
    timezoneId: 'Europe/London',
  });
});

after(async () => {
  await context?.close();
  if (profileDir) await rm(profileDir, { recursive: true, force: true });
});

async function waitForServer() {
  const deadline = Date.now() + SERVER_WAIT_MS;
  let last;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(BASE, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = error.cause?.code || error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`${BASE} did not answer within ${SERVER_WAIT_MS / 1000} s (${last}); start the stack first`);
}

// ---- A journey: one page of its own, with its checks and screenshots -------

/** Runs `body` with a fresh tab; fails on script errors and off-machine requests. */
function journey(name, body, { expectedConsoleErrors = null } = {}) {
  test(name, { timeout: TEST_TIMEOUT }, async () => {
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.setDefaultNavigationTimeout(NAVIGATION_TIMEOUT);
    const problems = [];
    page.on('pageerror', (error) => problems.push(`script error on ${page.url()}: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && page.url().startsWith(BASE) && !expectedConsoleErrors?.test(message.text())) {
        problems.push(`console error on ${page.url()}: ${message.text()}`);
      }
    });
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (!['data:', 'about:', 'blob:'].includes(url.protocol) && !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
        problems.push(`request to another host: ${request.url()}`);
      }
    });
    let shots = 0;
    const run = {
      page,
      /** Full-page screenshot: <case>-<nn>-<step>.png */
      async shot(step) {
        shots += 1;
        const file = join(SCREENSHOTS, `${name}-${String(shots).padStart(2, '0')}-${step}.png`);
        await page.screenshot({ path: file, fullPage: true });
      },
    };
    try {
      await body(run);
      assert.deepEqual(problems, [], 'the pages reported problems');
    } catch (error) {
      await run.shot('failed').catch(() => {});
      if (problems.length) error.message += `\n${problems.join('\n')}`;
      throw error;
    } finally {
      await page.close();
    }
  });
}

function userName(first) {
  return `${first} (e2e ${RUN})`;
}

function connectionSelector(consentId) {
  return `.connection[data-consent-id=${JSON.stringify(consentId)}]`;
}

// ---- Steps -------------------------------------------------------------------

async function signIn({ page, shot }, name) {
  await page.goto(`${BASE}/`);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  await page.waitForSelector('#sign-in');
  await shot('home');
  await page.fill('#user-name', name);
  await page.click('#sign-in');
  await page.waitForSelector('#signed-in-as');
  assert.equal((await page.textContent('#signed-in-as')).trim(), name);
  await page.waitForSelector('#sign-out');
  await page.waitForSelector('#connect');
  await page.waitForSelector('#connections[data-loaded="true"]', { state: 'attached' });
  assert.equal(await page.isVisible('#error-banner'), false, 'no error after sign-in');
  await shot('signed-in');
}

/** Clicks "Connect your bank" and waits for the sandbox's consent page. */
async function startConnection({ page, shot }, provider) {
  assert.equal(await page.inputValue('#provider-select'), '', 'the default is "Let me choose"');
  if (provider) await page.selectOption('#provider-select', provider);
  await Promise.all([
    page.waitForURL((url) => url.origin !== BASE && url.pathname.startsWith('/connect/'), { waitUntil: 'load' }),
    page.click('#connect'),
  ]);
}

/**
 * Walks the consent page (info → bank → confirm) and decides. Returns the
 * steps seen; ends on our /connected page.
 */
async function walkConsentPage({ page, shot }, { bank, expectBank = bank, decision }) {
  const seen = [];
  for (let screens = 0; screens < 6; screens++) {
    await page.waitForSelector('body[data-step]', { state: 'attached' });
    const step = await page.getAttribute('body', 'data-step');
    seen.push(step);
    await shot(`consent-${step}`);
    if (step === 'info') {
      await clickAndLoad(page, '#continue');
    } else if (step === 'bank') {
      assert.ok(bank, 'the bank picker was shown but no bank was given');
      await clickAndLoad(page, `button[data-provider=${JSON.stringify(bank)}]`);
    } else if (step === 'confirm') {
      assert.equal(await page.getAttribute('#selected-bank', 'data-provider'), expectBank);
      if (!bank) assert.equal(await page.$('#change-bank'), null, 'a bank chosen by the app cannot be changed');
      await Promise.all([
        page.waitForURL((url) => url.origin === BASE && url.pathname === '/connected', { waitUntil: 'load' }),
        page.click(decision === 'approve' ? '#approve' : '#deny'),
      ]);
      await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
      return seen;
    } else {
      const message = await page.textContent('main').catch(() => '');
      assert.fail(`the consent page showed "${step}": ${message.replace(/\s+/g, ' ').trim()}`);
    }
  }
  assert.fail(`the consent page never reached a decision (screens: ${seen.join(', ')})`);
}

async function clickAndLoad(page, selector) {
  await Promise.all([page.waitForEvent('load'), page.click(selector)]);
}

/** consent_id and status from the /connected URL, and the banner shown. */
async function returnedOutcome(page) {
  const url = new URL(page.url());
  assert.equal(url.pathname, '/connected');
  const consentId = url.searchParams.get('consent_id');
  assert.ok(consentId, `no consent_id in ${url}`);
  await page.waitForSelector('#result-banner');
  return {
    consentId,
    status: url.searchParams.get('status'),
    error: url.searchParams.get('error'),
    banner: await page.getAttribute('#result-banner', 'data-status'),
    bannerText: (await page.textContent('#result-banner')).replace(/\s+/g, ' ').trim(),
  };
}

/** The API, called from the test with the signed-in tab's token. */
async function apiGet(page, path) {
  const session = JSON.parse(await page.evaluate((key) => sessionStorage.getItem(key), SESSION_KEY));
  assert.ok(session?.token, 'the tab holds a token');
  const response = await fetch(new URL(path, BASE), {
    headers: { Authorization: `Bearer ${session.token}` },
    signal: AbortSignal.timeout(STEP_TIMEOUT),
  });
  return { status: response.status, body: await response.json() };
}

/** Sign in, connect, pick a bank, approve: returns the authorized consent's id. */
async function connectAndApprove(run, name, bank) {
  const { page, shot } = run;
  await signIn(run, name);
  await startConnection(run, '');
  const steps = await walkConsentPage(run, { bank, decision: 'approve' });
  assert.ok(steps.includes('bank'), `the bank picker was shown (screens: ${steps.join(', ')})`);

  const outcome = await returnedOutcome(page);
  assert.equal(outcome.status, 'authorized');
  assert.equal(outcome.banner, 'authorized');
  assert.match(outcome.bannerText, /connected/i);
  const connection = connectionSelector(outcome.consentId);
  await page.waitForSelector(`${connection}[data-status="authorized"]`);
  await page.waitForSelector(`${connection} .accounts .account`);
  await shot('connected');
  return outcome.consentId;
}

// ---- Cases ---------------------------------------------------------------------

journey('approve', async (run) => {
  const { page } = run;
  const name = userName('Alice');
  const consentId = await connectAndApprove(run, name, 'sandbox-barclays');
  const connection = connectionSelector(consentId);

  assert.equal(await page.textContent(`${connection} .bank-name`), 'Barclays');
  assert.equal(await page.isVisible(`${connection} .revoke`), true, 'an authorized connection can be revoked');
  assert.equal(await page.isVisible('#error-banner'), false);

  // Accounts: shown with holder, masked numbers and currency, never in full.
  const shown = new Map(await page.$$eval(`${connection} .accounts .account`,
    (items) => items.map((item) => [item.dataset.accountId, item.textContent])));
  assert.ok(shown.size >= 1, 'at least one account');
  const api = await apiGet(page, `/consents/${encodeURIComponent(consentId)}/accounts`);
  assert.equal(api.status, 200);
  assert.equal(api.body.data.length, shown.size, 'every account the API returns is listed');
  for (const account of api.body.data) {
    const text = shown.get(account.id);
    assert.ok(text, `account ${account.id} is listed`);
    assert.ok(text.includes(account.holder_name), 'holder shown');
    assert.ok(text.includes(account.currency), 'currency shown');
    const number = account.identification?.account_number;
    if (number) {
      assert.ok(!text.includes(number), 'the full account number is not shown');
      assert.ok(text.includes(`••••${number.slice(-4)}`), 'the masked account number is shown');
    }
    const sortCode = account.identification?.sort_code;
    if (sortCode) assert.ok(!text.includes(sortCode), 'the full sort code is not shown');
  }

  const consent = await apiGet(page, `/consents/${encodeURIComponent(consentId)}`);
  assert.equal(consent.body.status, 'authorized');
  assert.equal(consent.body.provider, 'sandbox-barclays');
});

journey('deny', async (run) => {
  const { page, shot } = run;
  await signIn(run, userName('Bob'));
  await startConnection(run, '');
  const steps = await walkConsentPage(run, { bank: 'sandbox-monzo', decision: 'deny' });
  assert.ok(steps.includes('bank'));

  const outcome = await returnedOutcome(page);
  assert.equal(outcome.status, 'canceled');
  assert.equal(outcome.error, 'access_denied');
  assert.equal(outcome.banner, 'canceled');
  assert.match(outcome.bannerText, /cancel/i);
  const connection = connectionSelector(outcome.consentId);
  await page.waitForSelector(`${connection}[data-status="canceled"]`);
  assert.equal(await page.$(`${connection} .accounts`), null, 'no accounts for a denied consent');
  assert.equal(await page.$(`${connection} .revoke`), null, 'nothing to revoke');
  assert.equal(await page.isVisible('#error-banner'), false);
  await shot('canceled');
});

journey('revoke', async (run) => {
  const { page, shot } = run;
  const consentId = await connectAndApprove(run, userName('Carol'), 'sandbox-hsbc');
  const connection = connectionSelector(consentId);

  // Changing one's mind at the confirmation keeps the connection.
  let asked = '';
  page.once('dialog', (dialog) => {
    asked = dialog.message();
    dialog.dismiss();
  });
  await page.click(`${connection} .revoke`);
  assert.match(asked, /revoke/i);
  assert.equal(await page.getAttribute(connection, 'data-status'), 'authorized');

  page.once('dialog', (dialog) => dialog.accept());
  await page.click(`${connection} .revoke`);
  await page.waitForSelector(`${connection}[data-status="canceled"]`);
  assert.equal(await page.$(`${connection} .revoke`), null, 'a revoked connection has no revoke button');
  assert.equal(await page.$(`${connection} .accounts`), null, 'a revoked connection shows no accounts');
  assert.equal(await page.isVisible('#error-banner'), false);
  await page.waitForSelector('#result-banner[data-status="canceled"]');
  assert.match(await page.textContent('#result-banner'), /revoked/i);
  await page.click(`${connection} .history summary`);
  const history = await page.textContent(`${connection} .history`);
  assert.match(history, /authorized → revoke_pending/);
  assert.match(history, /revoke_pending → canceled/);
  await shot('revoked');

  const consent = await apiGet(page, `/consents/${encodeURIComponent(consentId)}`);
  assert.equal(consent.body.status, 'canceled');
  assert.ok(consent.body.revoked_at, 'revoked_at recorded');
  const accounts = await apiGet(page, `/consents/${encodeURIComponent(consentId)}/accounts`);
  assert.equal(accounts.status, 409, 'accounts of a revoked consent are refused');

  // Still canceled after a reload.
  await page.reload();
  await page.waitForSelector(`${connection}[data-status="canceled"]`);
});

journey('preselected', async (run) => {
  const { page, shot } = run;
  // Every document the tab loads reports whether it had a bank picker.
  const screens = [];
  await page.exposeBinding('reportScreen', ({ frame }, screen) => {
    if (frame === page.mainFrame()) screens.push(screen);
  });
  await page.addInitScript(() => {
    document.addEventListener('DOMContentLoaded', () => {
      window.reportScreen({
        url: location.href,
        step: document.body?.dataset.step || null,
        picker: document.querySelector('button[data-provider], #step-bank') !== null,
      });
    });
  });

  await signIn(run, userName('Dan'));
  await startConnection(run, 'sandbox-lloyds');
  const steps = await walkConsentPage(run, { bank: null, expectBank: 'sandbox-lloyds', decision: 'approve' });
  assert.ok(!steps.includes('bank'), `no bank picker (screens: ${steps.join(', ')})`);
  assert.ok(steps.includes('confirm'));

  const outcome = await returnedOutcome(page);
  assert.equal(outcome.status, 'authorized');
  assert.equal(outcome.banner, 'authorized');
  const connection = connectionSelector(outcome.consentId);
  await page.waitForSelector(`${connection}[data-status="authorized"]`);
  await page.waitForSelector(`${connection} .accounts .account`);
  assert.equal(await page.textContent(`${connection} .bank-name`), 'Lloyds Bank');
  await shot('connected');

  const sandboxScreens = screens.filter((screen) => !screen.url.startsWith(BASE));
  assert.ok(sandboxScreens.length >= 1, 'the consent page was seen');
  assert.deepEqual(sandboxScreens.filter((screen) => screen.picker || screen.step === 'bank'), [],
    'the bank picker was never shown');
  const consent = await apiGet(page, `/consents/${encodeURIComponent(outcome.consentId)}`);
  assert.equal(consent.body.provider, 'sandbox-lloyds');
});

journey('session-expired', async (run) => {
  const { page, shot } = run;
  await signIn(run, userName('Erin'));
  // The token stops being accepted (expired, or the server's key changed).
  await page.evaluate((key) => {
    const session = JSON.parse(sessionStorage.getItem(key));
    sessionStorage.setItem(key, JSON.stringify({ ...session, token: 'not-a-valid-token' }));
  }, SESSION_KEY);
  await page.reload();
  await page.waitForSelector('#error-banner');
  assert.match(await page.textContent('#error-banner'), /sign in again/i);
  assert.equal(await page.getAttribute('#error-banner', 'data-status'), '401');
  await page.waitForSelector('#sign-in');
  assert.equal(await page.isVisible('#connect'), false, 'signed out: no connect button');
  assert.equal(await page.isVisible('#sign-out'), false);
  await shot('signed-out');
}, { expectedConsoleErrors: /status of 401/ });
