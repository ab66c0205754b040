// @finexer-connect/web: a bank connection from a web page, typed from the
// API's openapi.yaml (src/openapi.ts, generated), with no runtime dependencies.

export { ConnectError, createConnectClient } from './client.js';
export type {
  AccountList,
  Bank,
  BankAccount,
  ConfirmConsent,
  ConnectClient,
  ConnectClientOptions,
  Consent,
  ConsentList,
  CreateLink,
  FailureReason,
  LinkCreated,
  Problem,
  ReturnOutcome,
  StartOptions,
} from './client.js';
export { mountConnectButton } from './button.js';
export type { ConnectButtonOptions, MountedConnectButton } from './button.js';
export type { components, paths } from './openapi.js';
