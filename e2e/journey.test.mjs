// The consent journey in a real browser: the Acme Money demo frontend
// (connect-local's demo on E2E_BASE_URL), the API it calls cross-site
// (E2E_API_URL: another site, as a platform's frontend calls the deployed API)
// and the Finexer sandbox's hosted consent page. Run with `node --test e2e/`
// once the stack is up (scripts/e2e.sh does both).
//
// Every journey checks that it ran cross-site: the page's origin is not the
// API's, and each call the page makes to the API is a CORS request from the
// page's origin with the bearer token and without a Cookie header. It also
// checks that the one-time code the bank's return carries in its fragment
// appears in no request the pages make (URL or Referer), and, at the end, that
// the demo server's access log (E2E_DEMO_LOG) never contains a code.
//
// Every page visited is saved as a full-page screenshot in
// artifacts/screenshots/<case>-<step>.png.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE_URL = new URL(process.env.E2E_BASE_URL || 'http://localhost:3002');
const BASE = BASE_URL.origin;
const API_URL = new URL(process.env.E2E_API_URL || 'http://127.0.0.1:3000');
const API = API_URL.origin;
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCREENSHOTS = process.env.E2E_SCREENSHOTS || join(ROOT, 'artifacts', 'screenshots');
/** Run-unique suffix: reruns against the same stack start from empty lists. */
const RUN = Date.now().toString(36).slice(-5);
const SESSION_KEY = 'acme-money-session';
/** The stack's log, which holds the demo server's access log (lines of target demo_access). */
const DEMO_LOG = process.env.E2E_DEMO_LOG || '';
/** Every one-time code a return brought, across the journeys. */
const codesSeen = new Set();

const STEP_TIMEOUT = 20_000;
const NAVIGATION_TIMEOUT = 30_000;
const TEST_TIMEOUT = 120_000;
const SERVER_WAIT_MS = 30_000;

let context;
let profileDir;

before(async () => {
  // Another site, not only another origin: the host differs (a port does not
  // make a site), so the browser treats cookies and CORS as in production.
  assert.notEqual(BASE_URL.hostname, API_URL.hostname, 'E2E_BASE_URL and E2E_API_URL must be different sites');
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
    // Playwright turns the back/forward cache off by default; browsers have it on.
    ignoreDefaultArgs: ['--disable-back-forward-cache'],
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

/**
 * Runs `body` with a fresh tab; fails on script errors, off-machine requests,
 * calls to the API that are not cross-site bearer calls without cookies, and
 * any request carrying a return's code. `run.watch(page)` adds another tab.
 */
function journey(name, body, { expectedConsoleErrors = null } = {}) {
  test(name, { timeout: TEST_TIMEOUT }, async () => {
    const problems = [];
    /** The pages' calls to the API, with the headers the browser sent. */
    const apiCalls = [];
    /** "METHOD /path status" of every API answer the pages received. */
    const apiAnswers = [];
    /** Every request the pages made: the URL as sent (no fragment) and its headers. */
    const sent = [];
    const pages = [];
    function watch(page) {
      pages.push(page);
      page.setDefaultTimeout(STEP_TIMEOUT);
      page.setDefaultNavigationTimeout(NAVIGATION_TIMEOUT);
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
        // allHeaders(): what went on the wire, cookies and Referer included.
        // A request cut off by a navigation or a closing page may have no headers to give.
        const headers = request.allHeaders().catch(() => null);
        url.hash = '';
        sent.push(headers.then((all) => ({ url: url.href, referer: all?.referer || '' })));
      });
      // Calls the API answered (one cut off by leaving the page has only provisional headers).
      page.on('requestfinished', (request) => {
        const url = new URL(request.url());
        if (url.origin === API && ['fetch', 'xhr'].includes(request.resourceType())) {
          apiCalls.push(request.allHeaders().catch(() => null)
            .then((all) => ({ call: `${request.method()} ${url.pathname}`, headers: all })));
        }
      });
      page.on('response', (response) => {
        const url = new URL(response.url());
        if (url.origin === API && ['fetch', 'xhr'].includes(response.request().resourceType())) {
          apiAnswers.push(`${response.request().method()} ${url.pathname} ${response.status()}`);
        }
      });
      return page;
    }
    const page = watch(await context.newPage());
    let shots = 0;
    const run = {
      page,
      apiAnswers,
      watch,
      /** The /connected URL the bank journey returned to, as it arrived. */
      arrived: null,
      /** Full-page screenshot: <case>-<nn>-<step>.png */
      async shot(step, of = page) {
        shots += 1;
        const file = join(SCREENSHOTS, `${name}-${String(shots).padStart(2, '0')}-${step}.png`);
        await of.screenshot({ path: file, fullPage: true });
      },
    };
    try {
      await body(run);
      assert.deepEqual(problems, [], 'the pages reported problems');
      await assertCrossSite(page, (await Promise.all(apiCalls)).filter((call) => call.headers !== null));
      await assertNoCodeSent(await Promise.all(sent));
    } catch (error) {
      for (const open of pages) await run.shot('failed', open).catch(() => {});
      if (problems.length) error.message += `\n${problems.join('\n')}`;
      throw error;
    } finally {
      for (const open of pages) await open.close();
    }
  });
}

/** No request carried a return's code, in its URL or its Referer. */
async function assertNoCodeSent(requests) {
  assert.ok(requests.length > 0, 'the pages made requests');
  for (const code of codesSeen) {
    for (const { url, referer } of requests) {
      assert.ok(!url.includes(code), `a request carried the code in its URL: ${url}`);
      assert.ok(!referer.includes(code), `a request carried the code in its Referer: ${url} (Referer ${referer})`);
    }
  }
}

/** The page is on its own site and calls the API there with its token only. */
async function assertCrossSite(page, calls) {
  const origin = await page.evaluate(() => location.origin);
  assert.equal(origin, BASE, 'the page is the demo frontend');
  assert.notEqual(origin, API, "the page's origin is not the API's");
  assert.ok(calls.length > 0, 'the page called the API');
  for (const { call, headers } of calls) {
    assert.equal(headers.cookie, undefined, `${call}: no Cookie header to the API`);
    assert.equal(headers.origin, BASE, `${call}: a CORS request from the page's origin (headers: ${Object.keys(headers).join(' ')})`);
    if (!call.startsWith('OPTIONS ')) assert.match(headers.authorization || '', /^Bearer \S+$/, `${call}: the bearer token`);
  }
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
async function walkConsentPage(run, { bank, expectBank = bank, decision }) {
  const { page, shot } = run;
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
        page.waitForURL((url) => {
          const back = url.origin === BASE && url.pathname === '/connected';
          if (back) run.arrived = new URL(url.href);
          return back;
        }, { waitUntil: 'load' }),
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

/** Walks the consent page up to the decision and clicks it (the return is not awaited). */
async function walkConsentPageUntilDecision(run, decision) {
  const { page, shot } = run;
  for (let screens = 0; screens < 6; screens++) {
    await page.waitForSelector('body[data-step]', { state: 'attached' });
    const step = await page.getAttribute('body', 'data-step');
    await shot(`consent-${step}`);
    if (step === 'info') {
      await clickAndLoad(page, '#continue');
    } else if (step === 'confirm') {
      await page.click(decision === 'approve' ? '#approve' : '#deny');
      return;
    } else {
      assert.fail(`the consent page showed "${step}"`);
    }
  }
  assert.fail('the consent page never reached a decision');
}

/** Waits until `check()` holds. */
async function expectTrue(check, what) {
  const deadline = Date.now() + STEP_TIMEOUT;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function clickAndLoad(page, selector) {
  await Promise.all([page.waitForEvent('load'), page.click(selector)]);
}

/**
 * consent_id, status, error and code from the /connected URL the browser
 * arrived at, and the banner the page settles on (after confirming, for an
 * approval). The one-time code never stays in the address bar.
 */
async function returnedOutcome({ page, arrived }) {
  assert.ok(arrived, 'the browser came back to /connected');
  const consentId = arrived.searchParams.get('consent_id');
  assert.ok(consentId, `no consent_id in ${arrived}`);
  const code = codeOf(arrived);
  assert.equal(arrived.searchParams.get('code'), null, 'no code in the query: it would reach servers and their logs');
  if (arrived.searchParams.get('status') === 'authorized') {
    assert.match(code || '', /^[A-Za-z0-9_-]{43}$/,
      'an approval comes back with a one-time code (base64url) in the fragment for the page to confirm');
  }
  await page.waitForSelector('#result-banner:not([data-status="confirming"])', { state: 'visible' });
  assertCleanAddress(page);
  return {
    consentId,
    status: arrived.searchParams.get('status'),
    error: arrived.searchParams.get('error'),
    code,
    banner: await page.getAttribute('#result-banner', 'data-status'),
    bannerText: (await page.textContent('#result-banner')).replace(/\s+/g, ' ').trim(),
  };
}

/** The fragment's code of a return URL (remembered for the no-code checks). */
function codeOf(url) {
  const code = new URLSearchParams(url.hash.slice(1)).get('code');
  if (code) codesSeen.add(code);
  return code;
}

/** The return's parameters and code left the address bar. */
function assertCleanAddress(page) {
  const here = new URL(page.url());
  for (const name of ['consent_id', 'status', 'code']) {
    assert.equal(here.searchParams.get(name), null, `${name} left the address bar (${page.url()})`);
  }
  assert.ok(!here.hash.includes('code'), `the code left the address bar (${page.url()})`);
}

function confirmCalls(run, consentId) {
  const path = `/consents/${encodeURIComponent(consentId)}/confirm`;
  return run.apiAnswers.filter((answer) => answer.startsWith(`POST ${path} `));
}

/** The API, called from the test with the signed-in tab's token. */
async function apiGet(page, path) {
  const session = JSON.parse(await page.evaluate((key) => sessionStorage.getItem(key), SESSION_KEY));
  assert.ok(session?.token, 'the tab holds a token');
  const response = await fetch(new URL(path, API), {
    headers: { Authorization: `Bearer ${session.token}` },
    signal: AbortSignal.timeout(STEP_TIMEOUT),
  });
  return { status: response.status, body: await response.json() };
}

/** After an approval: the page confirmed it (one 200) before saying "connected". */
async function assertConfirmed(run, outcome) {
  assert.deepEqual(confirmCalls(run, outcome.consentId),
    [`POST /consents/${encodeURIComponent(outcome.consentId)}/confirm 200`], 'confirmed once, answered 200');
  assert.equal(outcome.banner, 'authorized', `the banner says connected (it says: ${outcome.bannerText})`);
  assert.match(outcome.bannerText, /Your bank is connected/);
}

/** How each confirmation in a consent's history was made (`verifier`, `user`). */
function confirmations(consent) {
  return consent.history.filter((change) => change.source === 'confirm').map((change) => change.confirmed_by);
}

/** Sign in, connect, pick a bank, approve: returns the authorized consent's id. */
async function connectAndApprove(run, name, bank) {
  const { page, shot } = run;
  await signIn(run, name);
  await startConnection(run, '');
  const steps = await walkConsentPage(run, { bank, decision: 'approve' });
  assert.ok(steps.includes('bank'), `the bank picker was shown (screens: ${steps.join(', ')})`);

  const outcome = await returnedOutcome(run);
  assert.equal(outcome.status, 'authorized');
  await assertConfirmed(run, outcome);
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
  assert.ok(consent.body.confirmed_at, 'confirmed_at recorded');
  assert.deepEqual(confirmations(consent.body), ['verifier'], 'confirmed once, in the starting tab, by its verifier');
});

journey('deny', async (run) => {
  const { page, shot } = run;
  await signIn(run, userName('Bob'));
  await startConnection(run, '');
  const steps = await walkConsentPage(run, { bank: 'sandbox-monzo', decision: 'deny' });
  assert.ok(steps.includes('bank'));

  const outcome = await returnedOutcome(run);
  assert.equal(outcome.status, 'canceled');
  assert.equal(outcome.error, 'access_denied');
  assert.equal(outcome.code, null, 'no code for a denial');
  assert.equal(outcome.banner, 'canceled');
  assert.match(outcome.bannerText, /cancel/i);
  assert.deepEqual(confirmCalls(run, outcome.consentId), [], 'nothing to confirm');
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

journey('revoke-at-bank', async (run) => {
  const { page, shot } = run;
  const consentId = await connectAndApprove(run, userName('Dave'), 'sandbox-lloyds');
  const connection = connectionSelector(consentId);

  // The user revokes at their bank (the sandbox's bank page, from the demo's
  // link, in a tab of its own); nobody calls our API.
  assert.equal(await page.isVisible('#bank-link'), true, 'the demo links to the bank');
  const [bank] = await Promise.all([context.waitForEvent('page'), page.click('#bank-link')]);
  await bank.waitForLoadState('load');
  await Promise.all([bank.waitForEvent('load'), bank.click(`button[data-consent-id=${JSON.stringify(consentId)}]`)]);
  assert.equal(await bank.getAttribute(`li[data-consent-id=${JSON.stringify(consentId)}]`, 'data-status'), 'canceled');
  await bank.close();

  // Finexer's webhook reaches our API; the demo, left open, shows it.
  await page.waitForSelector(`${connection}[data-status="canceled"]`, { timeout: 15_000 });
  assert.equal(await page.$(`${connection} .accounts`), null, 'no accounts once revoked at the bank');
  await shot('revoked-at-bank');
  const consent = await apiGet(page, `/consents/${encodeURIComponent(consentId)}`);
  assert.equal(consent.body.status, 'canceled');
  assert.equal(consent.body.history.at(-1).source, 'webhook');
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

  const outcome = await returnedOutcome(run);
  assert.equal(outcome.status, 'authorized');
  await assertConfirmed(run, outcome);
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

journey('new-tab', async (run) => {
  // The bank journey finishes in another tab of the same signed-in user (a
  // bank app's browser, a forwarded consent page or return URL): that tab has
  // no verifier, so nothing is confirmed until the person sees the bank and
  // clicks.
  const { page, shot } = run;
  await signIn(run, userName('Fay'));
  const session = await page.evaluate((key) => sessionStorage.getItem(key), SESSION_KEY);
  await startConnection(run, 'sandbox-natwest');
  const consentPage = page.url();
  // The starting tab, holding the verifier, goes back to the demo and stays there.
  await page.goto(`${BASE}/`);

  const other = run.watch(await context.newPage());
  // Signed in there too (as a platform's cookie session would be in every tab).
  await other.goto(`${BASE}/`);
  await other.evaluate(([key, value]) => sessionStorage.setItem(key, value), [SESSION_KEY, session]);
  const confirmsSent = [];
  other.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/confirm')) confirmsSent.push(request.url());
  });
  await other.goto(consentPage);
  const elsewhere = { ...run, page: other, arrived: null };
  await walkConsentPage(elsewhere, { bank: null, expectBank: 'sandbox-natwest', decision: 'approve' });
  const returned = elsewhere.arrived;
  const consentId = returned.searchParams.get('consent_id');
  assert.equal(returned.searchParams.get('status'), 'authorized');
  assert.match(codeOf(returned) || '', /^[A-Za-z0-9_-]{43}$/, 'the code is in the fragment');
  assert.equal(returned.searchParams.get('code'), null);

  await other.waitForSelector('#result-banner[data-status="needs-confirmation"]');
  assertCleanAddress(other);
  const before = await apiGet(other, `/consents/${encodeURIComponent(consentId)}`);
  assert.equal(before.body.status, 'authorized');
  assert.equal(before.body.confirmed_at, null, 'not confirmed before the click');
  assert.deepEqual(confirmations(before.body), []);
  assert.deepEqual(confirmsSent, [], 'no confirm request before the click');
  const bank = before.body.bank_name || 'NatWest';
  assert.equal((await other.textContent('#result-title')).trim(), `Connect ${bank}?`);
  await run.shot('asks', other);

  await other.click('#confirm-connect');
  await other.waitForSelector('#result-banner[data-status="authorized"]');
  await other.waitForSelector(`${connectionSelector(consentId)} .accounts .account`);
  await run.shot('connected', other);
  assert.equal(confirmsSent.length, 1, 'one confirm request, after the click');
  const after = await apiGet(other, `/consents/${encodeURIComponent(consentId)}`);
  assert.ok(after.body.confirmed_at, 'confirmed after the click');
  assert.deepEqual(confirmations(after.body), ['user'], 'the history says the person confirmed it');
  await shot('starting-tab');
});

journey('double-return', async (run) => {
  // handleReturn called again while the first confirmation is still on its
  // way (a StrictMode double effect, a second mount): one confirm request.
  const { page } = run;
  let held = 0;
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  const confirmsAtApi = [];
  await page.route((url) => url.origin === API && url.pathname.endsWith('/confirm'), async (route) => {
    if (route.request().method() === 'POST') {
      confirmsAtApi.push(route.request().url());
      held += 1;
      await released;
    }
    await route.continue();
  });
  await signIn(run, userName('Gus'));
  await startConnection(run, '');
  const walking = walkConsentPage(run, { bank: 'sandbox-monzo', decision: 'approve' });
  await expectTrue(() => held === 1, 'the page sent its confirm');
  const original = run.arrived.href;
  // Twice more, from another client of the kit in the same page: with the
  // original URL, and with the address bar the first call cleaned.
  const again = page.evaluate(async ([api, key, url]) => {
    const kit = await import('/kit/index.js');
    const client = kit.createConnectClient({ apiBase: api, getAccessToken: () => JSON.parse(sessionStorage.getItem(key)).token });
    const outcomes = await Promise.all([client.handleReturn(url), client.handleReturn()]);
    return outcomes.map((outcome) => outcome && outcome.kind);
  }, [API, SESSION_KEY, original]);
  release();
  await walking;
  assert.deepEqual(await again, ['connected', 'connected'], 'the same answer for every call');
  const outcome = await returnedOutcome(run);
  await assertConfirmed(run, outcome);
  assert.equal(confirmsAtApi.length, 1, 'one confirm request reached the API');
  const consent = await apiGet(page, `/consents/${encodeURIComponent(outcome.consentId)}`);
  assert.deepEqual(confirmations(consent.body), ['verifier'], 'one confirmation in the history');
});

journey('back-forward-cache', async (run) => {
  // The button disables itself as the tab leaves for the bank; back from the
  // bank through the back/forward cache, the page is restored as it was left,
  // and the kit enables the button again.
  const { page, shot } = run;
  await page.addInitScript(() => {
    addEventListener('pageshow', (event) => {
      window.pageshows = [...(window.pageshows || []), event.persisted];
    });
  });
  await signIn(run, userName('Hal'));
  await startConnection(run, 'sandbox-barclays');
  // A page restored from the cache fires pageshow, not load.
  await page.goBack({ waitUntil: 'commit' });
  await page.waitForSelector('#connect');
  assert.deepEqual(await page.evaluate(() => window.pageshows), [false, true],
    'the page came back from the back/forward cache (pageshow persisted)');
  assert.equal(await page.isEnabled('#connect'), true, 'the button is usable again');
  assert.equal((await page.textContent('#connect')).trim(), 'Connect your bank');
  await shot('restored');
  // And it works: a second link from the restored page (which kept its bank choice).
  await page.selectOption('#provider-select', '');
  await startConnection(run, '');
  await page.goBack({ waitUntil: 'commit' });
  await page.waitForSelector('#connect');
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

test('the demo server\'s access log never holds a code', { skip: DEMO_LOG ? false : 'E2E_DEMO_LOG is not set (scripts/test.sh sets it)' }, async () => {
  const lines = (await readFile(DEMO_LOG, 'utf8')).split('\n').filter((line) => line.includes('demo_access'));
  assert.ok(lines.some((line) => line.includes('GET /connected?consent_id=')), 'the log holds the returns, query included');
  assert.ok(codesSeen.size >= 3, `the journeys saw codes (${codesSeen.size})`);
  for (const code of codesSeen) {
    assert.deepEqual(lines.filter((line) => line.includes(code)), [], 'no line holds a code');
  }
  assert.deepEqual(lines.filter((line) => /[?&#]code=/.test(line)), [], 'no line holds a code parameter');
});
