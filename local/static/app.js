// Acme Money demo frontend: local sign-in, "Connect your bank", the return
// view on /connected (which confirms an approval before it says so), and the
// list of the user's connections, re-read every few seconds while the page is
// visible so that a change made elsewhere (a revoke at the bank) shows.
// Every call to the API goes through the web kit (@finexer-connect/web, built
// into clients/web/dist and served as /kit/index.js): the API is on another
// site, as in production (its origin comes from <meta name="connect-api">),
// called with the bearer token and never with cookies. No build step of its
// own. Every value from the API or the URL reaches the page through
// textContent or an attribute, never as HTML.
import { ConnectError, createConnectClient, mountConnectButton } from '/kit/index.js';

{
  const SESSION_KEY = 'acme-money-session';
  /** The Finexer sandbox's "your bank" page, learnt from a consent page opened here. */
  const BANK_PAGE_KEY = 'acme-money-sandbox-bank';
  const REFRESH_MS = 2500;
  const REVOCABLE = new Set(['authorized', 'revoke_pending']);
  /** The platform's own sign-in, on this site; everything else is the API's. */
  const SIGN_IN = '/local/token';
  const API_ORIGIN = (document.querySelector('meta[name="connect-api"]')?.content || '').replace(/\/+$/, '');

  const BANKS = {
    'sandbox-barclays': { name: 'Barclays', color: '#00aeef', text: '#ffffff' },
    'sandbox-lloyds': { name: 'Lloyds Bank', color: '#006a4d', text: '#ffffff' },
    'sandbox-monzo': { name: 'Monzo', color: '#14233c', text: '#ff4f40' },
    'sandbox-hsbc': { name: 'HSBC UK', color: '#db0011', text: '#ffffff' },
    'sandbox-natwest': { name: 'NatWest', color: '#5a287d', text: '#ffffff' },
    'sandbox-santander': { name: 'Santander UK', color: '#ec0000', text: '#ffffff' },
  };

  const STATUS = {
    new: { label: 'New', tone: 'neutral', help: 'The link is being set up.' },
    pending: { label: 'Pending', tone: 'warning', help: 'Waiting for you to approve at your bank.' },
    authorized: { label: 'Authorized', tone: 'success', help: 'Acme Money can read this bank’s account information.' },
    canceled: { label: 'Canceled', tone: 'neutral', help: 'Access was denied or revoked. Nothing more is shared.' },
    failed: { label: 'Failed', tone: 'danger', help: 'The bank could not complete the connection.' },
    expired: { label: 'Expired', tone: 'neutral', help: 'Access has lapsed. Connect again to renew it.' },
    revoke_pending: { label: 'Revoking…', tone: 'warning', help: 'Revocation was asked for and is not confirmed yet.' },
  };

  const $ = (id) => document.getElementById(id);

  // ---- DOM helper: attributes and text only, never innerHTML -------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key === 'style') Object.assign(node.style, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ---- Session --------------------------------------------------------------
  function loadSession() {
    try {
      const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      return session && typeof session.token === 'string' ? session : null;
    } catch {
      return null;
    }
  }
  let session = loadSession();

  function saveSession(value) {
    session = value;
    if (value) sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
    else sessionStorage.removeItem(SESSION_KEY);
  }

  /** "Alice Smith" → "alice-smith": the local user id. */
  function userIdFor(name) {
    const slug = name
      .normalize('NFKD')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40);
    return slug || 'user';
  }

  // ---- API --------------------------------------------------------------------
  const connect = createConnectClient({ apiBase: API_ORIGIN, getAccessToken: () => session && session.token });

  /**
   * A kit call, its error made ready for the banner: a 401 signs the user
   * out (the token expired or is not valid any more).
   */
  async function api(call) {
    if (!API_ORIGIN) throw new ConnectError(0, 'config', 'The API address is missing', 'This page was not served by the demo server.');
    try {
      return await call();
    } catch (error) {
      throw explained(error);
    }
  }

  function explained(error) {
    if (!(error instanceof ConnectError)) return error;
    if (error.status === 401) {
      signOut();
      return new ConnectError(401, error.type, 'Please sign in again', 'Your session has expired or is no longer valid.');
    }
    if (error.status === 0) {
      return new ConnectError(0, error.type, 'The service is not reachable', 'Check that the local server is running, then try again.');
    }
    return error;
  }

  /** The platform's own sign-in, on this site (not the API's). */
  async function mintToken(body) {
    let response;
    try {
      response = await fetch(SIGN_IN, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      });
    } catch {
      throw new ConnectError(0, 'network', 'The service is not reachable', 'Check that the local server is running, then try again.');
    }
    const data = await response.json().catch(() => null);
    if (!response.ok || !data || typeof data.token !== 'string') {
      throw new ConnectError(response.status, 'sign-in', 'Sign-in failed', (data && data.detail) || `The server answered ${response.status}.`);
    }
    return data.token;
  }

  // ---- Banners ----------------------------------------------------------------
  function showError(error, fallbackTitle) {
    const banner = $('error-banner');
    $('error-title').textContent = (error && error.title) || fallbackTitle || 'Something went wrong';
    $('error-detail').textContent = (error && (error.detail || error.message)) || '';
    banner.dataset.status = error && error.status ? String(error.status) : '';
    banner.hidden = false;
    banner.scrollIntoView({ block: 'nearest' });
  }

  function clearError() {
    $('error-banner').hidden = true;
  }

  /** A return waiting for this session's sign-in: the kit's resume(). */
  let resumeAfterSignIn = null;

  /**
   * The bank's return on /connected: the kit takes consent_id, status and the
   * fragment's one-time code out of the address bar, confirms in the tab that
   * started the link, and answers what happened. Only its answer makes the
   * connection this user's; until then nothing says "connected".
   */
  async function handleReturn() {
    if (location.pathname !== '/connected') return false;
    const query = new URLSearchParams(location.search);
    if (!query.get('consent_id')) return false;
    const consentId = query.get('consent_id');
    if (query.get('status') === 'authorized') {
      showNotice({
        status: 'confirming',
        tone: 'neutral',
        icon: '…',
        title: 'Finishing your connection…',
        text: 'Checking that this connection was started by you.',
        consentId,
      });
    }
    let outcome;
    try {
      outcome = await connect.handleReturn();
    } catch (error) {
      $('result-banner').hidden = true;
      showError(explained(error), 'Your connection could not be confirmed');
      return true;
    }
    if (outcome) await showOutcome(outcome);
    return Boolean(outcome);
  }

  async function showOutcome(outcome) {
    const { consentId } = outcome;
    resumeAfterSignIn = null;
    switch (outcome.kind) {
      case 'connected':
        showNotice({ ...resultFor('authorized'), status: 'authorized', consentId });
        break;
      case 'needs_confirmation':
        askToConnect(outcome);
        break;
      case 'denied':
        showNotice({ ...resultFor('canceled', outcome.error), status: 'canceled', consentId });
        break;
      case 'expired':
        showNotice({ ...resultFor('expired'), status: 'expired', consentId });
        break;
      case 'not_signed_in':
        resumeAfterSignIn = outcome.resume;
        showNotice({
          status: 'sign-in',
          tone: 'warning',
          icon: '!',
          title: 'Sign in to finish connecting your bank',
          text: 'Your bank approved. Sign in as the person who started the connection to complete it.',
          consentId,
        });
        return;
      case 'failed':
        if (outcome.reason === 'not_yours') {
          showNotice({
            status: 'other-session',
            tone: 'danger',
            icon: '!',
            title: 'This connection was completed in another session and has been cancelled',
            text: 'Nothing was shared with Acme Money. If you started it, connect your bank again from here.',
            consentId,
          });
        } else if (outcome.reason === 'rejected' || outcome.reason === 'conflict') {
          showNotice({
            status: 'link-used',
            tone: 'warning',
            icon: '!',
            title: 'This confirmation link was already used or expired',
            text: 'Check your connections below, or connect your bank again.',
            consentId,
          });
        } else if (outcome.reason === 'bank') {
          showNotice({ ...resultFor('failed'), status: 'failed', consentId });
        } else {
          $('result-banner').hidden = true;
          showError(explained(outcome.error), 'Your connection could not be confirmed');
        }
        break;
      default:
        break;
    }
    if (session) await loadConnections();
  }

  /**
   * Back from the bank in a tab that did not start the link (a new tab, a
   * bank app's browser, a forwarded link): the person sees which bank and
   * says yes before anything is confirmed.
   */
  function askToConnect(outcome) {
    const bank = outcome.bank.name || (outcome.bank.id && BANKS[outcome.bank.id]?.name) || 'your bank';
    showNotice({
      status: 'needs-confirmation',
      tone: 'warning',
      icon: '?',
      title: `Connect ${bank}?`,
      text: 'Your bank approved access for Acme Money. Connect it only if you started this yourself just now.',
      consentId: outcome.consentId,
    });
    const yes = el('button', { type: 'button', class: 'button primary small', id: 'confirm-connect', text: `Connect ${bank}` });
    const no = el('button', { type: 'button', class: 'button ghost small', id: 'decline-connect', text: 'Not me' });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      no.disabled = true;
      yes.textContent = 'Connecting…';
      try {
        await showOutcome(await connect.confirm(outcome.consent, { byUser: true }));
      } catch (error) {
        yes.disabled = false;
        no.disabled = false;
        yes.textContent = `Connect ${bank}`;
        showError(explained(error), 'Your connection could not be confirmed');
      }
    });
    no.addEventListener('click', () => {
      showNotice({
        status: 'declined',
        tone: 'neutral',
        icon: '–',
        title: 'Not connected',
        text: 'Nothing is shared with Acme Money: an approval nobody confirms is withdrawn on its own.',
        consentId: outcome.consentId,
      });
    });
    $('result-actions').replaceChildren(yes, no);
    $('result-actions').hidden = false;
  }

  /** The banner under the header: a journey's outcome, or a revocation. */
  function showNotice({ status, tone, icon, title, text, consentId }) {
    const banner = $('result-banner');
    banner.dataset.status = status;
    banner.dataset.consentId = consentId || '';
    banner.className = `banner banner-${tone}`;
    $('result-actions').replaceChildren();
    $('result-actions').hidden = true;
    $('result-icon').textContent = icon;
    $('result-title').textContent = title;
    $('result-text').textContent = text;
    $('result-ref').textContent = consentId ? `Reference ${consentId}` : '';
    banner.hidden = false;
  }

  function resultFor(status, error) {
    if (status === 'authorized') {
      return {
        tone: 'success',
        icon: '✓',
        title: 'Your bank is connected',
        text: 'Your accounts appear below. You can revoke access at any time.',
      };
    }
    if (status === 'canceled' || error === 'access_denied') {
      return {
        tone: 'neutral',
        icon: '–',
        title: 'Connection cancelled',
        text: 'You did not approve access, so nothing was shared with Acme Money. You can try again whenever you like.',
      };
    }
    if (status === 'expired') {
      return { tone: 'warning', icon: '!', title: 'The link expired', text: 'Please start the connection again.' };
    }
    if (status === 'failed') {
      return {
        tone: 'danger',
        icon: '!',
        title: 'The bank could not connect',
        text: 'Your bank did not complete the connection. Please try again later.',
      };
    }
    return {
      tone: 'warning',
      icon: '!',
      title: 'The connection is not finished',
      text: status
        ? `Its status is “${status}”. Check your connections below.`
        : `The bank reported “${error}”. Please try again.`,
    };
  }

  // ---- Formatting ------------------------------------------------------------
  const dateFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
  const dayFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium' });

  function formatDate(value, dayOnly) {
    if (!value) return '';
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return (dayOnly ? dayFormat : dateFormat).format(date);
  }

  function bankOf(provider) {
    if (!provider) return { name: 'Bank not chosen yet', color: '#c9d1dc', text: '#3c4656', initial: '?' };
    const known = BANKS[provider];
    const name = known ? known.name : provider;
    return {
      name,
      color: known ? known.color : '#5b6575',
      text: known ? known.text : '#ffffff',
      initial: name.charAt(0).toUpperCase(),
    };
  }

  function lastDigits(value, count) {
    const digits = String(value || '').replace(/\D/g, '');
    return digits.slice(-count);
  }

  function maskedSortCode(sortCode) {
    const last = lastDigits(sortCode, 2);
    return last ? `••-••-${last}` : '';
  }

  function maskedAccountNumber(identification) {
    if (!identification) return '';
    if (identification.account_number) return `••••${lastDigits(identification.account_number, 4)}`;
    if (identification.pan) return `Card ••••${lastDigits(identification.pan, 4)}`;
    if (identification.iban) return `IBAN ••••${String(identification.iban).replace(/\s/g, '').slice(-4)}`;
    return '';
  }

  function humanize(text) {
    const words = String(text || '').replace(/_/g, ' ');
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  // ---- Views -------------------------------------------------------------------
  function renderSession() {
    const signedIn = Boolean(session);
    $('sign-in-card').hidden = signedIn;
    $('connect-card').hidden = !signedIn;
    $('connections-card').hidden = !signedIn;
    $('account-chip').hidden = !signedIn;
    if (signedIn) {
      $('signed-in-as').textContent = session.name;
      $('avatar').textContent = session.name.charAt(0).toUpperCase();
    } else {
      $('signed-in-as').textContent = '';
      $('connections').replaceChildren();
      renderedList = null;
    }
    renderBankLink();
  }

  /**
   * The sandbox's bank page sits next to its consent pages. Only a consent page
   * on this machine counts: that is the sandbox, never a real provider.
   */
  function rememberBankPage(consentPage) {
    if (['localhost', '127.0.0.1', '[::1]'].includes(consentPage.hostname)) {
      localStorage.setItem(BANK_PAGE_KEY, `${consentPage.origin}/bank`);
    }
  }

  function renderBankLink() {
    const url = localStorage.getItem(BANK_PAGE_KEY);
    const link = $('bank-link');
    link.hidden = !url;
    if (url) link.href = url;
  }

  let listGeneration = 0;
  let loadsInFlight = 0;
  /** The list as last drawn, so a background refresh redraws only on a change. */
  let renderedList = null;

  /** `quiet`: a background refresh, without loading state or error banner. */
  async function loadConnections({ quiet = false } = {}) {
    if (!session) return;
    const generation = ++listGeneration;
    loadsInFlight++;
    const list = $('connections');
    const loading = $('connections-loading');
    if (!quiet) {
      loading.hidden = list.childElementCount > 0;
      list.setAttribute('aria-busy', 'true');
    }
    try {
      const result = await api(() => connect.list());
      if (generation !== listGeneration) return;
      const consents = (result && Array.isArray(result.data)) ? result.data : [];
      const drawn = JSON.stringify(consents);
      // Redrawing would reload the accounts and close what the user opened.
      if (quiet && drawn === renderedList) return;
      renderedList = drawn;
      list.replaceChildren(...consents.map(connectionItem));
      $('connections-empty').hidden = consents.length > 0;
      await Promise.all(consents.filter(showsAccounts).map((consent) => loadAccounts(consent.consent_id)));
    } catch (error) {
      // A 401 has signed the user out (a new generation) and must still be said.
      if ((generation === listGeneration && !quiet) || error.status === 401) showError(error, 'Your connections could not be loaded');
    } finally {
      loadsInFlight--;
      if (generation === listGeneration) {
        loading.hidden = true;
        list.setAttribute('aria-busy', 'false');
        list.dataset.loaded = 'true';
      }
    }
  }

  function connectionItem(consent) {
    const bank = bankOf(consent.provider);
    const status = STATUS[consent.status] || { label: humanize(consent.status), tone: 'neutral', help: '' };

    const facts = [];
    facts.push(['Started', formatDate(consent.created_at)]);
    if (consent.authorized_at) facts.push(['Connected', formatDate(consent.authorized_at)]);
    if (consent.expires_at && consent.status === 'authorized') facts.push(['Access until', formatDate(consent.expires_at, true), 'expires-at']);
    if (consent.reconfirm_by && consent.status === 'authorized') facts.push(['Re-confirm by', formatDate(consent.reconfirm_by, true), 'reconfirm-by']);
    if (consent.revoked_at) facts.push(['Revoked', formatDate(consent.revoked_at)]);
    else if (consent.revoke_requested_at) facts.push(['Revoke asked', formatDate(consent.revoke_requested_at)]);
    else if (consent.status === 'canceled') facts.push(['Cancelled', formatDate(consent.updated_at)]);
    else if (consent.status === 'failed' || consent.status === 'expired') facts.push(['Ended', formatDate(consent.updated_at)]);

    const actions = el('div', { class: 'connection-actions' });
    if (showsAccounts(consent)) {
      actions.append(el('button', {
        type: 'button',
        class: 'button ghost small reconfirm',
        text: 'Re-confirm',
        title: 'Confirm that Acme Money may keep reading this bank for another 90 days',
        onclick: (event) => reconfirm(consent, bank, event.currentTarget),
      }));
    }
    if (REVOCABLE.has(consent.status)) {
      actions.append(el('button', {
        type: 'button',
        class: 'button danger-outline small revoke',
        text: consent.status === 'revoke_pending' ? 'Retry revoke' : 'Revoke',
        onclick: (event) => revoke(consent, bank, event.currentTarget),
      }));
    }

    const item = el('li', {
      class: `connection tone-${status.tone}`,
      dataset: { consentId: consent.consent_id, status: consent.status },
    },
    el('div', { class: 'connection-head' },
      el('span', { class: 'bank-logo', 'aria-hidden': 'true', style: { background: bank.color, color: bank.text }, text: bank.initial }),
      el('div', { class: 'connection-title' },
        el('strong', { class: 'bank-name', text: bank.name }),
        el('span', { class: 'consent-id', text: consent.consent_id })),
      el('span', { class: `badge badge-${status.tone} status`, title: status.help, text: status.label }),
      actions.childElementCount ? actions : null),
    el('dl', { class: 'facts' },
      facts.map(([term, value, name]) => el('div', { dataset: name ? { fact: name } : undefined },
        el('dt', { text: term }), el('dd', { text: value })))),
    historyDetails(consent.history));

    if (showsAccounts(consent)) {
      item.append(el('div', { class: 'accounts', dataset: { state: 'loading' } },
        el('p', { class: 'muted small-text', text: 'Loading accounts…' })));
    } else if (consent.status === 'authorized') {
      item.append(el('p', { class: 'muted small-text unconfirmed',
        text: 'Not confirmed: it was not finished in the session that started it, so no accounts are shown.' }));
    }
    return item;
  }

  /** Authorized and confirmed (a consent from before confirmation existed has no confirmed_at). */
  function showsAccounts(consent) {
    return consent.status === 'authorized' && consent.confirmed_at !== null;
  }

  function historyDetails(history) {
    if (!Array.isArray(history) || history.length === 0) return null;
    return el('details', { class: 'history' },
      el('summary', { text: 'History' }),
      el('ol', {},
        history.map((change) => el('li', {},
          el('time', { datetime: change.at, text: formatDate(change.at) }),
          el('span', { text: change.from ? ` ${change.from} → ${change.to}` : ` ${change.to}` }),
          el('span', { class: 'muted', text: change.source ? ` (${change.source}${change.confirmed_by ? `, by ${change.confirmed_by}` : ''})` : '' })))));
  }

  function findConnection(consentId) {
    for (const node of $('connections').querySelectorAll('.connection')) {
      if (node.dataset.consentId === consentId) return node;
    }
    return null;
  }

  async function loadAccounts(consentId) {
    let accounts;
    let problem;
    try {
      const result = await api(() => connect.accounts(consentId));
      accounts = (result && Array.isArray(result.data)) ? result.data : [];
    } catch (error) {
      problem = error;
    }
    const box = findConnection(consentId)?.querySelector('.accounts');
    if (!box) return;
    if (problem) {
      box.dataset.state = 'error';
      box.replaceChildren(el('p', { class: 'inline-error' },
        el('strong', { text: `${problem.title || 'Accounts unavailable'}: ` }),
        problem.detail || problem.message));
      return;
    }
    box.dataset.state = 'loaded';
    if (accounts.length === 0) {
      box.replaceChildren(el('p', { class: 'muted small-text', text: 'The bank has not shared any accounts yet.' }));
      return;
    }
    box.replaceChildren(el('ul', { class: 'account-list' }, accounts.map(accountItem)));
  }

  function accountItem(account) {
    const id = account.identification || {};
    const numbers = [
      id.sort_code ? `Sort code ${maskedSortCode(id.sort_code)}` : '',
      maskedAccountNumber(id),
    ].filter(Boolean).join(' · ');
    const kind = [humanize(account.type), account.class ? humanize(account.class) : ''].filter(Boolean).join(' · ');
    return el('li', { class: 'account', dataset: { accountId: account.id || '' } },
      el('div', { class: 'account-main' },
        el('strong', { class: 'account-name', text: account.nickname || 'Account' }),
        el('span', { class: 'account-holder', text: account.holder_name || '' })),
      el('div', { class: 'account-meta' },
        el('span', { class: 'account-number', text: numbers }),
        el('span', { class: 'muted small-text', text: kind })),
      el('span', { class: 'currency', text: account.currency || '' }));
  }

  // ---- Actions -----------------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    clearError();
    const name = $('user-name').value.trim().replace(/\s+/g, ' ');
    if (!name) {
      $('user-name').focus();
      return;
    }
    const user = userIdFor(name);
    const button = $('sign-in');
    button.disabled = true;
    button.textContent = 'Signing in…';
    try {
      const token = await mintToken({ user, name, email: `${user}@example.com` });
      saveSession({ token, user, name });
      $('user-name').value = '';
      renderSession();
      if (resumeAfterSignIn) await showOutcome(await resumeAfterSignIn());
      else await loadConnections();
    } catch (error) {
      showError(error, 'Sign-in failed');
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  }

  function signOut() {
    saveSession(null);
    listGeneration++;
    renderSession();
  }

  /** "Connect your bank": the kit's button, which starts the link in this tab. */
  function mountConnect() {
    mountConnectButton($('connect'), connect, {
      provider: () => $('provider-select').value,
      returnUrl: `${location.origin}/connected`,
      template: 'acme',
      onLink: (link) => rememberBankPage(new URL(link.consent_url)),
      onError: (failure) => {
        const error = explained(failure);
        if (error.status === 400 && /return_to/.test(error.detail || '')) {
          showError(new ConnectError(400, error.type, error.title, `${error.detail}. Open Acme Money at the demo address the server printed when it started (for example http://localhost:3002/), not ${location.origin}.`));
        } else {
          showError(error, 'The connection could not be started');
        }
      },
    });
  }

  async function revoke(consent, bank, button) {
    const ok = window.confirm(
      `Revoke Acme Money's access to ${bank.name}?\n\nWe will stop reading this bank's accounts straight away. You can connect it again later.`,
    );
    if (!ok) return;
    clearError();
    button.disabled = true;
    button.textContent = 'Revoking…';
    try {
      const result = await api(() => connect.revoke(consent.consent_id));
      // The journey's outcome in the URL is no longer the news.
      if (location.pathname === '/connected') history.replaceState(null, '', '/');
      showNotice({
        status: (result && result.status) || 'canceled',
        tone: 'neutral',
        icon: '✓',
        title: 'Access revoked',
        text: `Acme Money can no longer read your ${bank.name} accounts.`,
        consentId: consent.consent_id,
      });
    } catch (error) {
      showError(error, 'Access could not be revoked');
    }
    await loadConnections();
  }

  /** The UK's 90-day re-confirmation: the user says access may go on. */
  async function reconfirm(consent, bank, button) {
    clearError();
    button.disabled = true;
    button.textContent = 'Re-confirming…';
    try {
      const result = await api(() => connect.reconfirm(consent.consent_id));
      const until = result && result.expires_at ? ` Access now lasts until ${formatDate(result.expires_at, true)}.` : '';
      showNotice({
        status: 'reconfirmed',
        tone: 'success',
        icon: '✓',
        title: 'Access re-confirmed',
        text: `Acme Money can keep reading your ${bank.name} accounts.${until}`,
        consentId: consent.consent_id,
      });
    } catch (error) {
      showError(error, 'Access could not be re-confirmed');
    }
    await loadConnections();
  }

  /** Skipped while hidden or while another load runs; that one shows the news. */
  function refreshInBackground() {
    if (session && !document.hidden && loadsInFlight === 0) loadConnections({ quiet: true });
  }

  // ---- Start -------------------------------------------------------------------
  function start() {
    $('sign-in-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => {
      clearError();
      signOut();
      $('user-name').focus();
    });
    $('connect-form').addEventListener('submit', (event) => event.preventDefault());
    $('connect').addEventListener('click', clearError);
    mountConnect();
    $('refresh').addEventListener('click', () => {
      clearError();
      loadConnections();
    });
    $('error-close').addEventListener('click', clearError);
    $('result-close').addEventListener('click', () => {
      $('result-banner').hidden = true;
      if (location.pathname === '/connected') history.replaceState(null, '', '/');
    });
    // Back from the bank through the browser's cache: the kit restores the
    // button; the list shows the fresh state.
    window.addEventListener('pageshow', (event) => {
      if (event.persisted) loadConnections();
    });

    setInterval(refreshInBackground, REFRESH_MS);
    window.addEventListener('focus', refreshInBackground);
    document.addEventListener('visibilitychange', refreshInBackground);

    renderSession();
    document.body.dataset.ready = 'true';
    handleReturn().then((returned) => {
      if (!returned && session) loadConnections();
    });
  }

  start();
}
