// mountConnectButton against a fake button and window: disabled while the
// link is created, left disabled while the tab leaves, enabled again when the
// page comes back from the back/forward cache or the link fails.
import { beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectError, mountConnectButton } from '../dist/index.js';
import { installTab } from './support/fakes.mjs';

let tab;
beforeEach(() => {
  tab = installTab();
});

function fakeButton(text) {
  const listeners = {};
  const attributes = new Map();
  return {
    tagName: 'BUTTON',
    textContent: text,
    disabled: false,
    addEventListener: (type, listener) => { listeners[type] = listener; },
    removeEventListener: (type) => { delete listeners[type]; },
    setAttribute: (name, value) => attributes.set(name, value),
    removeAttribute: (name) => attributes.delete(name),
    getAttribute: (name) => attributes.get(name) ?? null,
    /** Clicks and waits for the handler. */
    click() {
      let prevented = false;
      return listeners.click({ preventDefault: () => { prevented = true; } }).then(() => prevented);
    },
    listeners,
  };
}

/** A client whose start() waits until the test lets it go. */
function pausedClient() {
  const calls = [];
  let release;
  return {
    calls,
    release: (error) => release(error),
    start(options) {
      calls.push(options);
      return new Promise((resolve, reject) => {
        release = (error) => (error ? reject(error) : resolve({ consent_id: 'bc_1' }));
      });
    },
  };
}

test('disabled while the link is created, still disabled as the tab leaves; enabled again on a pageshow from the bfcache', async () => {
  const button = fakeButton('Connect your bank');
  const client = pausedClient();
  let provider = 'sandbox-monzo';
  mountConnectButton(button, client, { provider: () => provider, returnUrl: 'https://app.example.test/connected', template: 'acme' });

  const clicked = button.click();
  assert.equal(button.disabled, true);
  assert.equal(button.textContent, 'Opening your bank…');
  assert.equal(button.getAttribute('aria-busy'), 'true');
  provider = 'changed-later';
  button.click(); // a second click while busy starts nothing
  client.release();
  assert.equal(await clicked, true, 'a click inside a form does not submit it');
  assert.deepEqual(client.calls, [{ provider: 'sandbox-monzo', returnUrl: 'https://app.example.test/connected', template: 'acme', onLink: undefined }]);
  assert.equal(button.disabled, true, 'the tab is leaving: no second link');

  tab.dispatch('pageshow', { persisted: false });
  assert.equal(button.disabled, true, 'a fresh load is not a restore');
  tab.dispatch('pageshow', { persisted: true });
  assert.equal(button.disabled, false, 'back from the bank through the bfcache: usable again');
  assert.equal(button.textContent, 'Connect your bank');
  assert.equal(button.getAttribute('aria-busy'), null);
});

test('a failed start enables the button again and goes to onError', async () => {
  const button = fakeButton('');
  const client = pausedClient();
  const errors = [];
  mountConnectButton(button, client, { label: 'Link a bank', onError: (error) => errors.push(error) });
  assert.equal(button.textContent, 'Link a bank');
  const clicked = button.click();
  client.release(new ConnectError(503, '/problems/busy', 'Busy', 'Try again.', 2));
  await clicked;
  assert.equal(button.disabled, false);
  assert.equal(button.textContent, 'Link a bank');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].status, 503);
  assert.equal(client.calls[0].provider, undefined, 'no provider: the bank picker');
});

test('unmount removes the listeners', () => {
  const button = fakeButton('Connect');
  const mounted = mountConnectButton(button, pausedClient());
  assert.equal(mounted.button, button);
  assert.equal(tab.listenerCount('pageshow'), 1);
  mounted.unmount();
  assert.equal(tab.listenerCount('pageshow'), 0);
  assert.equal(button.listeners.click, undefined);
});
