// The client against a fake tab and a fake API (test/fakes.mjs): the
// verifier and its S256 challenge, what handleReturn does with each return,
// in which order, and how often it calls the API.
import { beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ConnectError, createConnectClient } from '../dist/index.js';
import { API, consent, installTab, newCode, problem } from './support/fakes.mjs';

const RETURN = 'https://app.example.test/connected';
const VERIFIER_KEY = 'finexer-connect:verifier:';
let tab;
let token;
let client;

beforeEach(() => {
  tab = installTab('https://app.example.test/');
  token = 'user-token';
  client = createConnectClient({ apiBase: `${API}/`, getAccessToken: async () => token });
});

function returnUrl(consentId, query, code) {
  const url = new URL(RETURN);
  url.search = new URLSearchParams({ consent_id: consentId, ...query }).toString();
  if (code) url.hash = `code=${code}`;
  return url.href;
}

/** The tab arrives from the bank at `url`. */
function arrive(url) {
  tab.location.href = url;
}

function linkAnswer(id) {
  tab.answer('POST', '/links', 201, { consent_id: id, consent_url: `https://consent.example.test/connect/${id}`, expires_at: '2026-12-07T13:00:00Z' });
}

const base64url = (buffer) => buffer.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

test('start: the RFC 7636 appendix B verifier gives its challenge; the verifier stays in this tab, under the consent id', async (t) => {
  // RFC 7636, appendix B: these 32 octets are the verifier's randomness.
  const octets = [116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
    22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121];
  t.mock.method(crypto, 'getRandomValues', (array) => {
    array.set(octets);
    return array;
  });
  linkAnswer('bc_rfc');
  const link = await client.start({ provider: 'sandbox-hsbc', returnUrl: RETURN, template: 'acme' });

  assert.equal(link.consent_id, 'bc_rfc');
  assert.equal(tab.requests.length, 1);
  const [request] = tab.requests;
  assert.equal(request.url, `${API}/links`, 'the base URL loses its trailing slash');
  assert.deepEqual(request.body, {
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
    provider: 'sandbox-hsbc',
    return_to: RETURN,
    template: 'acme',
  });
  assert.equal(request.headers.Authorization, 'Bearer user-token');
  assert.equal(request.credentials, 'omit', 'no cookies to the API');
  assert.equal(tab.sessionStorage.getItem(`${VERIFIER_KEY}bc_rfc`), 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk');
  assert.deepEqual(tab.navigations, ['https://consent.example.test/connect/bc_rfc'], 'the same tab goes to the consent page');
});

test('start: a fresh 43-character base64url verifier per link, from crypto.getRandomValues, and its S256 challenge', async (t) => {
  const random = t.mock.method(crypto, 'getRandomValues');
  const seen = [];
  for (const id of ['bc_one', 'bc_two']) {
    linkAnswer(id);
    await client.start();
    const verifier = tab.sessionStorage.getItem(VERIFIER_KEY + id);
    assert.match(verifier, /^[A-Za-z0-9_-]{43}$/);
    const { body } = tab.requests.at(-1);
    assert.deepEqual(Object.keys(body), ['code_challenge', 'code_challenge_method'], 'nothing but the challenge when no option is given');
    assert.equal(body.code_challenge_method, 'S256');
    assert.equal(body.code_challenge, base64url(createHash('sha256').update(verifier).digest()));
    assert.notEqual(body.code_challenge, verifier, 'the verifier itself never goes to the API');
    seen.push(verifier);
  }
  assert.notEqual(seen[0], seen[1]);
  assert.equal(random.mock.callCount(), 2);
});

test('start: onLink sees the link before the tab leaves; a consent URL that is not http(s) is refused', async () => {
  linkAnswer('bc_hook');
  const order = [];
  await client.start({ onLink: (link) => order.push(`link ${link.consent_id}`, ...tab.navigations) });
  assert.deepEqual(order, ['link bc_hook'], 'called before navigating');

  tab.answer('POST', '/links', 201, { consent_id: 'bc_js', consent_url: 'javascript:alert(1)', expires_at: '2026-12-07T13:00:00Z' });
  await assert.rejects(client.start(), (error) => error instanceof ConnectError && error.status === 502);
  assert.equal(tab.sessionStorage.getItem(`${VERIFIER_KEY}bc_js`), null);
  assert.deepEqual(tab.navigations, ['https://consent.example.test/connect/bc_hook'], 'no navigation to it');
});

test('start: not signed in rejects without a request', async () => {
  token = null;
  await assert.rejects(client.start(), (error) => error instanceof ConnectError && error.status === 401);
  assert.equal(tab.requests.length, 0);
});

test('handleReturn in the starting tab: the address bar is cleaned before any request, then one confirm with the verifier', async () => {
  const code = newCode();
  tab.sessionStorage.setItem(`${VERIFIER_KEY}bc_own`, 'v'.repeat(43));
  tab.answer('POST', '/consents/bc_own/confirm', 200, consent('bc_own', { confirmed_at: '2026-12-07T12:01:00Z' }));
  arrive(`${returnUrl('bc_own', { status: 'authorized', tab: 'banks' })}`.replace('#', '') + `#code=${code}&view=x`);

  const outcome = await client.handleReturn();

  assert.equal(outcome.kind, 'connected');
  assert.equal(outcome.consentId, 'bc_own');
  assert.equal(outcome.consent.confirmed_at, '2026-12-07T12:01:00Z');
  assert.deepEqual(tab.log, [
    'replaceState https://app.example.test/connected?tab=banks#view=x',
    'fetch POST /consents/bc_own/confirm',
  ], 'consent_id, status and the code leave the address bar first; the rest stays');
  assert.deepEqual(tab.requests[0].body, { code, code_verifier: 'v'.repeat(43) });
  assert.equal(tab.sessionStorage.getItem(`${VERIFIER_KEY}bc_own`), null, 'the verifier is spent');
});

test('handleReturn twice (a double effect, or the same URL again): one confirm request, one answer', async () => {
  const code = newCode();
  tab.sessionStorage.setItem(`${VERIFIER_KEY}bc_twice`, 'w'.repeat(43));
  tab.answer('POST', '/consents/bc_twice/confirm', 200, consent('bc_twice', { confirmed_at: '2026-12-07T12:01:00Z' }));
  const url = returnUrl('bc_twice', { status: 'authorized' }, code);
  arrive(url);

  const first = client.handleReturn();
  // The second effect runs on the cleaned address bar; another client on the original URL.
  const second = client.handleReturn();
  const other = createConnectClient({ apiBase: API, getAccessToken: () => token }).handleReturn(url);
  const outcomes = await Promise.all([first, second, other]);

  assert.equal(tab.requests.length, 1, tab.log.join('\n'));
  assert.equal(outcomes[0].kind, 'connected');
  assert.equal(outcomes[1], outcomes[0]);
  assert.equal(outcomes[2], outcomes[0]);
});

test('handleReturn in another tab: needs_confirmation with the bank; confirms only on confirm(byUser), once', async () => {
  const code = newCode();
  tab.answer('GET', '/consents/bc_forwarded', 200, consent('bc_forwarded'));
  tab.answer('POST', '/consents/bc_forwarded/confirm', 200, consent('bc_forwarded', { confirmed_at: '2026-12-07T12:02:00Z' }));
  arrive(returnUrl('bc_forwarded', { status: 'authorized' }, code));

  const outcome = await client.handleReturn();
  assert.equal(outcome.kind, 'needs_confirmation');
  assert.deepEqual(outcome.bank, { id: 'sandbox-hsbc', name: 'HSBC UK' });
  assert.equal(outcome.consent.consent_id, 'bc_forwarded');
  assert.deepEqual(tab.log, ['replaceState https://app.example.test/connected', 'fetch GET /consents/bc_forwarded'],
    'nothing confirmed before the person says yes');

  await assert.rejects(client.confirm(outcome.consent, {}), TypeError, 'a confirmation without byUser is refused');
  const [confirmed, again] = await Promise.all([
    client.confirm(outcome.consent, { byUser: true }),
    client.confirm('bc_forwarded', { byUser: true }),
  ]);
  assert.equal(confirmed.kind, 'connected');
  assert.equal(again, confirmed, 'a double click confirms once');
  const confirms = tab.requests.filter((r) => r.method === 'POST');
  assert.equal(confirms.length, 1);
  assert.deepEqual(confirms[0].body, { code, confirmed_by_user: true });
});

test('handleReturn: no bank name when Finexer gave none (the page says "your bank")', async () => {
  tab.answer('GET', '/consents/bc_noname', 200, consent('bc_noname', { bank_name: null, provider: 'sandbox-x' }));
  arrive(returnUrl('bc_noname', { status: 'authorized' }, newCode()));
  const outcome = await client.handleReturn();
  assert.deepEqual(outcome.bank, { id: 'sandbox-x', name: null });
});

test('handleReturn: denied, expired and failed returns make no request', async () => {
  const cases = [
    [{ status: 'canceled', error: 'access_denied' }, { kind: 'denied', consentId: 'bc_d', error: 'access_denied' }],
    [{ error: 'access_denied' }, { kind: 'denied', consentId: 'bc_d', error: 'access_denied' }],
    [{ status: 'expired' }, { kind: 'expired', consentId: 'bc_d' }],
    [{ status: 'failed' }, { kind: 'failed', consentId: 'bc_d', reason: 'bank' }],
  ];
  for (const [query, expected] of cases) {
    tab.sessionStorage.setItem(`${VERIFIER_KEY}bc_d`, 'x'.repeat(43));
    arrive(returnUrl('bc_d', query));
    assert.deepEqual(await client.handleReturn(), expected);
    assert.equal(tab.location.href, RETURN);
    assert.equal(tab.sessionStorage.getItem(`${VERIFIER_KEY}bc_d`), null, 'the verifier of a finished link goes');
  }
  assert.equal(tab.requests.length, 0);
});

test('handleReturn: a page that is not a return answers null and touches nothing', async () => {
  arrive('https://app.example.test/connected?tab=1');
  assert.equal(await client.handleReturn(), null);
  assert.equal(await client.handleReturn('https://app.example.test/?status=authorized'), null, 'no consent id');
  assert.deepEqual(tab.log, []);
});

test('handleReturn signed out: not_signed_in without a request; resume() after sign-in confirms', async () => {
  const code = newCode();
  token = null;
  tab.sessionStorage.setItem(`${VERIFIER_KEY}bc_later`, 'y'.repeat(43));
  tab.answer('POST', '/consents/bc_later/confirm', 200, consent('bc_later', { confirmed_at: '2026-12-07T12:03:00Z' }));
  arrive(returnUrl('bc_later', { status: 'authorized' }, code));

  const outcome = await client.handleReturn();
  assert.equal(outcome.kind, 'not_signed_in');
  assert.equal(tab.location.href, RETURN, 'the code left the address bar all the same');
  assert.equal(tab.requests.length, 0);

  token = 'signed-in-now';
  const resumed = await outcome.resume();
  assert.equal(resumed.kind, 'connected');
  assert.deepEqual(tab.requests.map((r) => [r.path, r.headers.Authorization, r.body]),
    [['/consents/bc_later/confirm', 'Bearer signed-in-now', { code, code_verifier: 'y'.repeat(43) }]]);
});

test('handleReturn: each refusal of the confirmation becomes its outcome', async () => {
  const cases = [
    // A repeat answered "already confirmed": connected.
    [409, 'conflict', consent('bc_r', { confirmed_at: '2026-12-07T12:00:30Z' }), { kind: 'connected' }],
    // The confirmation window lapsed: the consent was revoked as unconfirmed.
    [409, 'conflict', consent('bc_r', { status: 'canceled', revoke_reason: 'unconfirmed' }), { kind: 'expired' }],
    [409, 'conflict', consent('bc_r', { status: 'canceled' }), { kind: 'failed', reason: 'conflict' }],
    // A wrong verifier: 400, nothing changed.
    [400, 'bad-request', null, { kind: 'failed', reason: 'rejected' }],
    // Another user's consent.
    [404, 'not-found', null, { kind: 'failed', reason: 'not_yours' }],
    [503, 'store-unavailable', null, { kind: 'failed', reason: 'unavailable' }],
  ];
  for (const [status, slug, after, expected] of cases) {
    tab = installTab('https://app.example.test/');
    tab.sessionStorage.setItem(`${VERIFIER_KEY}bc_r`, 'z'.repeat(43));
    tab.answer('POST', '/consents/bc_r/confirm', status, problem(status, slug), { 'retry-after': '3' });
    if (after) tab.answer('GET', '/consents/bc_r', 200, after);
    arrive(returnUrl('bc_r', { status: 'authorized' }, newCode()));
    const outcome = await client.handleReturn();
    for (const [field, value] of Object.entries(expected)) assert.equal(outcome[field], value, `${status} ${slug}: ${field}`);
    if (outcome.kind === 'failed') {
      assert.ok(outcome.error instanceof ConnectError);
      assert.equal(outcome.error.status, status);
      assert.equal(outcome.error.type, `/problems/${slug}`);
    }
    if (status === 503) {
      assert.equal(outcome.error.retryAfter, 3);
      assert.equal(tab.sessionStorage.getItem(`${VERIFIER_KEY}bc_r`), 'z'.repeat(43), 'kept for the retry');
      tab.answer('POST', '/consents/bc_r/confirm', 200, consent('bc_r', { confirmed_at: '2026-12-07T12:04:00Z' }));
      assert.equal((await outcome.retry()).kind, 'connected');
    }
  }
});

test('problem JSON becomes a typed ConnectError; no answer is status 0', async () => {
  tab.answer('GET', '/consents/bc_gone', 404, problem(404, 'not-found', 'No such consent.'));
  await assert.rejects(client.get('bc_gone'), (error) => {
    assert.ok(error instanceof ConnectError);
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'ConnectError');
    assert.equal(error.status, 404);
    assert.equal(error.type, '/problems/not-found');
    assert.equal(error.title, 'not found');
    assert.equal(error.detail, 'No such consent.');
    assert.equal(error.message, 'No such consent.');
    assert.equal(error.retryAfter, null);
    return true;
  });
  tab.answer('GET', '/consents', 503, problem(503, 'busy'), { 'retry-after': '7' });
  await assert.rejects(client.list(), (error) => error.status === 503 && error.type === '/problems/busy' && error.retryAfter === 7);
  await assert.rejects(client.accounts('unanswered'), (error) => error.status === 0 && error.type === 'network');
});

test('list, get, accounts, reconfirm and revoke: their routes, the id encoded, the answers as sent', async () => {
  tab.answer('GET', '/consents?limit=10&cursor=abc', 200, { data: [consent('bc_1')], next_cursor: null });
  tab.answer('GET', '/consents/a%2Fb', 200, consent('a/b'));
  tab.answer('GET', '/consents/bc_1/accounts', 200, { data: [{ id: 'acc_1' }] });
  tab.answer('POST', '/consents/bc_1/reconfirm', 200, consent('bc_1', { renewed_at: '2026-12-07T12:05:00Z' }));
  tab.answer('POST', '/consents/bc_1/revoke', 200, consent('bc_1', { status: 'canceled' }));

  assert.equal((await client.list({ limit: 10, cursor: 'abc' })).data[0].consent_id, 'bc_1');
  assert.equal((await client.get('a/b')).consent_id, 'a/b');
  assert.deepEqual((await client.accounts('bc_1')).data, [{ id: 'acc_1' }]);
  assert.equal((await client.reconfirm('bc_1')).renewed_at, '2026-12-07T12:05:00Z');
  assert.equal((await client.revoke('bc_1')).status, 'canceled');
  assert.deepEqual(tab.requests.map((r) => `${r.method} ${r.path} ${r.body === undefined ? '' : 'body'}`), [
    'GET /consents?limit=10&cursor=abc ',
    'GET /consents/a%2Fb ',
    'GET /consents/bc_1/accounts ',
    'POST /consents/bc_1/reconfirm ',
    'POST /consents/bc_1/revoke ',
  ]);
});
