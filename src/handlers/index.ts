// operationId -> handler. The type makes a missing handler a compile error; api.ts checks again at start-up.
import type { Deps } from '../deps.js';
import type { Handler, OperationId } from '../http/types.js';
import { handleStoreInvite } from './storeInvite.js';
import { handleGetPubKey, handleIsEphemeralPubKeyValid, handleIsPubKeyValid } from './pubkey.js';
import { handleGetStatus, handleGetVersions } from './status.js';
import { handleAgreeToTerms, handleGetAccount, handleGetTerms, handleLogout, handleRegisterAccount } from './accounts.js';

export type HandlerTable = { [Op in OperationId]: Handler<Op, Deps> };

export const handlers: HandlerTable = {
  getVersions: handleGetVersions,
  getStatus: handleGetStatus,
  getStatusV1: handleGetStatus,
  invite: handleStoreInvite,
  storeInviteV2: handleStoreInvite,
  getPubKey: handleGetPubKey,
  getPubKeyV1: handleGetPubKey,
  isPubKeyValid: handleIsPubKeyValid,
  isPubKeyValidV1: handleIsPubKeyValid,
  isEphemeralPubKeyValid: handleIsEphemeralPubKeyValid,
  isEphemeralPubKeyValidV1: handleIsEphemeralPubKeyValid,
  registerAccount: handleRegisterAccount,
  getAccount: handleGetAccount,
  logout: handleLogout,
  getTerms: handleGetTerms,
  agreeToTerms: handleAgreeToTerms,
};
