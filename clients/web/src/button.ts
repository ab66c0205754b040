// A minimal "Connect your bank" button: it disables itself while the link is
// being created (the tab then leaves for the bank), and comes back when the
// browser shows the page again from its back/forward cache, where a page is
// restored exactly as it was left: disabled.

import type { ConnectClient, StartOptions } from './client.js';

export interface ConnectButtonOptions extends Omit<StartOptions, 'provider'> {
  /** A provider id, or a function read at each click (e.g. a `<select>`'s value). */
  provider?: string | (() => string | null | undefined);
  /** The button's text; default: the element's own text, else "Connect your bank". */
  label?: string;
  /** The text while the link is being created; default "Opening your bank…". */
  busyLabel?: string;
  /** Called when the link could not be created (a `ConnectError`); the button is enabled again first. */
  onError?: (error: unknown) => void;
}

export interface MountedConnectButton {
  button: HTMLButtonElement;
  /** Removes the kit's listeners; the button stays in the page. */
  unmount(): void;
}

/** Uses `element` when it is a `<button>`, else appends a new button to it. */
export function mountConnectButton(
  element: HTMLElement,
  client: Pick<ConnectClient, 'start'>,
  options: ConnectButtonOptions = {},
): MountedConnectButton {
  const button = (
    element.tagName === 'BUTTON' ? element : element.appendChild(document.createElement('button'))
  ) as HTMLButtonElement;
  const label = options.label || button.textContent?.trim() || 'Connect your bank';
  button.textContent = label;

  const restore = () => {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  };

  const onClick = async (event: Event) => {
    // Inside a form, the click starts the link rather than submitting.
    event.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    button.textContent = options.busyLabel || 'Opening your bank…';
    const { provider, returnUrl, template, onLink } = options;
    try {
      await client.start({
        provider: (typeof provider === 'function' ? provider() : provider) || undefined,
        returnUrl,
        template,
        onLink,
      });
      // Stays disabled: the tab is leaving for the bank.
    } catch (error) {
      restore();
      if (!options.onError) throw error;
      options.onError(error);
    }
  };

  const onPageShow = (event: PageTransitionEvent) => {
    if (event.persisted) restore();
  };

  button.addEventListener('click', onClick);
  addEventListener('pageshow', onPageShow);
  return {
    button,
    unmount() {
      button.removeEventListener('click', onClick);
      removeEventListener('pageshow', onPageShow);
    },
  };
}
