// The client: starts a link with a verifier only this tab holds, handles the
// bank's return (the code comes in the URL fragment, which no server sees),
// confirms it, and wraps the API's consent routes. Browser globals (fetch,
// crypto, sessionStorage, history, location) are read when used, not when
// the client is made, so a page (or a test) can set them up in any order.

import type { components } from './openapi.js';

type Schemas = components['schemas'];
export type Consent = Schemas['Consent'];
export type ConsentList = Schemas['ConsentList'];
export type AccountList = Schemas['AccountList'];
export type BankAccount = Schemas['BankAccount'];
export type LinkCreated = Schemas['LinkCreated'];
export type CreateLink = Schemas['CreateLink'];
export type ConfirmConsent = Schemas['ConfirmConsent'];
export type Problem = Schemas['Problem'];

export interface ConnectClientOptions {
  /** The API's base URL, e.g. `https://abc123.execute-api.eu-west-2.amazonaws.com`. */
  apiBase: string;
  /** The signed-in user's bearer token; `null` or `undefined` when nobody is signed in. */
  getAccessToken: () => string | null | undefined | Promise<string | null | undefined>;
}

export interface StartOptions {
  /** A Finexer provider id: pre-selects the bank (no bank picker). */
  provider?: string;
  /** Where the bank journey returns: one of the deployment's frontend URLs (its first one when absent). */
  returnUrl?: string;
  /** A Finexer white-label template for the consent page. */
  template?: string;
  /** Called with the new link just before this tab leaves for its consent page. */
  onLink?: (link: LinkCreated) => void;
}

/** The bank a consent is with: Finexer's provider id and, when Finexer gave one, its display name (else say "your bank"). */
export interface Bank {
  id: string | null;
  name: string | null;
}

/** Why a return did not connect, beyond a denial or an expiry. */
export type FailureReason =
  /** The bank or Finexer could not complete the connection. */
  | 'bank'
  /** Not this user's consent (or none such): a connection finished in another account's session is cancelled. */
  | 'not_yours'
  /** The API refused the code or the verifier: nothing changed. */
  | 'rejected'
  /** The consent is no longer waiting for a confirmation (revoked meanwhile, for example). */
  | 'conflict'
  /** The API or the network failed: `retry()` tries again with the same code. */
  | 'unavailable';

/** What `handleReturn` and `confirm` answer; `kind` tells the page what to show. */
export type ReturnOutcome =
  /** Confirmed: the accounts can be read. */
  | { kind: 'connected'; consentId: string; consent: Consent }
  /** Returned in a tab that did not start the link: ask "Connect <bank>?", then `confirm(consent, { byUser: true })`. */
  | { kind: 'needs_confirmation'; consentId: string; consent: Consent; bank: Bank }
  /** The user said no at the bank; nothing is shared. */
  | { kind: 'denied'; consentId: string; error: string | null }
  | { kind: 'failed'; consentId: string; reason: FailureReason; error?: ConnectError; retry?: () => Promise<ReturnOutcome> }
  /** The link or the confirmation window lapsed: start again. */
  | { kind: 'expired'; consentId: string }
  /** No access token: sign the user in, then call `resume()` (the code is kept in memory only). */
  | { kind: 'not_signed_in'; consentId: string; resume: () => Promise<ReturnOutcome> };

/** An API answer other than 2xx (from its problem JSON), or no answer at all (`status` 0). */
export class ConnectError extends Error {
  readonly status: number;
  /** The problem's `type`, e.g. `/problems/conflict`; `network` when the API was not reached. */
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  /** Seconds to wait before trying again (a 503's `Retry-After`), else null. */
  readonly retryAfter: number | null;

  constructor(status: number, type: string, title: string, detail: string, retryAfter: number | null = null) {
    super(detail || title);
    this.name = 'ConnectError';
    this.status = status;
    this.type = type;
    this.title = title;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

export interface ConnectClient {
  /** Creates a link whose code only this tab can confirm, and sends this tab to the bank. */
  start(options?: StartOptions): Promise<LinkCreated>;
  /**
   * Reads the bank's return from `url` (default: the address bar), removes it from
   * the address bar before any request, and settles it. `null` when `url` is not a return.
   * Memoised per code: a second call (a double effect) gets the same answer and makes no request.
   */
  handleReturn(url?: string): Promise<ReturnOutcome | null>;
  /** Confirms a `needs_confirmation` return once the person has said yes. */
  confirm(consent: Consent | string, how: { byUser: true }): Promise<ReturnOutcome>;
  list(page?: { limit?: number; cursor?: string }): Promise<ConsentList>;
  get(id: string): Promise<Consent>;
  accounts(id: string): Promise<AccountList>;
  reconfirm(id: string): Promise<Consent>;
  revoke(id: string): Promise<Consent>;
}

const VERIFIER_PREFIX = 'finexer-connect:verifier:';
/** Return parameters the kit takes out of the address bar. */
const RETURN_PARAMS = ['consent_id', 'status', 'error'];
/** Settled returns, per code (or per consent and status when there is none), for the page's lifetime. */
const returns = new Map<string, Promise<ReturnOutcome>>();
/** User confirmations, per code: a double click confirms once. */
const confirmations = new Map<string, Promise<ReturnOutcome>>();
/** Codes waiting for the person's yes, per consent id; never stored. */
const waiting = new Map<string, string>();
/** The address the last return left behind, and its answer: a second call on the cleaned page gets it. */
let lastReturn: { href: string; outcome: Promise<ReturnOutcome> } | undefined;

const base64url = (bytes: Uint8Array): string =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** 32 random bytes, base64url: a 43-character RFC 7636 verifier. */
function newVerifier(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** RFC 7636 S256: base64url(SHA-256(verifier)). */
async function challengeOf(verifier: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
}

const verifierKey = (consentId: string) => VERIFIER_PREFIX + consentId;

function tabStorage(): Storage | null {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    // Storage blocked (privacy settings): the return then asks the person.
    return null;
  }
}

/** `href` without the return's parameters and the fragment's code. */
function withoutReturn(href: string): string {
  const url = new URL(href);
  for (const name of RETURN_PARAMS) url.searchParams.delete(name);
  const fragment = new URLSearchParams(url.hash.slice(1));
  fragment.delete('code');
  url.search = url.searchParams.toString();
  url.hash = fragment.toString();
  return url.href;
}

export function createConnectClient(options: ConnectClientOptions): ConnectClient {
  const apiBase = options.apiBase.replace(/\/+$/, '');

  async function call<T>(method: string, path: string, body?: object): Promise<T> {
    const token = await options.getAccessToken();
    if (!token) throw new ConnectError(401, '/problems/unauthorized', 'Not signed in', 'Sign the user in first.');
    const headers: Record<string, string> = {
      Accept: 'application/json, application/problem+json',
      Authorization: `Bearer ${token}`,
    };
    if (body) headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      // The bearer token is the credential: no cookie goes to the API.
      response = await fetch(apiBase + path, { method, headers, body: body && JSON.stringify(body), credentials: 'omit' });
    } catch (cause) {
      throw new ConnectError(0, 'network', 'The service is not reachable', String(cause));
    }
    const data = /json/.test(response.headers.get('content-type') || '') ? await response.json().catch(() => null) : null;
    if (response.ok) return data as T;
    const problem = (data || {}) as Partial<Problem>;
    const retryAfter = Number(response.headers.get('retry-after')) || null;
    throw new ConnectError(
      response.status,
      problem.type || 'about:blank',
      problem.title || response.statusText || `HTTP ${response.status}`,
      problem.detail || '',
      retryAfter,
    );
  }

  const consentPath = (id: string, action = '') => `/consents/${encodeURIComponent(id)}${action}`;
  const get = (id: string) => call<Consent>('GET', consentPath(id));

  /** Terminal outcomes forget the tab's verifier; a retry or a resume keeps it. */
  function settled(outcome: ReturnOutcome): ReturnOutcome {
    if (outcome.kind !== 'not_signed_in' && !(outcome.kind === 'failed' && outcome.retry)) {
      tabStorage()?.removeItem(verifierKey(outcome.consentId));
      if (outcome.kind !== 'needs_confirmation') waiting.delete(outcome.consentId);
    }
    return outcome;
  }

  /** An error answer turned into what the page should say. */
  async function failure(consentId: string, error: unknown, again: () => Promise<ReturnOutcome>): Promise<ReturnOutcome> {
    if (!(error instanceof ConnectError)) throw error;
    const { status } = error;
    if (status === 401) return { kind: 'not_signed_in', consentId, resume: again };
    if (status === 404) return { kind: 'failed', consentId, reason: 'not_yours', error };
    if (status === 400) return { kind: 'failed', consentId, reason: 'rejected', error };
    if (status === 409) {
      // Already confirmed by this user (a repeat), lapsed, or no longer active: the consent tells.
      try {
        const consent = await get(consentId);
        if (consent.confirmed_at && consent.status === 'authorized') return { kind: 'connected', consentId, consent };
        if (consent.status === 'expired' || consent.revoke_reason === 'unconfirmed') return { kind: 'expired', consentId };
      } catch {
        // The conflict is the answer.
      }
      return { kind: 'failed', consentId, reason: 'conflict', error };
    }
    return { kind: 'failed', consentId, reason: 'unavailable', error, retry: again };
  }

  async function confirmWith(consentId: string, body: ConfirmConsent): Promise<ReturnOutcome> {
    const again = () => confirmWith(consentId, body);
    try {
      const consent = await call<Consent>('POST', consentPath(consentId, '/confirm'), body);
      return settled({ kind: 'connected', consentId, consent });
    } catch (error) {
      return settled(await failure(consentId, error, again));
    }
  }

  async function settleApproval(consentId: string, code: string): Promise<ReturnOutcome> {
    const again = () => settleApproval(consentId, code);
    if (!(await options.getAccessToken())) return { kind: 'not_signed_in', consentId, resume: again };
    const verifier = tabStorage()?.getItem(verifierKey(consentId));
    if (verifier) return confirmWith(consentId, { code, code_verifier: verifier });
    // Not the tab that started the link: the person must see the bank and say yes.
    try {
      const consent = await get(consentId);
      if (consent.confirmed_at && consent.status === 'authorized') return settled({ kind: 'connected', consentId, consent });
      waiting.set(consentId, code);
      return { kind: 'needs_confirmation', consentId, consent, bank: { id: consent.provider, name: consent.bank_name || null } };
    } catch (error) {
      return settled(await failure(consentId, error, again));
    }
  }

  function settle(consentId: string, status: string | null, error: string | null, code: string | null): Promise<ReturnOutcome> {
    if (status === 'authorized' && code) return settleApproval(consentId, code);
    let outcome: ReturnOutcome;
    if (status === 'canceled' || error === 'access_denied') outcome = { kind: 'denied', consentId, error };
    else if (status === 'expired') outcome = { kind: 'expired', consentId };
    else if (status === 'authorized') {
      // Authorized without a code: a return handled before (a reload); the consent tells.
      return get(consentId).then(
        (consent): ReturnOutcome =>
          consent.confirmed_at ? { kind: 'connected', consentId, consent } : { kind: 'failed', consentId, reason: 'conflict' },
        (e) => failure(consentId, e, () => settle(consentId, status, error, code)),
      );
    } else outcome = { kind: 'failed', consentId, reason: 'bank' };
    return Promise.resolve(settled(outcome));
  }

  return {
    async start({ provider, returnUrl, template, onLink } = {}) {
      const verifier = newVerifier();
      const body: CreateLink = { code_challenge: await challengeOf(verifier), code_challenge_method: 'S256' };
      if (provider) body.provider = provider;
      if (returnUrl) body.return_to = returnUrl;
      if (template) body.template = template;
      const link = await call<LinkCreated>('POST', '/links', body);
      const target = new URL(link.consent_url);
      if (target.protocol !== 'https:' && target.protocol !== 'http:') {
        throw new ConnectError(502, '/problems/upstream-error', 'Unexpected link', 'The consent page is not a web address.');
      }
      tabStorage()?.setItem(verifierKey(link.consent_id), verifier);
      onLink?.(link);
      // The same tab, never a popup: popups get blocked, and bank apps return to a tab anyway.
      location.assign(target.href);
      return link;
    },

    handleReturn(url?: string) {
      const here = globalThis.location?.href;
      const href = new URL(url ?? here, here).href;
      const parsed = new URL(href);
      const consentId = parsed.searchParams.get('consent_id');
      const status = parsed.searchParams.get('status');
      const error = parsed.searchParams.get('error');
      const code = new URLSearchParams(parsed.hash.slice(1)).get('code');
      if (!consentId || !(status || error)) {
        return lastReturn && lastReturn.href === href ? lastReturn.outcome : Promise.resolve(null);
      }
      // Out of the address bar (history, bookmarks, screenshots, Referer) before any request.
      const cleaned = here ? withoutReturn(here) : href;
      if (here && cleaned !== here) history.replaceState(history.state, '', cleaned);
      const key = code ?? `${consentId} ${status} ${error}`;
      let outcome = returns.get(key);
      if (!outcome) {
        outcome = settle(consentId, status, error, code);
        returns.set(key, outcome);
      }
      lastReturn = { href: cleaned, outcome };
      return outcome;
    },

    confirm(consent, how) {
      const consentId = typeof consent === 'string' ? consent : consent.consent_id;
      const code = waiting.get(consentId);
      if (!how || how.byUser !== true) {
        return Promise.reject(new TypeError('confirm needs { byUser: true }: call it after the person said yes'));
      }
      if (!code) {
        return Promise.reject(new ConnectError(400, 'no-code', 'Nothing to confirm', 'No return of this consent is waiting for a confirmation.'));
      }
      let outcome = confirmations.get(code);
      if (!outcome) {
        outcome = confirmWith(consentId, { code, confirmed_by_user: true });
        confirmations.set(code, outcome);
      }
      return outcome;
    },

    list(page = {}) {
      const query = new URLSearchParams();
      if (page.limit) query.set('limit', String(page.limit));
      if (page.cursor) query.set('cursor', page.cursor);
      const search = query.toString();
      return call<ConsentList>('GET', `/consents${search ? `?${search}` : ''}`);
    },
    get,
    accounts: (id) => call<AccountList>('GET', consentPath(id, '/accounts')),
    reconfirm: (id) => call<Consent>('POST', consentPath(id, '/reconfirm')),
    revoke: (id) => call<Consent>('POST', consentPath(id, '/revoke')),
  };
}
